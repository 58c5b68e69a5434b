import Foundation
import Logging
import SudoSOSStore
import SyncEngine
import TestKit

/// A real `SyncService` whose source is a plan computed from the snapshot by a closure: lets
/// the tests drive the runner and the store with exactly the plan they want to check.
struct PlannedService: SyncService {
    typealias Source = Int

    var name: String = "test"
    var snapshotRequest = SnapshotRequest(userTypes: [.member, .organ, .integration])
    /// Thrown by `prepare` when set (e.g. a not-ready source).
    var prepareError: SyncError?
    var makePlan: @Sendable (Snapshot) -> Plan

    func shouldSync(_ user: User, in snapshot: Snapshot) -> Bool { !user.deleted }

    func prepare(context: RunContext) async throws {
        if let prepareError { throw prepareError }
    }

    func fetch(targeted: [User], snapshot: Snapshot, context: RunContext) async throws -> Int { targeted.count }

    func plan(source: Int, targeted: [User], snapshot: Snapshot) -> Plan {
        var plan = makePlan(snapshot)
        plan.service = name
        if plan.population == 0 { plan.population = source }
        return plan
    }
}

/// Collects the phases a run reports.
final class RecordingReporter: RunReporter, @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [String] = []

    var phases: [String] { lock.withLock { recorded } }

    func heartbeat(phase: String) { lock.withLock { recorded.append(phase) } }
    func sourceRequest(ok: Bool, seconds: Double) {}
}

/// A throwaway database on one engine, a store on it, and SQL helpers for the checks that
/// read the same on both engines (`audit`, `j`, `b`, ...): the suites run once per engine
/// (`@Test(arguments: Engine.allCases)`).
struct StoreFixture {
    let engine: Engine
    let db: TemporaryDatabase
    let store: any SudoSOSDatabase
    private let trips: @Sendable () -> Int

    init(_ engine: Engine = .postgres, connectTimeout: Duration = .seconds(5)) throws {
        self.engine = engine
        db = try TemporaryDatabase.create(engine)
        switch engine {
        case .postgres:
            let store = PostgresStore(url: db.url, connectTimeout: connectTimeout, logger: Logger(label: "test.store"))
            self.store = store
            trips = { store.roundTrips }
        case .mariadb:
            let store = try MariaDBStore(url: db.url, connectTimeout: connectTimeout)
            self.store = store
            trips = { store.roundTrips }
        }
    }

    /// Statements the store sent so far.
    var roundTrips: Int { trips() }

    func drop() { db.drop() }

    func runner(maxDeletions: Int = 50, maxRatio: Double = 1.0) -> SyncRunner {
        SyncRunner(
            database: store, threshold: DeletionThreshold(maxDeletions: maxDeletions, maxRatio: maxRatio),
            logger: Logger(label: "test.runner"))
    }

    // MARK: - SQL that reads the same on both engines

    /// Our audit table (`sudosos_sync.audit` / `sudosos_sync_audit`).
    var audit: String { engine == .postgres ? "sudosos_sync.audit" : "sudosos_sync_audit" }
    /// Our verdict table.
    var verdicts: String { engine == .postgres ? "sudosos_sync.verdict" : "sudosos_sync_verdict" }
    /// Our run table.
    var runs: String { engine == .postgres ? "sudosos_sync.run" : "sudosos_sync_run" }

    /// The text at `path` of the JSON in `column` (NULL when absent).
    func j(_ column: String, _ path: String...) -> String {
        switch engine {
        case .postgres:
            return column + path.dropLast().map { "->'\($0)'" }.joined() + "->>'\(path.last!)'"
        case .mariadb:
            return "JSON_UNQUOTE(JSON_EXTRACT(\(column), '$.\(path.joined(separator: "."))'))"
        }
    }

    /// The integer at `key` of the JSON in `column`.
    func jint(_ column: String, _ key: String) -> String {
        engine == .postgres ? "(\(column)->>'\(key)')::int" : "CAST(JSON_EXTRACT(\(column), '$.\(key)') AS SIGNED)"
    }

