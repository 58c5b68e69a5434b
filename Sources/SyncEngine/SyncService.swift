import Logging

/// The seed's sync-service pattern (targets, guard, fetch, sync, down, pre/post hooks, dry run)
/// expressed in bulk: a run reads the source once and the SudoSOS rows once, and computes a
/// `Plan` as a pure function of both.
///
/// - `targets` + `shouldSync` are the original's *guard*: which users this service owns.
/// - `prepare` is the *pre* hook: readiness of the source (throws `SyncError.notReady`).
/// - `fetch` reads the source in bulk (a constant number of requests per phase, or one request
///   per targeted user with bounded concurrency where the source has no bulk read).
/// - `plan` is *sync* (updates for users still in the source) and *down* (closing users the
///   source no longer has) for every user at once; it does no I/O.
/// - dry run is the runner's business: the same plan, printed, nothing written.
public protocol SyncService: Sendable {
    associatedtype Source: Sendable

    /// `ldap`, `gewisdb`: the name in configuration, metrics and the lock.
    var name: String { get }

    /// What the store must read for this service.
    var snapshotRequest: SnapshotRequest { get }

    /// Guard: whether `user` is synced by this service.
    func shouldSync(_ user: User, in snapshot: Snapshot) -> Bool

    /// Pre hook: checks the source is reachable and ready before anything is read (also what
    /// `check-config --connect` calls). Throws `SyncError.unavailable` / `.notReady`.
    func prepare(context: RunContext) async throws

    /// Reads the source for the targeted users, in bulk.
    func fetch(targeted: [User], snapshot: Snapshot, context: RunContext) async throws -> Source

    /// Computes the plan. Pure.
    func plan(source: Source, targeted: [User], snapshot: Snapshot) -> Plan
}

extension SyncService {
    public func prepare(context: RunContext) async throws {}
}

/// What a run hands to its service: a logger, a way to report progress and source requests,
/// and the moment by which its source requests must have given up.
public struct RunContext: Sendable {
    public var logger: Logger
    public var reporter: any RunReporter
    public var dryRun: Bool
    /// nil: no run timeout (only the sources' own timeouts apply).
    public var deadline: RunDeadline?

    public init(logger: Logger, reporter: any RunReporter, dryRun: Bool, deadline: RunDeadline? = nil) {
        self.logger = logger
        self.reporter = reporter
        self.dryRun = dryRun
        self.deadline = deadline
    }
}

/// The service's `timeout` as the sources see it: every network wait of the run is cut to end
/// by `sourcesBy`, a little before the timeout itself, so a hung source fails the run with a
/// message naming what hung (and the runner still records it) instead of the run being killed.
public struct RunDeadline: Sendable, Hashable {
    /// The configured timeout (`services.NAME.timeout`).
    public var timeout: Duration
    /// When source requests must have given up.
    public var sourcesBy: ContinuousClock.Instant

    /// From `start`: the sources get the timeout less a fifth of it (at most 10 s), which is
    /// left for the database work, the record of the run and the exit that follow.
    public init(timeout: Duration, from start: ContinuousClock.Instant = .now) {
        self.timeout = timeout
        sourcesBy = start + timeout - Self.reserve(of: timeout)
    }

    static func reserve(of timeout: Duration) -> Duration { min(timeout / 5, .seconds(10)) }

    /// `9.0s`: a duration for messages.
    public static func describe(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let value = Double(seconds) + Double(attoseconds) / 1e18
        return "\((value * 10).rounded() / 10)s"
    }

    /// What is left of the sources' time (zero when past), and `wanted` cut to it.
    public var remaining: Duration { max(.zero, sourcesBy - .now) }

    public func limit(_ wanted: Duration) -> Duration { min(wanted, remaining) }

    /// True when `wanted` had to be cut.
    public func cuts(_ wanted: Duration) -> Bool { remaining < wanted }
}

/// Events a run reports while it works. In a supervised child they travel to the supervisor
/// (heartbeats, source request metrics); in `once` they are only logged.
public protocol RunReporter: Sendable {
    /// Called at least every few seconds while the run makes progress.
    func heartbeat(phase: String)
    /// One request to the source: `ok` false for errors; duration in seconds.
    func sourceRequest(ok: Bool, seconds: Double)
}

/// A reporter that reports nothing.
public struct SilentReporter: RunReporter {
    public init() {}
    public func heartbeat(phase: String) {}
    public func sourceRequest(ok: Bool, seconds: Double) {}
}
