import Foundation
import SyncEngine

/// What the HTTP endpoint asks of the supervisor. `Supervisor` implements it; the endpoint
/// (`/status`, `/trigger/SERVICE`, `/healthz`, `/`) only calls it.
public protocol SupervisorControl: Sendable {
    /// The state of every configured service, for `/status` and `/`.
    func status() async -> StatusReport
    /// Starts a run of `service` now.
    func trigger(service: String, dryRun: Bool) async -> TriggerResult
    /// True while the supervisor's own loop is making progress (`/healthz`).
    func isLoopAlive() -> Bool
}

/// The answer of `POST /trigger/SERVICE`.
public enum TriggerResult: Sendable, Hashable {
    /// 202
    case started
    /// 409
    case alreadyRunning
    /// 404
    case unknownService
}

/// `GET /status`: JSON, one entry per configured service.
public struct StatusReport: Sendable, Codable, Hashable {
    public var version: String
    public var startedAt: Date
    public var services: [ServiceStatus]

    public init(version: String, startedAt: Date, services: [ServiceStatus]) {
        self.version = version
        self.startedAt = startedAt
        self.services = services
    }
}

public struct ServiceStatus: Sendable, Codable, Hashable {
    public var name: String
    public var enabled: Bool
    /// idle, running, backoff, waiting (refused / configuration: until the next schedule), disabled
    public var state: String
    public var lastRun: RunSummary?
    public var lastSuccessAt: Date?
    public var nextRunAt: Date?
    public var consecutiveFailures: Int
    /// Seconds of the current backoff delay, 0 when not backing off.
    public var backoffSeconds: Double
    /// Human-readable schedule (`*/15 * * * *`, `every 15m`).
    public var schedule: String

    public init(
        name: String, enabled: Bool, state: String, lastRun: RunSummary?, lastSuccessAt: Date?, nextRunAt: Date?,
        consecutiveFailures: Int, backoffSeconds: Double, schedule: String
    ) {
        self.name = name
        self.enabled = enabled
        self.state = state
        self.lastRun = lastRun
        self.lastSuccessAt = lastSuccessAt
        self.nextRunAt = nextRunAt
        self.consecutiveFailures = consecutiveFailures
        self.backoffSeconds = backoffSeconds
        self.schedule = schedule
    }
}

extension StatusReport {
    /// The JSON of `GET /status`: dates as ISO 8601 (UTC), keys sorted, so the endpoint and
    /// the `status` command agree on one encoding.
    public func encodedJSON() throws -> Data {
        try Self.jsonEncoder().encode(self)
    }

    /// Decodes what `encodedJSON()` wrote (the `status` command reading `GET /status`).
    public static func decodeJSON(_ data: Data) throws -> StatusReport {
        try jsonDecoder().decode(StatusReport.self, from: data)
    }

    /// The encoder behind `encodedJSON()`.
    public static func jsonEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return encoder
    }

    /// The decoder matching `jsonEncoder()`.
    public static func jsonDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