    /// `expression` as text.
    func text(_ expression: String) -> String {
        engine == .postgres ? "\(expression)::text" : "CAST(\(expression) AS CHAR)"
    }

    /// A boolean as the client prints it.
    func b(_ value: Bool) -> String { engine.bool(value) }

    /// A SudoSOS boolean column inside an audit row's JSON (`true` / `1`).
    func jb(_ value: Bool) -> String { engine == .postgres ? (value ? "true" : "false") : (value ? "1" : "0") }

    /// The moment `minutes` ago, comparable with our run table's times.
    func ago(minutes: Int) -> String {
        engine == .postgres ? "now() - interval '\(minutes) minutes'" : "UTC_TIMESTAMP(6) - INTERVAL \(minutes) MINUTE"
    }

    /// The integers 1...n as a table `gs` of one column `g`.
    func series(_ n: Int) -> String {
        engine == .postgres ? "generate_series(1, \(n)) AS gs(g)" : "(SELECT seq AS g FROM seq_1_to_\(n)) AS gs"
    }

    /// `expression` as an integer.
    func int(_ expression: String) -> String {
        engine == .postgres ? "(\(expression))::int" : "CAST(\(expression) AS SIGNED)"
    }

    /// Drops a SudoSOS table others point at (to test its absence).
    func dropTable(_ table: String) throws {
        try db.sql(engine == .postgres
            ? "DROP TABLE IF EXISTS \(table) CASCADE"
            : "SET FOREIGN_KEY_CHECKS = 0; DROP TABLE IF EXISTS \(table)")
    }

    /// Inserts a user row as the backend would (version 1) and returns its id.
    @discardableResult
    func insertUser(
        _ firstName: String, lastName: String = "", type: UserType = .member, email: String = "",
        active: Bool = true, deleted: Bool = false, version: Int = 1
    ) throws -> Int {
        let id = try db.sql(
            """
            INSERT INTO "user" (version, "firstName", "lastName", type, email, active, deleted)
            VALUES (\(version), '\(firstName)', '\(lastName)', '\(type.rawValue)', '\(email)', \(active), \(deleted))
            RETURNING id
            """)
        guard let value = Int(id) else { throw Unexpected("insert returned \(id)") }
        return value
    }

    /// Rows of a query as arrays of column strings (psql unaligned output).
    func rows(_ sql: String) throws -> [[String]] {
        let out = try db.sql(sql)
        return out.isEmpty ? [] : out.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
    }

    /// A single value.
    func value(_ sql: String) throws -> String { try db.sql(sql) }

    /// The SudoSOS tables' full content (PostgreSQL) or checksum (MariaDB's `CHECKSUM TABLE`,
    /// over every column of every row), to prove a run wrote nothing there.
    func sudososState() throws -> String {
        let tables = ["user", "member_user", "ldap_authenticator", "organ_membership", "role", "assigned_role", "server_setting"]
        if engine == .mariadb {
            return try db.sql("CHECKSUM TABLE " + tables.map { #""\#($0)""# }.joined(separator: ", ") + " EXTENDED")
        }
        return try db.sql(
            """
            SELECT concat_ws(E'\\n',
              (SELECT string_agg(to_jsonb(u)::text, ',' ORDER BY id) FROM "user" u),
              (SELECT string_agg(to_jsonb(m)::text, ',' ORDER BY "userId") FROM member_user m),
              (SELECT string_agg(to_jsonb(a)::text, ',' ORDER BY "userId") FROM ldap_authenticator a),
              (SELECT string_agg(to_jsonb(o)::text, ',' ORDER BY "userId", "organId") FROM organ_membership o),
              (SELECT string_agg(to_jsonb(r)::text, ',' ORDER BY id) FROM role r),
              (SELECT string_agg(to_jsonb(a)::text, ',' ORDER BY "userId", "roleId") FROM assigned_role a),
              (SELECT string_agg(to_jsonb(s)::text, ',' ORDER BY id) FROM server_setting s))
            """)
    }
}

struct Unexpected: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
