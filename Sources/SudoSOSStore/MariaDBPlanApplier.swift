import Foundation
import SyncEngine

/// Applies a plan on MariaDB/MySQL inside the caller's InnoDB transaction, with a constant
/// number of statements per change kind whatever the plan's size. MariaDB has no
/// data-modifying `WITH`, so each kind takes two or three statements instead of one: the rows
/// go in as one JSON parameter expanded by `JSON_TABLE` (the counterpart of PostgreSQL's
/// `unnest`), and the `sudosos_sync_audit` rows are written by `INSERT ... SELECT` from the
/// rows themselves. Any error throws, and the caller rolls everything back.
///
/// The rules are those of `PlanApplier` (docs/database.md), from the same `PlanBatches`:
/// version 1 on insert, `version + 1` and `updatedAt` = now on update, the optimistic check
/// (rows locked `FOR UPDATE`, then compared with the snapshot's version and the plan's old
/// values), removals that must find their rows.
///
/// New users' ids: one multi-row `INSERT ... SELECT ... RETURNING` (MariaDB 10.5+). The ids
/// come from the server as it assigns them, whatever `innodb_autoinc_lock_mode` and
/// concurrent inserts by the backend do, so nothing relies on `LAST_INSERT_ID()` arithmetic;
/// the returned rows are matched to the plan by position and checked column by column
/// (rows that are identical in every inserted column are interchangeable).
struct MariaDBPlanApplier {
    let connection: MariaDBConnection
    let runId: Int64
    /// `user.version` per id as the run's snapshot read it.
    let versions: [Int: Int]
    /// `JSON_OBJECT(...)` of a whole row per SudoSOS table (from the information schema).
    let rowJSON: RowJSON
    /// The schema variant the snapshot was read in: the table and column names written.
    let schema: SudoSOSSchema

