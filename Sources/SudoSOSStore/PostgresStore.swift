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
    /// Statements sent by every connection of this store.
    public let counter = RoundTripCounter()
    /// Queue, sessions, snapshot state and locks: the part both stores share.
    let core: StoreCore<PGConnection>
    private var schemaReady = false

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
        let counter = self.counter
        core = StoreCore(label: "sudosos-sync.store", logger: logger) {
            try PGConnection(url: url, password: password, connectTimeout: connectTimeout, counter: counter)
        }
    }

    /// Statements sent to the server so far (all connections of this store).
    public var roundTrips: Int { counter.value }

    // MARK: - Queue and connections

    /// Runs blocking libpq work on the store's queue.
    func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await core.run(body)
    }

    /// Opens a new session (used for the lock session). Call on the queue.
    func connect() throws -> PGConnection { try core.connect() }

    /// The main session. Call on the queue.
    func mainConnection() throws -> PGConnection { try core.mainConnection() }

    /// Checks that the database can be reached (for `check-config --connect`).
    public func ping() async throws {
        try await onQueue {
            try self.mainConnection().execute("SELECT 1", what: "checking the connection")
        }
    }

    /// Connects and returns the server's version (for `check-config --connect`).
    public func serverVersion() async throws -> String {
        try await onQueue {
            let rows = try self.mainConnection().query("SHOW server_version", what: "checking the connection")
            return try rows.rows.first?.string("server_version") ?? "unknown"
        }
    }

    // MARK: - Own schema

    /// Creates `sudosos_sync` on first use. Call on `queue`.
    func ensureSchema(_ connection: PGConnection) throws {
        if schemaReady { return }
        try OwnSchema.ensure(on: connection, store: self)
        schemaReady = true
    }


    // MARK: - SudoSOSDatabase

    public func withServiceLock<T: Sendable>(_ service: String, _ body: () async throws -> T) async throws -> T {
        try await core.holding(
            service, acquire: { try await ServiceLock.acquire(service: service, store: self) },
            release: { await $0.release() }, body)
    }

    public func snapshot(_ request: SnapshotRequest) async throws -> Snapshot {
        // The peers' verdicts are read from our own table: create it first when missing.
        if !request.peers.isEmpty { try await onQueue { try self.ensureSchema(self.mainConnection()) } }
        return try await core.snapshot(request)
    }

    public func schemaFacts() async throws -> SchemaFacts { try await core.schemaFacts() }

    public func apply(_ plan: Plan, runId: Int64) async throws -> Plan {
        try await onQueue {
            let connection = try self.mainConnection()
            try self.ensureSchema(connection)
            let versions = self.core.snapshotVersions
            let schema = self.core.snapshotSchema
            return try connection.inTransaction {
                try PlanApplier(connection: connection, runId: runId, versions: versions, schema: schema).apply(plan)
            }
        }
    }

    /// Our run rows in `sudosos_sync.run`.
    static let runRows = RunRowStatements(
        closeInterrupted: """
            UPDATE sudosos_sync.run SET finished = now(), outcome = 'crash',
                   error = 'the run ended without recording its outcome (killed, crashed or disconnected)'
            WHERE service = $1 AND finished IS NULL
            """,
        insert: "INSERT INTO sudosos_sync.run (service, started, dry_run) VALUES ($1, to_timestamp($2::float8), $3) RETURNING id",
        lastId: nil,
        finish: """
            UPDATE sudosos_sync.run SET finished = to_timestamp($1::float8), outcome = $2, dry_run = $3,
                   counts = $4::jsonb, error = $5
            WHERE id = $6
            """,
        time: { String($0.timeIntervalSince1970) }, bool: PGValue.bool)

    public func beginRun(service: String, dryRun: Bool, startedAt: Date) async throws -> Int64 {
        try await core.beginRun(
            service: service, dryRun: dryRun, startedAt: startedAt, statements: Self.runRows, ensure: ensureSchema)
    }

    public func finishRun(_ runId: Int64, summary: RunSummary) async throws {
        try await core.finishRun(runId, summary: summary, statements: Self.runRows, ensure: ensureSchema)
    }
}
