import Dispatch
import Foundation
import Logging
import SyncEngine

/// The SudoSOS database on MariaDB/MySQL (the engine the real SudoSOS runs on), over
/// Connector/C: snapshot, apply in one InnoDB transaction, audit trail, the per-service
/// `GET_LOCK()`, and our own tables `sudosos_sync_run` / `sudosos_sync_audit` /
/// `sudosos_sync_verdict` in the SudoSOS
/// database. See docs/database.md.
///
/// The snapshot and the balance are the same statements as on PostgreSQL (`SnapshotReader`,
/// `Balances`, rendered for MariaDB); the plan is the same `PlanBatches`, written by
/// `MariaDBPlanApplier`.
///
/// Connector/C blocks, so every database call runs on the store's own serial queue, never on
/// the cooperative thread pool; the mutable state below is only touched on that queue.
public final class MariaDBStore: SudoSOSDatabase, @unchecked Sendable {
    private let target: MariaDBTarget
    /// Statements sent by every connection of this store.
    public let counter = RoundTripCounter()
    /// Queue, sessions, snapshot state and locks: the part both stores share.
    let core: StoreCore<MariaDBConnection>
    // State below: only on the core's queue.
    private var schemaReady = false
    private var rowJSON: RowJSON?

    /// A store for the configured `mariadb://` URL. Connects lazily, on the first call that needs it.
    public convenience init(settings: DatabaseSettings, logger: Logger) throws {
        guard let url = settings.url, !url.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw SyncError.configuration("database.url is not set (or TYPEORM_HOST / TYPEORM_DATABASE)")
        }
        let target: MariaDBTarget
        do { target = try DatabaseURL.mariadb(url) } catch {
            throw SyncError.configuration("database.url \(error.description)")
        }
        self.init(target: target, password: settings.password, connectTimeout: settings.connectTimeout, logger: logger)
    }

    /// A store for a server; `password` wins over one written in the URL.
    public init(
        target: MariaDBTarget, password: String? = nil, connectTimeout: Duration = .seconds(10),
        logger: Logger = Logger(label: "sudosos-sync.store")
    ) {
        self.target = target
        let counter = self.counter, password = password ?? target.password
        core = StoreCore(label: "sudosos-sync.store.mariadb", logger: logger) {
            try MariaDBConnection(target: target, password: password, connectTimeout: connectTimeout, counter: counter)
        }
    }

    /// A store for a `mariadb://` URL (tests).
    public convenience init(url: String, connectTimeout: Duration = .seconds(10)) throws {
        self.init(target: try DatabaseURL.mariadb(url), connectTimeout: connectTimeout)
    }

    /// Statements sent to the server so far (all connections of this store).
    public var roundTrips: Int { counter.value }

    /// The `GET_LOCK()` name of `service`'s lock on `database` (to see who holds it).
    public static func lockName(service: String, database: String) -> String {
        MariaDBServiceLock.name(service: service, database: database)
    }

    // MARK: - Queue and connections

    func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await core.run(body)
    }

    /// A new session (for the lock). Call on the queue.
    func connect() throws -> MariaDBConnection { try core.connect() }

    private func mainConnection() throws -> MariaDBConnection { try core.mainConnection() }

    /// Connects and returns the server's version (for `check-config --connect`).
    public func serverVersion() async throws -> String {
        try await onQueue {
            let connection = try self.mainConnection()
            try connection.execute("SELECT 1", what: "checking the connection")
            return connection.serverVersion
        }
    }

    private func ensureSchema(_ connection: MariaDBConnection) throws {
        if schemaReady { return }
        try MariaDBOwnSchema.ensure(on: connection)
        schemaReady = true
    }

    // MARK: - SudoSOSDatabase

    public func withServiceLock<T: Sendable>(_ service: String, _ body: () async throws -> T) async throws -> T {
        let database = target.database
        return try await core.holding(
            service,
            acquire: {
                try await onQueue { try MariaDBServiceLock.acquire(service: service, database: database, store: self) }
            },
            release: { lock in _ = try? await self.onQueue { lock.release() } }, body)
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
            if self.rowJSON == nil { self.rowJSON = try RowJSON.read(connection) }
            let applier = MariaDBPlanApplier(
                connection: connection, runId: runId, versions: self.core.snapshotVersions, rowJSON: self.rowJSON!,
                schema: self.core.snapshotSchema)
            return try connection.inTransaction { try applier.apply(plan) }
        }
    }

    /// Our run rows in `sudosos_sync_run` (times in UTC).
    static let runRows = RunRowStatements(
        closeInterrupted: """
            UPDATE sudosos_sync_run SET finished = UTC_TIMESTAMP(6), outcome = 'crash',
                   error = 'the run ended without recording its outcome (killed, crashed or disconnected)'
            WHERE service = ? AND finished IS NULL
            """,
        insert: "INSERT INTO sudosos_sync_run (service, started, dry_run) VALUES (?, ?, ?)",
        lastId: "SELECT LAST_INSERT_ID() AS id",
        finish: "UPDATE sudosos_sync_run SET finished = ?, outcome = ?, dry_run = ?, counts = ?, error = ? WHERE id = ?",
        time: MariaDBOwnSchema.utc, bool: { $0 ? "1" : "0" })

    public func beginRun(service: String, dryRun: Bool, startedAt: Date) async throws -> Int64 {
        try await core.beginRun(
            service: service, dryRun: dryRun, startedAt: startedAt, statements: Self.runRows, ensure: ensureSchema)
    }

    public func finishRun(_ runId: Int64, summary: RunSummary) async throws {
        try await core.finishRun(runId, summary: summary, statements: Self.runRows, ensure: ensureSchema)
    }
}