    /// Applies `plan`; returns it as applied (deletions whose balance is not zero at apply
    /// time turned into closes).
    func apply(_ original: Plan) throws -> Plan {
        let plan = try Balances.checkingDeletions(original, session: connection)
        let batches = try PlanBatches(plan)
        let newIds = try createUsers(batches.creates)
        let resolve = PlanBatches.resolver(newIds)
        try updateUsers(try batches.mergedEdits(), edits: batches.edits)
        try remove(
            "unbinding", table: "ldap_authenticator", action: "unbound",
            rows: batches.unbinds.map { [.int($0.userId), .text($0.uuid), .text($0.reason)] },
            columns: ["k1 INT PATH '$[0]'", "u VARCHAR(64) PATH '$[1]'", "r LONGTEXT PATH '$[2]'"],
            match: #"a."userId" = t.k1 AND BINARY lower(a."UUID") = BINARY lower(t.u)"#,
            rowKey: #"JSON_OBJECT('userId', a."userId")"#, key: { "\($0[0])" })
        try add(
            "binding", table: "ldap_authenticator", action: "bound",
            rows: try batches.binds.map { [.int(try resolve($0.user)), .text($0.uuid), .text($0.reason)] },
            columns: ["k1 INT PATH '$[0]'", "u VARCHAR(64) PATH '$[1]'", "r LONGTEXT PATH '$[2]'"],
            insert: #"("userId", "UUID", version) SELECT t.k1, lower(t.u), 1"#,
            match: #"a."userId" = t.k1"#, rowKey: #"JSON_OBJECT('userId', a."userId")"#)
        try remove(
            "removing roles", table: "assigned_role", action: "role_removed",
            rows: batches.roleRemovals.map { [.int($0.userId), .int($0.roleId), .text($0.reason)] },
            columns: ["k1 INT PATH '$[0]'", "k2 INT PATH '$[1]'", "r LONGTEXT PATH '$[2]'"],
            match: #"a."userId" = t.k1 AND a."roleId" = t.k2"#,
            rowKey: #"JSON_OBJECT('userId', a."userId", 'roleId', a."roleId")"#, key: { "\($0[0]):\($0[1])" })
        try add(
            "adding roles", table: "assigned_role", action: "role_added",
            rows: try batches.roleAdditions.map { [.int(try resolve($0.user)), .int($0.roleId), .text($0.reason)] },
            columns: ["k1 INT PATH '$[0]'", "k2 INT PATH '$[1]'", "r LONGTEXT PATH '$[2]'"],
            insert: #"("userId", "roleId", version) SELECT t.k1, t.k2, 1"#,
            match: #"a."userId" = t.k1 AND a."roleId" = t.k2"#,
            rowKey: #"JSON_OBJECT('userId', a."userId", 'roleId', a."roleId")"#)
        let memberships = schema.membershipTable, organ = schema.membershipOrganColumn
        try remove(
            "removing organ memberships", table: memberships, action: "membership_removed",
            rows: batches.membershipRemovals.map { [.int($0.userId), .int($0.organId), .text($0.reason)] },
            columns: ["k1 INT PATH '$[0]'", "k2 INT PATH '$[1]'", "r LONGTEXT PATH '$[2]'"],
            match: #"a."userId" = t.k1 AND a."\#(organ)" = t.k2"#,
            rowKey: #"JSON_OBJECT('userId', a."userId", '\#(organ)', a."\#(organ)")"#, key: { "\($0[0]):\($0[1])" })
        // Before 1761328648026 there is no index column: the index only orders the plan.
        let index = schema.membershipHasIndex
        try add(
            "adding organ memberships", table: memberships, action: "membership_added",
            rows: try batches.membershipAdditions.map {
                [.int(try resolve($0.user)), .int(try resolve($0.organ)), .int($0.index), .text($0.reason)]
            },
            columns: ["k1 INT PATH '$[0]'", "k2 INT PATH '$[1]'", "i INT PATH '$[2]'", "r LONGTEXT PATH '$[3]'"],
            insert: #"("userId", "\#(organ)", \#(index ? #""index", "# : "")version) SELECT t.k1, t.k2, \#(index ? "t.i, " : "")1"#,
            match: #"a."userId" = t.k1 AND a."\#(organ)" = t.k2"#,
            rowKey: #"JSON_OBJECT('userId', a."userId", '\#(organ)', a."\#(organ)")"#)
        if !batches.notices.isEmpty {
            let written = try connection.query(
                """
                INSERT INTO sudosos_sync_audit (run_id, at, table_name, row_key, action, "old", "new", reason)
                SELECT ?, UTC_TIMESTAMP(6), 'user', JSON_OBJECT('id', t.k1), 'notice', NULL,
                       JSON_OBJECT('kind', t.kind, 'message', t.msg), t.r
                FROM \(Self.jsonTable(["k1 INT PATH '$[0]'", "kind LONGTEXT PATH '$[1]'", "msg LONGTEXT PATH '$[2]'", "r LONGTEXT PATH '$[3]'"])) ORDER BY t.ord
                """,
                [String(runId), try Self.json(batches.notices.map { [.int($0.userId), .text($0.kind), .text($0.message), .text($0.reason)] })],
                what: "recording notices")
            guard written.affected == batches.notices.count else { throw SyncError.failed("recording notices wrote \(written.affected) rows") }
        }
        try recordVerdicts(plan, resolve: resolve)
        return plan
    }

    // MARK: - Verdicts

    /// Upserts this run's verdicts (`sudosos_sync_verdict`), `at` = now in UTC: one statement.
    private func recordVerdicts(_ plan: Plan, resolve: (UserRef) throws -> Int) throws {
        let rows = try PlanBatches.latestVerdicts(plan, resolve: resolve)
        guard !rows.isEmpty else { return }
        _ = try connection.query(
            """
            INSERT INTO sudosos_sync_verdict (service, user_id, vouches, run_id, at)
            SELECT ?, t.k1, t.v, ?, UTC_TIMESTAMP(6)
            FROM \(Self.jsonTable(["k1 INT PATH '$[0]'", "v INT PATH '$[1]'"])) ORDER BY t.ord
            ON DUPLICATE KEY UPDATE vouches = VALUES(vouches), run_id = VALUES(run_id), at = VALUES(at)
            """,
            [plan.service, String(runId), try Self.json(rows.map { [.int($0.key), .int($0.value ? 1 : 0)] })],
            what: "recording verdicts")
    }

    // MARK: - Creates

    /// Inserts the new users (version 1), their `member_user` rows and audit rows; returns
    /// plan ref → id. Three statements for any number of users.
    private func createUsers(_ creates: [(user: NewUser, reason: String)]) throws -> [Int: Int] {
        guard !creates.isEmpty else { return [:] }
        let users = creates.map(\.user)
        // The terms-of-service column of the schema variant, as text or boolean.
        let tos = schema.termsOfServiceColumn
        let rows: [[JSONScalar]] = users.map {
            [.text($0.firstName), .text($0.lastName), .text($0.email), .int($0.active ? 1 : 0), .int($0.ofAge ? 1 : 0),
             .text($0.type.rawValue), Self.scalar(schema.columnValue(.text($0.acceptedToS.rawValue), of: .acceptedToS)),
             .int($0.canGoIntoDebt ? 1 : 0)]
        }
        let inserted = try connection.query(
            """
            INSERT INTO "user" (version, "firstName", "lastName", email, active, "ofAge", type, "\(tos.column)", "canGoIntoDebt")
            SELECT 1, t.f, t.l, t.e, t.a, t.o, t.ty, t.tos, t.d
            FROM \(Self.jsonTable([
                "f VARCHAR(255) PATH '$[0]'", "l VARCHAR(255) PATH '$[1]'", "e VARCHAR(255) PATH '$[2]'", "a INT PATH '$[3]'",
                "o INT PATH '$[4]'", "ty VARCHAR(64) PATH '$[5]'", tos.type == .boolean ? "tos INT PATH '$[6]'" : "tos VARCHAR(255) PATH '$[6]'",
                "d INT PATH '$[7]'",
            ])) ORDER BY t.ord
            RETURNING id, "firstName", "lastName", email, type
            """,
            [try Self.json(rows)], what: "creating users")
        guard inserted.count == users.count else {
            throw SyncError.failed("creating users inserted \(inserted.count) rows, \(users.count) planned")
        }
        var ids: [Int] = []
        for (row, user) in zip(inserted.rows, users) {
            guard try row.string("firstName") == user.firstName, try row.string("lastName") == user.lastName,
                try row.string("email") == user.email, try row.string("type") == user.type.rawValue
            else { throw SyncError.failed("creating users: the ids the server returned do not match the planned rows") }
            ids.append(try row.int("id"))
        }
        let members: [[JSONScalar]] = zip(ids, users).compactMap { id, user in user.memberId.map { [.int(id), .int($0)] } }
        if !members.isEmpty {
            let written = try connection.query(
                #"INSERT INTO "\#(schema.memberTable)" ("userId", "\#(schema.memberNumberColumn)") SELECT t.k1, t.m "#
                    + "FROM \(Self.jsonTable(["k1 INT PATH '$[0]'", "m INT PATH '$[1]'"])) ORDER BY t.ord",
                [try Self.json(members)], what: "creating member numbers")
            guard written.affected == members.count else { throw SyncError.failed("creating member numbers wrote too few rows") }
        }
        let audits: [[JSONScalar]] = zip(ids, creates).map { id, create in
            [.int(id), create.user.memberId.map(JSONScalar.int) ?? .null, .text(create.reason)]
        }
        let written = try connection.query(
            """
            INSERT INTO sudosos_sync_audit (run_id, at, table_name, row_key, action, "old", "new", reason)
            SELECT ?, UTC_TIMESTAMP(6), 'user', JSON_OBJECT('id', a.id), 'created', NULL,
                   IF(t.m IS NULL, \(rowJSON.object("user", alias: "a")),
                      JSON_MERGE_PATCH(\(rowJSON.object("user", alias: "a")), JSON_OBJECT('memberId', t.m))), t.r
            FROM \(Self.jsonTable(["k1 INT PATH '$[0]'", "m INT PATH '$[1]'", "r LONGTEXT PATH '$[2]'"]))
            JOIN "user" a ON a.id = t.k1 ORDER BY t.ord
            """,
            [String(runId), try Self.json(audits)], what: "auditing created users")
        guard written.affected == creates.count else { throw SyncError.failed("creating users inserted fewer rows than planned") }
        return Dictionary(uniqueKeysWithValues: zip(users.map(\.ref), ids))
    }

    // MARK: - Updates

    /// Updates users' own columns: each row once (several changes of one user merge, each
    /// keeps its own audit row), only where the optimistic check holds. Three statements:
    /// lock and read the rows, update them all, audit.
    private func updateUsers(_ merged: PlanBatches.MergedEdits, edits: [PlanBatches.UserEdit]) throws {
        guard !edits.isEmpty else { return }
        let fields = UserField.allCases
        let userColumns = fields.map { schema.userColumn($0) }
        let columns = userColumns.map { #""\#($0.column)""# }.joined(separator: ", ")
        let (expect, set) = merged.byColumn(schema)
        let current = try connection.query(
            """
            SELECT id, version, \(columns), \(rowJSON.object("user", alias: "\"user\"")) AS old_row
            FROM "user" WHERE id IN (SELECT v FROM JSON_TABLE(?, '$[*]' COLUMNS (v INT PATH '$')) AS jt) FOR UPDATE
            """,
            [try Self.json(merged.order.map(JSONScalar.int))], what: "locking the users to update")
        var oldRows: [Int: String] = [:]
        for row in current.rows {
            let id = try row.int("id")
            if let version = versions[id], try row.int("version") != version { continue }
            var same = true
            for column in userColumns {
                guard let old = expect[id]?[column.column] else { continue }
                let value: FieldValue = column.type == .boolean
                    ? .flag(try row.bool(column.column)) : .text(try row.string(column.column))
                if value != old { same = false }
            }
            if same { oldRows[id] = try row.string("old_row") }
        }
        let stale = merged.order.filter { oldRows[$0] == nil }
        guard stale.isEmpty else { throw PlanBatches.staleUsers(stale) }

        // One row per user: for each field a presence flag and the value to set.
        var tableColumns = ["id INT PATH '$[0]'"]
        var assignments: [String] = []
        for (i, column) in userColumns.enumerated() {
            let name = column.column
            tableColumns.append("h\(i) INT PATH '$[\(2 * i + 1)]'")
            tableColumns.append(column.type == .boolean ? "v\(i) INT PATH '$[\(2 * i + 2)]'" : "v\(i) VARCHAR(255) PATH '$[\(2 * i + 2)]'")
            assignments.append(#"u."\#(name)" = IF(t.h\#(i) = 1, t.v\#(i), u."\#(name)")"#)
        }
        let rows: [[JSONScalar]] = merged.order.map { id in
            var row: [JSONScalar] = [.int(id)]
            for column in userColumns {
                switch set[id]?[column.column] {
                case .text(let s)?: row += [.int(1), .text(s)]
                case .flag(let b)?: row += [.int(1), .int(b ? 1 : 0)]
                case nil: row += [.int(0), .null]
                }
            }
            return row
        }
        let updated = try connection.query(
            """
            UPDATE "user" u JOIN \(Self.jsonTable(tableColumns)) ON u.id = t.id
            SET \(assignments.joined(separator: ", ")), u.version = u.version + 1, u."updatedAt" = CURRENT_TIMESTAMP(6)
            """,
            [try Self.json(rows)], what: "updating users")
        guard updated.affected == merged.order.count else { throw PlanBatches.staleUsers(merged.order) }

        let audits: [[JSONScalar]] = edits.map { [.int($0.userId), .text($0.action.rawValue), .text(oldRows[$0.userId]!), .text($0.reason)] }
        let written = try connection.query(
            """
            INSERT INTO sudosos_sync_audit (run_id, at, table_name, row_key, action, "old", "new", reason)
            SELECT ?, UTC_TIMESTAMP(6), 'user', JSON_OBJECT('id', a.id), t.act, t.o, \(rowJSON.object("user", alias: "a")), t.r
            FROM \(Self.jsonTable(["k1 INT PATH '$[0]'", "act VARCHAR(32) PATH '$[1]'", "o LONGTEXT PATH '$[2]'", "r LONGTEXT PATH '$[3]'"]))
            JOIN "user" a ON a.id = t.k1 ORDER BY t.ord
            """,
            [String(runId), try Self.json(audits)], what: "auditing updated users")
        guard written.affected == edits.count else { throw SyncError.failed("auditing updated users wrote too few rows") }
    }

    // MARK: - Relation rows

    /// Removes relation rows: audits them (old = the row as it is), then deletes them; both
    /// must find every planned row, or the plan fails.
    private func remove(
        _ what: String, table: String, action: String, rows: [[JSONScalar]], columns: [String], match: String,
        rowKey: String, key: ([JSONScalar]) -> String
    ) throws {
        guard !rows.isEmpty else { return }
        let parameter = try Self.json(rows)
        let audited = try connection.query(
            """
            INSERT INTO sudosos_sync_audit (run_id, at, table_name, row_key, action, "old", "new", reason)
            SELECT ?, UTC_TIMESTAMP(6), '\(table)', \(rowKey), '\(action)', \(rowJSON.object(table, alias: "a")), NULL, t.r
            FROM \(Self.jsonTable(columns)) JOIN \(table) a ON \(match) ORDER BY t.ord
            """,
            [String(runId), parameter], what: what)
        let deleted = try audited.affected == rows.count
            ? connection.query("DELETE a FROM \(table) a JOIN \(Self.jsonTable(columns)) ON \(match)", [parameter], what: what).affected
            : audited.affected
        guard deleted == rows.count else {
            // Name the rows that are gone (one more statement, only on this failure).
            let found = try connection.query(
                "SELECT t.ord AS o FROM \(Self.jsonTable(columns)) JOIN \(table) a ON \(match)", [parameter], what: what)
            let present = Set(try found.rows.map { try $0.int("o") })
            let missing = rows.enumerated().filter { !present.contains($0.offset + 1) }.map { key($0.element) }
            throw PlanBatches.stale(what, missing.isEmpty ? rows.map(key) : missing)
        }
    }

    /// Inserts relation rows (version 1), then audits them (new = the row as written). A row
    /// that exists already fails the plan on its primary key.
    private func add(
        _ what: String, table: String, action: String, rows: [[JSONScalar]], columns: [String], insert: String,
        match: String, rowKey: String
    ) throws {
        guard !rows.isEmpty else { return }
        let parameter = try Self.json(rows)
        let inserted = try connection.query(
            "INSERT INTO \(table) \(insert) FROM \(Self.jsonTable(columns)) ORDER BY t.ord", [parameter], what: what)
        guard inserted.affected == rows.count else { throw SyncError.failed("\(what) wrote \(inserted.affected) of \(rows.count) rows") }
        let audited = try connection.query(
            """
            INSERT INTO sudosos_sync_audit (run_id, at, table_name, row_key, action, "old", "new", reason)
            SELECT ?, UTC_TIMESTAMP(6), '\(table)', \(rowKey), '\(action)', NULL, \(rowJSON.object(table, alias: "a")), t.r
            FROM \(Self.jsonTable(columns)) JOIN \(table) a ON \(match) ORDER BY t.ord
            """,
            [String(runId), parameter], what: what)
        guard audited.affected == rows.count else { throw SyncError.failed("\(what): auditing wrote \(audited.affected) of \(rows.count) rows") }
    }

    // MARK: - Helpers

    static func scalar(_ value: FieldValue) -> JSONScalar {
        switch value {
        case .text(let s): return .text(s)
        case .flag(let b): return .int(b ? 1 : 0)
        }
    }

    /// `JSON_TABLE(?, '$[*]' COLUMNS (ord FOR ORDINALITY, ...)) AS t` over a JSON array of rows.
    static func jsonTable(_ columns: [String]) -> String {
        "JSON_TABLE(?, '$[*]' COLUMNS (ord FOR ORDINALITY, \(columns.joined(separator: ", ")))) AS t"
    }

    /// The JSON text of a parameter.
    static func json(_ value: [[JSONScalar]]) throws -> String {
        try PGValue.json(value)
    }

    static func json(_ value: [JSONScalar]) throws -> String {
        try PGValue.json(value)
    }
}

/// `JSON_OBJECT('column', alias."column", ...)` of whole rows of SudoSOS's tables, built from
/// the information schema (so the audit keeps every column, as `to_jsonb` does on PostgreSQL,
/// whatever migration the database is at).
struct RowJSON: Sendable {
    static let tables = ["user", "ldap_authenticator", "assigned_role", "organ_membership", "member_authenticator"]
    var columns: [String: [String]]

    static func read(_ connection: MariaDBConnection) throws -> RowJSON {
        let marks = tables.map { _ in "?" }.joined(separator: ", ")
        let rows = try connection.query(
            """
            SELECT table_name AS t, column_name AS c FROM information_schema.columns
            WHERE table_schema = DATABASE() AND table_name IN (\(marks)) ORDER BY table_name, ordinal_position
            """, tables, what: "reading the columns of SudoSOS's tables")
        var columns: [String: [String]] = [:]
        for row in rows.rows { columns[try row.string("t"), default: []].append(try row.string("c")) }
        return RowJSON(columns: columns)
    }

    func object(_ table: String, alias: String) -> String {
        "JSON_OBJECT(" + (columns[table] ?? []).map { "'\($0)', \(alias).\"\($0)\"" }.joined(separator: ", ") + ")"
    }
}
