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

/// A throwaway database, a store on it, and SQL helpers for the checks.
struct StoreFixture {
    let db: TemporaryDatabase
    let store: PostgresStore

    init(connectTimeout: Duration = .seconds(5)) throws {
        db = try TemporaryDatabase.create()
        store = PostgresStore(url: db.url, connectTimeout: connectTimeout, logger: Logger(label: "test.store"))
    }

    func drop() { db.drop() }

    func runner(maxDeletions: Int = 50, maxRatio: Double = 1.0) -> SyncRunner {
        SyncRunner(
            database: store, threshold: DeletionThreshold(maxDeletions: maxDeletions, maxRatio: maxRatio),
            logger: Logger(label: "test.runner"))
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

    /// The SudoSOS tables' full content, to prove a run wrote nothing there.
    func sudososState() throws -> String {
        try db.sql(
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