/// Our own tables on MariaDB/MySQL, which has no schemas: `sudosos_sync_run`,
/// `sudosos_sync_audit` and `sudosos_sync_verdict` in the SudoSOS database (every table of ours is `sudosos_sync_*`).
/// Times are `datetime(6)` in UTC. SudoSOS's own tables are never altered.
enum MariaDBOwnSchema {
    static let statements = [
        """
        CREATE TABLE IF NOT EXISTS sudosos_sync_run (
          id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
          service varchar(64) NOT NULL,
          started datetime(6) NOT NULL,
          finished datetime(6) NULL,
          outcome varchar(32) NULL,
          dry_run tinyint NOT NULL DEFAULT 0,
          counts json NULL,
          error text NULL,
          KEY run_service_started (service, started)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
        """,
        """
        CREATE TABLE IF NOT EXISTS sudosos_sync_audit (
          id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
          run_id bigint NOT NULL,
          at datetime(6) NOT NULL,
          table_name varchar(64) NOT NULL,
          row_key varchar(191) NOT NULL,
          action varchar(32) NOT NULL,
          "old" json NULL,
          "new" json NULL,
          reason text NOT NULL,
          KEY audit_run_id (run_id),
          KEY audit_row (table_name, row_key),
          CONSTRAINT sudosos_sync_audit_run FOREIGN KEY (run_id) REFERENCES sudosos_sync_run (id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
        """,
        // One verdict per user across the services: what each service's latest run said.
        """
        CREATE TABLE IF NOT EXISTS sudosos_sync_verdict (
          service varchar(64) NOT NULL,
          user_id int NOT NULL,
          vouches tinyint NOT NULL,
          run_id bigint NOT NULL,
          at datetime(6) NOT NULL,
          PRIMARY KEY (service, user_id),
          CONSTRAINT sudosos_sync_verdict_run FOREIGN KEY (run_id) REFERENCES sudosos_sync_run (id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
        """,
    ]

    /// Creates what is missing. One query when all tables exist. `CREATE TABLE IF NOT EXISTS`
    /// is atomic on MariaDB (a metadata lock), so two first runs at once cannot both fail.
    static func ensure(on connection: MariaDBConnection) throws {
        let check = SQLDialect.mariadb.tablesPresent(["sudosos_sync_run", "sudosos_sync_audit", "sudosos_sync_verdict"])
        let present = try connection.query(check.sql, check.parameters, what: "looking for the sudosos_sync tables")
        if let row = present.rows.first, try row.bool("ok") { return }
        for statement in statements {
            try connection.execute(statement, what: "creating the sudosos_sync tables")
        }
    }

    /// A time as `datetime(6)` text in UTC.
    static func utc(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss.SSSSSS"
        return formatter.string(from: date)
    }
}

/// The lock of one service: `GET_LOCK()` on a session of its own for the whole run. MariaDB
/// releases it when that session ends, so a killed run never leaves it held. Lock names are
/// server-wide, so the name includes the database (`sudosos-sync/<db>/<service>`, hashed when
/// longer than MariaDB's 64 characters).
final class MariaDBServiceLock: @unchecked Sendable {
    let connection: MariaDBConnection
    let name: String
    let service: String

    private init(connection: MariaDBConnection, name: String, service: String) {
        self.connection = connection
        self.name = name
        self.service = service
    }

    static func name(service: String, database: String) -> String {
        let name = "sudosos-sync/\(database)/\(service)"
        if name.utf8.count <= 64 { return name }
        return "sudosos-sync/" + String(UInt64(bitPattern: AdvisoryLockKey.make(name)), radix: 16)
    }

    /// Takes the lock, or throws `SyncError.locked` at once when another session holds it.
    /// Call on the store's queue.
    static func acquire(service: String, database: String, store: MariaDBStore) throws -> MariaDBServiceLock {
        let name = name(service: service, database: database)
        let connection = try store.connect()
        let got = try connection.query("SELECT GET_LOCK(?, 0) AS got", [name], what: "taking the lock of service \(service)")
        guard let row = got.rows.first, try row.optionalString("got") == "1" else {
            let holder = try? connection.query("SELECT IS_USED_LOCK(?) AS holder", [name], what: "looking up the lock holder")
                .rows.first?.optionalString("holder")
            throw SyncError.locked(
                "another instance is running service \(service)"
                    + (holder.flatMap { $0 }.map { " (database connection \($0) holds its lock)" } ?? ""))
        }
        return MariaDBServiceLock(connection: connection, name: name, service: service)
    }

    /// Releases the lock (closing the session would release it too). Call on the store's queue.
    func release() {
        _ = try? connection.query("SELECT RELEASE_LOCK(?) AS released", [name], what: "releasing the lock of service \(service)")
    }
}
