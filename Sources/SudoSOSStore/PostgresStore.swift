import Dispatch
import Foundation
import Logging
import SyncEngine

/// The SudoSOS database over libpq: snapshot, apply in one transaction, audit trail, the
/// per-service advisory lock, and our own `sudosos_sync` schema. See docs/database.md.
///
/// One store serves one run (or one `check-config --connect`): it remembers the row versions
/// of its last snapshot so that `apply` can refuse to overwrite rows the backend changed in
/// between (the optimistic check).
///
/// libpq blocks, so every database call runs on the store's own serial queue, never on the
/// cooperative thread pool; the mutable state below is only touched on that queue, which is
/// what makes the `@unchecked Sendable` sound.
public final class PostgresStore: SudoSOSDatabase, @unchecked Sendable {
    private let url: String
    private let password: String?
    private let connectTimeout: Duration
    private let logger: Logger
    /// Statements sent by every connection of this store.
    public let counter = RoundTripCounter()

    private let queue = DispatchQueue(label: "sudosos-sync.store")
    // State below: only on `queue`.
    private var main: PGConnection?
    private var schemaReady = false
    /// `"user".version` of every user the last snapshot read, by id.
    private var snapshotVersions: [Int: Int] = [:]
    /// Services whose advisory lock this store holds right now.
    private var heldLocks: Set<String> = []

    /// A store for the configured database. Connects lazily, on the first call that needs it.
    /// Throws `SyncError.configuration` when no database URL is configured.
    public convenience init(settings: DatabaseSettings, logger: Logger) throws {
        guard let url = settings.url, !url.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw SyncError.configuration("database.url is not set (or TYPEORM_HOST / TYPEORM_DATABASE)")
        }
        self.init(url: url, password: settings.password, connectTimeout: settings.connectTimeout, logger: logger)
    }

    /// A store for a libpq URI or conninfo and a separate password.
    public init(
        url: String, password: String? = nil, connectTimeout: Duration = .seconds(10),
        logger: Logger = Logger(label: "sudosos-sync.store")
    ) {
        self.url = url
        self.password = password
        self.connectTimeout = connectTimeout
        self.logger = logger
    }

    /// Statements sent to the server so far (all connections of this store).
    public var roundTrips: Int { counter.value }

    // MARK: - Queue and connections

    /// Runs blocking libpq work on the store's queue.
    func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Opens a new session (used for the main connection and the lock session).
    func connect() throws -> PGConnection {
        try PGConnection(url: url, password: password, connectTimeout: connectTimeout, counter: counter)
    }

    /// The main session, opened on first use and reopened when it broke. Call on `queue`.
    func mainConnection() throws -> PGConnection {
        if let main, main.isHealthy { return main }
        main = nil
        let connection = try connect()
        main = connection
        return connection
    }

    /// Checks that the database can be reached (for `check-config --connect`).
    public func ping() async throws {
        try await onQueue {
            try self.mainConnection().execute("SELECT 1", what: "checking the connection")
        }
    }

    /// Runs `body` in a transaction on `connection`: COMMIT when it returns, ROLLBACK when it
    /// throws. Call on `queue`.
    func inTransaction<T>(
        _ connection: PGConnection, begin: String = "BEGIN", _ body: () throws -> T
    ) throws -> T {
        try connection.execute(begin, what: "starting a transaction")
        do {
            let value = try body()
            try connection.execute("COMMIT", what: "committing")
            return value
        } catch {
            if connection.isHealthy { try? connection.execute("ROLLBACK", what: "rolling back") }
            throw error
        }
    }

    // MARK: - Own schema

    /// Creates `sudosos_sync` on first use. Call on `queue`.
    func ensureSchema(_ connection: PGConnection) throws {
        if schemaReady { return }
        try OwnSchema.ensure(on: connection, store: self)
        schemaReady = true
    }

    /// The versions the last snapshot read. Call on `queue`.
    var rememberedVersions: [Int: Int] {
        get { snapshotVersions }
        set { snapshotVersions = newValue }
    }

    // MARK: - SudoSOSDatabase

    public func withServiceLock<T: Sendable>(_ service: String, _ body: () async throws -> T) async throws -> T {
        let lock = try await ServiceLock.acquire(service: service, store: self)
        logger.debug("holding the lock of service \(service)")
        _ = try await onQueue { self.heldLocks.insert(service).inserted }
        func release() async {
            _ = try? await onQueue { self.heldLocks.remove(service) }
            await lock.release()
        }
        do {
            let value = try await body()
            await release()
            return value
        } catch {
            await release()
            throw error
        }
    }

    public func snapshot(_ request: SnapshotRequest) async throws -> Snapshot {
        try await onQueue {
            let connection = try self.mainConnection()
            if !request.peers.isEmpty { try self.ensureSchema(connection) }
            let snapshot = try SnapshotReader(connection: connection).read(request, store: self)
            self.snapshotVersions = snapshot.users.mapValues(\.version)
            return snapshot
        }
    }

    public func apply(_ plan: Plan, runId: Int64) async throws -> Plan {
        try await onQueue {
            let connection = try self.mainConnection()
            try self.ensureSchema(connection)
            let versions = self.snapshotVersions
            return try self.inTransaction(connection) {
                try PlanApplier(connection: connection, runId: runId, versions: versions).apply(plan)
            }
        }
    }

    public func beginRun(service: String, dryRun: Bool, startedAt: Date) async throws -> Int64 {
        try await onQueue {
            let connection = try self.mainConnection()
            try self.ensureSchema(connection)
            if self.heldLocks.contains(service) {
                // Holding the service's lock, no other run of it can be going on: a row still
                // open belongs to a run that was killed, crashed or lost its connection.
                try connection.query(
                    """
                    UPDATE sudosos_sync.run SET finished = now(), outcome = 'crash',
                           error = 'the run ended without recording its outcome (killed, crashed or disconnected)'
                    WHERE service = $1 AND finished IS NULL
                    """,
                    [service], what: "closing the records of interrupted runs")
            }
            let rows = try connection.query(
                "INSERT INTO sudosos_sync.run (service, started, dry_run) VALUES ($1, to_timestamp($2::float8), $3) RETURNING id",
                [service, String(startedAt.timeIntervalSince1970), PGValue.bool(dryRun)],
                what: "recording the start of the run")
            guard let row = rows.rows.first else { throw SyncError.failed("recording the start of the run returned no id") }
            return try row.int64("id")
        }
    }

    public func finishRun(_ runId: Int64, summary: RunSummary) async throws {
        let counts = try PGValue.json(RunCounts(summary))
        try await onQueue {
            let connection = try self.mainConnection()
            try self.ensureSchema(connection)
            try connection.query(
                """
                UPDATE sudosos_sync.run SET finished = to_timestamp($2::float8), outcome = $3, dry_run = $4,
                       counts = $5::jsonb, error = $6
                WHERE id = $1
                """,
                [
                    String(runId), String(summary.finishedAt.timeIntervalSince1970), summary.outcome.rawValue,
                    PGValue.bool(summary.dryRun), counts, summary.error,
                ],
                what: "recording the end of the run")
        }
    }
}

/// The `counts` jsonb of a `sudosos_sync.run` row.
struct RunCounts: Encodable {
    var entities: EntityCounts
    var changes: [String: Int]
    var rejected: [String: Int]

    init(_ summary: RunSummary) {
        entities = summary.entities
        changes = summary.changes
        rejected = summary.rejected
    }
}
