import SyncEngine

/// Applies a plan inside the caller's transaction, with a constant number of statements per
/// change kind whatever the plan's size: each kind is one bulk statement over `unnest`ed array
/// parameters that writes the rows and their `sudosos_sync.audit` rows together (creates take
/// one more, to reserve the new ids). Any error throws, and the caller rolls everything back.
///
/// Rules (docs/database.md):
/// - inserts set `version` = 1; every update sets `version = version + 1, "updatedAt" = now()`;
/// - an update only happens when the row still has the version the snapshot read and the old
///   values the plan saw (optimistic check); otherwise the whole plan fails, rather than
///   overwriting a concurrent edit made through the backend;
/// - a removal must find its row (unbind: with the same UUID), or the plan fails;
/// - order: creates, user updates, unbinds, binds, role removals, role additions, membership
///   removals, membership additions, notices; so a rebind or a re-added row works.
struct PlanApplier {
    let connection: PGConnection
    let runId: Int64
    /// `"user".version` per id as the run's snapshot read it.
    let versions: [Int: Int]

    /// One change of a user's own columns, with its reason.
    private struct UserEdit {
        var userId: Int
        var action: ChangeAction
        var fields: [FieldChange]
        var reason: String
    }

    /// Applies `plan`; returns it as applied (deletions whose balance is not zero at apply
    /// time turned into closes).
    func apply(_ original: Plan) throws -> Plan {
        let plan = try checkingBalances(original)
        var creates: [(NewUser, String)] = []
        var edits: [UserEdit] = []
        var unbinds: [(Int, String, String)] = []
        var binds: [(UserRef, String, String)] = []
        var roleRemovals: [(Int, Int, String)] = []
        var roleAdditions: [(UserRef, Int, String)] = []
        var membershipRemovals: [(Int, Int, String)] = []
        var membershipAdditions: [(UserRef, UserRef, Int, String)] = []
        var notices: [(Int, String, String, String)] = []
        for planned in plan.changes {
            let reason = planned.reason
            switch planned.change {
            case .createUser(let user): creates.append((user, reason))
            case .updateUser(let id, let fields): edits.append(UserEdit(userId: id, action: .updated, fields: fields, reason: reason))
            case .deactivateUser(let id, let fields):
                edits.append(UserEdit(userId: id, action: .deactivated, fields: fields, reason: reason))
            case .deleteUser(let id, let fields):
                edits.append(UserEdit(userId: id, action: .deleted, fields: fields, reason: reason))
            case .bind(let user, let uuid): binds.append((user, uuid, reason))
            case .unbind(let id, let uuid): unbinds.append((id, uuid, reason))
            case .addRole(let user, let roleId, _): roleAdditions.append((user, roleId, reason))
            case .removeRole(let id, let roleId, _): roleRemovals.append((id, roleId, reason))
            case .addMembership(let user, let organ, let index): membershipAdditions.append((user, organ, index, reason))
            case .removeMembership(let id, let organId): membershipRemovals.append((id, organId, reason))
            case .notice(let id, let kind, let message): notices.append((id, kind, message, reason))
            }
        }

        let newIds = try createUsers(creates)
        func resolve(_ ref: UserRef) throws -> Int {
            switch ref {
            case .existing(let id): return id
            case .new(let n):
                guard let id = newIds[n] else {
                    throw SyncError.failed("the plan refers to new user #\(n), which it does not create")
                }
                return id
            }
        }

        try updateUsers(edits)
        try bulk(
            "unbinding", rows: unbinds,
            columns: [("int", { String($0.0) }), ("text", { $0.1 }), ("text", { $0.2 })],
            key: { "\($0.0)" },
            sql: """
                del AS (DELETE FROM ldap_authenticator a USING t WHERE a."userId" = t.c1 AND lower(a."UUID") = lower(t.c2)
                        RETURNING a.*),
                aud AS (INSERT INTO sudosos_sync.audit (run_id, table_name, row_key, action, old, new, reason)
                        SELECT $1::bigint, 'ldap_authenticator', jsonb_build_object('userId', del."userId"), 'unbound',
                               to_jsonb(del), NULL, t.c3
                        FROM del JOIN t ON t.c1 = del."userId" ORDER BY t.ord RETURNING 1)
                SELECT del."userId"::text AS k FROM del
                """)
        try bulk(
            "binding", rows: try binds.map { (try resolve($0.0), $0.1, $0.2) },
            columns: [("int", { String($0.0) }), ("text", { $0.1 }), ("text", { $0.2 })],
            key: { "\($0.0)" },
            sql: """
                ins AS (INSERT INTO ldap_authenticator ("userId", "UUID", version)
                        SELECT t.c1, lower(t.c2), 1 FROM t ORDER BY t.ord RETURNING *),
                aud AS (INSERT INTO sudosos_sync.audit (run_id, table_name, row_key, action, old, new, reason)
                        SELECT $1::bigint, 'ldap_authenticator', jsonb_build_object('userId', ins."userId"), 'bound',
                               NULL, to_jsonb(ins), t.c3
                        FROM ins JOIN t ON t.c1 = ins."userId" ORDER BY t.ord RETURNING 1)
                SELECT ins."userId"::text AS k FROM ins
                """)
        try bulk(
            "removing roles", rows: roleRemovals,
            columns: [("int", { String($0.0) }), ("int", { String($0.1) }), ("text", { $0.2 })],
            key: { "\($0.0):\($0.1)" },
            sql: """
                del AS (DELETE FROM assigned_role a USING t WHERE a."userId" = t.c1 AND a."roleId" = t.c2 RETURNING a.*),
                aud AS (INSERT INTO sudosos_sync.audit (run_id, table_name, row_key, action, old, new, reason)
                        SELECT $1::bigint, 'assigned_role',
                               jsonb_build_object('userId', del."userId", 'roleId', del."roleId"), 'role_removed',
                               to_jsonb(del), NULL, t.c3
                        FROM del JOIN t ON t.c1 = del."userId" AND t.c2 = del."roleId" ORDER BY t.ord RETURNING 1)
                SELECT del."userId"::text || ':' || del."roleId"::text AS k FROM del
                """)
        try bulk(
            "adding roles", rows: try roleAdditions.map { (try resolve($0.0), $0.1, $0.2) },
            columns: [("int", { String($0.0) }), ("int", { String($0.1) }), ("text", { $0.2 })],
            key: { "\($0.0):\($0.1)" },
            sql: """
                ins AS (INSERT INTO assigned_role ("userId", "roleId", version)
                        SELECT t.c1, t.c2, 1 FROM t ORDER BY t.ord RETURNING *),
                aud AS (INSERT INTO sudosos_sync.audit (run_id, table_name, row_key, action, old, new, reason)
                        SELECT $1::bigint, 'assigned_role',
                               jsonb_build_object('userId', ins."userId", 'roleId', ins."roleId"), 'role_added',
                               NULL, to_jsonb(ins), t.c3
                        FROM ins JOIN t ON t.c1 = ins."userId" AND t.c2 = ins."roleId" ORDER BY t.ord RETURNING 1)
                SELECT ins."userId"::text || ':' || ins."roleId"::text AS k FROM ins
                """)
        try bulk(
            "removing organ memberships", rows: membershipRemovals,
            columns: [("int", { String($0.0) }), ("int", { String($0.1) }), ("text", { $0.2 })],
            key: { "\($0.0):\($0.1)" },
            sql: """
                del AS (DELETE FROM organ_membership m USING t WHERE m."userId" = t.c1 AND m."organId" = t.c2 RETURNING m.*),
                aud AS (INSERT INTO sudosos_sync.audit (run_id, table_name, row_key, action, old, new, reason)
                        SELECT $1::bigint, 'organ_membership',
                               jsonb_build_object('userId', del."userId", 'organId', del."organId"), 'membership_removed',
                               to_jsonb(del), NULL, t.c3
                        FROM del JOIN t ON t.c1 = del."userId" AND t.c2 = del."organId" ORDER BY t.ord RETURNING 1)
                SELECT del."userId"::text || ':' || del."organId"::text AS k FROM del
                """)
        try bulk(
            "adding organ memberships",
            rows: try membershipAdditions.map { (try resolve($0.0), try resolve($0.1), $0.2, $0.3) },
            columns: [
                ("int", { String($0.0) }), ("int", { String($0.1) }), ("int", { String($0.2) }), ("text", { $0.3 }),
            ],
            key: { "\($0.0):\($0.1)" },
            sql: """
                ins AS (INSERT INTO organ_membership ("userId", "organId", "index", version)
                        SELECT t.c1, t.c2, t.c3, 1 FROM t ORDER BY t.ord RETURNING *),
                aud AS (INSERT INTO sudosos_sync.audit (run_id, table_name, row_key, action, old, new, reason)
                        SELECT $1::bigint, 'organ_membership',
                               jsonb_build_object('userId', ins."userId", 'organId', ins."organId"), 'membership_added',
                               NULL, to_jsonb(ins), t.c4
                        FROM ins JOIN t ON t.c1 = ins."userId" AND t.c2 = ins."organId" ORDER BY t.ord RETURNING 1)
                SELECT ins."userId"::text || ':' || ins."organId"::text AS k FROM ins
                """)
        try recordVerdicts(plan, resolve: resolve)
        try bulk(
            "recording notices", rows: notices,
            columns: [("int", { String($0.0) }), ("text", { $0.1 }), ("text", { $0.2 }), ("text", { $0.3 })],
            key: { "\($0.0)" },
            sql: """
                aud AS (INSERT INTO sudosos_sync.audit (run_id, table_name, row_key, action, old, new, reason)
                        SELECT $1::bigint, 'user', jsonb_build_object('id', t.c1), 'notice', NULL,
                               jsonb_build_object('kind', t.c2, 'message', t.c3), t.c4
                        FROM t ORDER BY t.ord RETURNING row_key->>'id' AS k)
                SELECT k FROM aud
                """)
        return plan
    }

    // MARK: - The balance at apply time

    /// Locks the rows of the users the plan deletes (`FOR UPDATE`: a purchase or transfer for
    /// them checks its foreign key with a KEY SHARE lock, so it waits for this transaction) and
    /// computes their balances inside the transaction. A deletion whose balance is not exactly
    /// zero now becomes a close without delete (and the closing notice, when the user was
    /// active), with the reason saying why. Three statements (lock, balance tables present,
    /// balances), whatever the number of deletions.
    private func checkingBalances(_ plan: Plan) throws -> Plan {
        let deleted = MemberClosing.deletedUsers(in: plan)
        guard !deleted.isEmpty else { return plan }
        _ = try connection.query(
            #"SELECT id FROM "user" WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE"#,
            [PGValue.intArray(deleted)], what: "locking the users to delete")
        return MemberClosing.checkingDeletions(plan, balancesNow: try Balances.read(deleted, connection: connection))
    }

    // MARK: - Verdicts

    /// Upserts this run's verdicts (`sudosos_sync.verdict`), `at` = now(): one statement.
    private func recordVerdicts(_ plan: Plan, resolve: (UserRef) throws -> Int) throws {
        guard !plan.verdicts.isEmpty else { return }
        var latest: [Int: Bool] = [:]
        for verdict in plan.verdicts { latest[try resolve(verdict.user)] = verdict.vouches }
        let rows = latest.sorted { $0.key < $1.key }
        try connection.query(
            """
            INSERT INTO sudosos_sync.verdict (service, user_id, vouches, run_id, at)
            SELECT $1, t.user_id, t.vouches, $2::bigint, now() FROM unnest($3::int[], $4::bool[]) AS t(user_id, vouches)
            ON CONFLICT (service, user_id) DO UPDATE SET vouches = EXCLUDED.vouches, run_id = EXCLUDED.run_id, at = EXCLUDED.at
            """,
            [plan.service, String(runId), PGValue.intArray(rows.map(\.key)), PGValue.boolArray(rows.map(\.value))],
            what: "recording verdicts")
    }

    // MARK: - Creates

    /// Inserts the new users (version 1) and their `member_user` rows; returns plan ref → id.
    /// The ids are reserved from the sequence first, so refs map to ids without relying on the
    /// order of RETURNING.
    private func createUsers(_ creates: [(NewUser, String)]) throws -> [Int: Int] {
        guard !creates.isEmpty else { return [:] }
        var seen = Set<Int>()
        for (user, _) in creates where !seen.insert(user.ref).inserted {
            throw SyncError.failed("the plan creates new user #\(user.ref) twice")
        }
        let reserved = try connection.query(
            #"SELECT nextval(pg_get_serial_sequence('"user"', 'id'))::int AS id FROM generate_series(1, $1::int)"#,
            [String(creates.count)], what: "reserving user ids")
        let ids = try reserved.rows.map { try $0.int("id") }
        guard ids.count == creates.count else { throw SyncError.failed("reserving user ids returned \(ids.count) ids") }
        let users = creates.map(\.0)
        let rows = try connection.query(
            """
            WITH t AS (
              SELECT * FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::bool[], $8::text[],
                                   $9::text[], $10::bool[], $11::int[], $12::text[])
                WITH ORDINALITY AS t(id, first_name, last_name, email, active, of_age, type, tos, debt, member_id, reason, ord)
            ), ins AS (
              INSERT INTO "user" (id, version, "firstName", "lastName", email, active, "ofAge", type, "acceptedToS",
                                  "canGoIntoDebt")
              SELECT id, 1, first_name, last_name, email, active, of_age, type, tos, debt FROM t ORDER BY ord
              RETURNING *
            ), mu AS (
              INSERT INTO member_user ("userId", "memberId")
              SELECT id, member_id FROM t WHERE member_id IS NOT NULL ORDER BY ord
              RETURNING "userId"
            ), aud AS (
              INSERT INTO sudosos_sync.audit (run_id, table_name, row_key, action, old, new, reason)
              SELECT $1::bigint, 'user', jsonb_build_object('id', ins.id), 'created', NULL,
                     to_jsonb(ins) || CASE WHEN t.member_id IS NULL THEN '{}'::jsonb
                                           ELSE jsonb_build_object('memberId', t.member_id) END,
                     t.reason
              FROM ins JOIN t ON t.id = ins.id ORDER BY t.ord
              RETURNING 1
            )
            SELECT (SELECT count(*) FROM ins) AS users, (SELECT count(*) FROM mu) AS members,
                   (SELECT count(*) FROM aud) AS audits
            """,
            [
                String(runId), PGValue.intArray(ids), PGValue.textArray(users.map(\.firstName)),
                PGValue.textArray(users.map(\.lastName)), PGValue.textArray(users.map(\.email)),
                PGValue.boolArray(users.map(\.active)), PGValue.boolArray(users.map(\.ofAge)),
                PGValue.textArray(users.map(\.type.rawValue)), PGValue.textArray(users.map(\.acceptedToS.rawValue)),
                PGValue.boolArray(users.map(\.canGoIntoDebt)), PGValue.intArray(users.map(\.memberId)),
                PGValue.textArray(creates.map(\.1)),
            ],
            what: "creating users")
        guard let row = rows.rows.first, try row.int("users") == creates.count, try row.int("audits") == creates.count
        else { throw SyncError.failed("creating users inserted fewer rows than planned") }
        return Dictionary(uniqueKeysWithValues: zip(users.map(\.ref), ids))
    }

    // MARK: - Updates

    /// Updates users' own columns: one UPDATE for all of them, each row once (several changes of
    /// one user merge; each keeps its own audit row), only where the optimistic check holds.
    private func updateUsers(_ edits: [UserEdit]) throws {
        guard !edits.isEmpty else { return }
        var order: [Int] = []
        var expect: [Int: [String: FieldValue]] = [:]
        var set: [Int: [String: FieldValue]] = [:]
        for edit in edits {
            if expect[edit.userId] == nil {
                order.append(edit.userId)
                expect[edit.userId] = [:]
                set[edit.userId] = [:]
            }
            for change in edit.fields {
                try Self.checkType(change.new, of: change.field, user: edit.userId)
                try Self.checkType(change.old, of: change.field, user: edit.userId)
                if expect[edit.userId]![change.field.rawValue] == nil && set[edit.userId]![change.field.rawValue] == nil {
                    expect[edit.userId]![change.field.rawValue] = change.old
                }
                set[edit.userId]![change.field.rawValue] = change.new
            }
            switch edit.action {
            case .deactivated:
                set[edit.userId]![UserField.active.rawValue] = .flag(false)
            case .deleted:
                set[edit.userId]![UserField.deleted.rawValue] = .flag(true)
                set[edit.userId]![UserField.active.rawValue] = .flag(false)
                set[edit.userId]![UserField.canGoIntoDebt.rawValue] = .flag(false)
            default:
                break
            }
        }
        let expectJSON = try order.map { id -> String in
            var object = expect[id]!.mapValues(JSONScalar.init)
            if let version = versions[id] { object["version"] = .int(version) }
            return try PGValue.json(object)
        }
        let setJSON = try order.map { try PGValue.json(set[$0]!.mapValues(JSONScalar.init)) }
        func text(_ column: String) -> String {
            #""\#(column)" = CASE WHEN t.set ? '\#(column)' THEN t.set->>'\#(column)' ELSE u."\#(column)" END"#
        }
        func flag(_ column: String) -> String {
            #""\#(column)" = CASE WHEN t.set ? '\#(column)' THEN (t.set->>'\#(column)')::boolean ELSE u."\#(column)" END"#
        }
        let assignments = UserField.allCases.map { field -> String in
            switch field {
            case .firstName, .lastName, .email, .acceptedToS: return text(field.rawValue)
            case .active, .ofAge, .deleted, .canGoIntoDebt: return flag(field.rawValue)
            }
        }.joined(separator: ",\n      ")
        let rows = try connection.query(
            """
            WITH t AS (
              SELECT * FROM unnest($2::int[], $3::jsonb[], $4::jsonb[]) AS t(id, expect, set)
            ), c AS (
              SELECT * FROM unnest($5::int[], $6::text[], $7::text[]) WITH ORDINALITY AS c(id, action, reason, ord)
            ), old AS (
              SELECT u.* FROM "user" u JOIN t ON u.id = t.id
            ), upd AS (
              UPDATE "user" u SET
                  \(assignments),
                  version = u.version + 1, "updatedAt" = now()
              FROM t WHERE u.id = t.id AND to_jsonb(u) @> t.expect
              RETURNING u.*
            ), aud AS (
              INSERT INTO sudosos_sync.audit (run_id, table_name, row_key, action, old, new, reason)
              SELECT $1::bigint, 'user', jsonb_build_object('id', c.id), c.action, to_jsonb(old), to_jsonb(upd), c.reason
              FROM c JOIN old ON old.id = c.id JOIN upd ON upd.id = c.id ORDER BY c.ord
              RETURNING 1
            )
            SELECT upd.id::text AS k FROM upd
            """,
            [
                String(runId), PGValue.intArray(order), PGValue.textArray(expectJSON), PGValue.textArray(setJSON),
                PGValue.intArray(edits.map(\.userId)), PGValue.textArray(edits.map(\.action.rawValue)),
                PGValue.textArray(edits.map(\.reason)),
            ],
            what: "updating users")
        let updated = Set(try rows.rows.map { try $0.string("k") })
        let stale = order.filter { !updated.contains(String($0)) }
        guard stale.isEmpty else {
            throw SyncError.failed(
                "\(Self.list(stale.map { "user \($0)" })) changed (or vanished) since this run read it; "
                    + "nothing was written, the next run plans again")
        }
    }

    /// A text field must get text (and `acceptedToS` a known value), a flag a boolean.
    private static func checkType(_ value: FieldValue, of field: UserField, user: Int) throws {
        switch (field, value) {
        case (.acceptedToS, .text(let v)) where TermsOfServiceStatus(rawValue: v) == nil:
            throw SyncError.failed("the plan sets acceptedToS of user \(user) to an unknown value")
        case (.firstName, .text), (.lastName, .text), (.email, .text), (.acceptedToS, .text),
            (.active, .flag), (.ofAge, .flag), (.deleted, .flag), (.canGoIntoDebt, .flag):
            return
        default:
            throw SyncError.failed("the plan gives \(field.rawValue) of user \(user) a value of the wrong type")
        }
    }

    // MARK: - Relation rows

    /// One bulk statement for one kind of relation change: the rows go in as `unnest`ed arrays
    /// (`t.c1`, `t.c2`, ... with `t.ord` their order), `sql` holds the CTEs after `t` and the final
    /// SELECT of key `k` per written row; every planned row must come back, or the plan fails.
    private func bulk<Row>(
        _ what: String, rows: [Row], columns: [(type: String, value: (Row) -> String)], key: (Row) -> String,
        sql: String
    ) throws {
        guard !rows.isEmpty else { return }
        let unnestArguments = columns.indices.map { "$\($0 + 2)::\(columns[$0].type)[]" }.joined(separator: ", ")
        let names = columns.indices.map { "c\($0 + 1)" }.joined(separator: ", ")
        let parameters: [String?] = [String(runId)] + columns.map { column in
            column.type == "int"
                ? PGValue.intArray(rows.map { Int(column.value($0))! })
                : PGValue.textArray(rows.map { column.value($0) })
        }
        let result = try connection.query(
            "WITH t AS (SELECT * FROM unnest(\(unnestArguments)) WITH ORDINALITY AS t(\(names), ord)),\n" + sql,
            parameters, what: what)
        let written = Set(try result.rows.map { try $0.string("k") })
        let expected = rows.map(key)
        let missing = expected.filter { !written.contains($0) }
        guard missing.isEmpty, written.count == Set(expected).count else {
            throw SyncError.failed(
                "\(what): \(Self.list(missing)) no longer as this run read it; nothing was written, the next run plans again")
        }
    }

    /// Up to five items, then a count.
    private static func list(_ items: [String]) -> String {
        items.count <= 5 ? items.joined(separator: ", ") : items.prefix(5).joined(separator: ", ") + " and \(items.count - 5) more"
    }
}

/// A JSON scalar for the update statement's `expect`/`set` objects.
private enum JSONScalar: Encodable {
    case text(String)
    case flag(Bool)
    case int(Int)

    init(_ value: FieldValue) {
        switch value {
        case .text(let s): self = .text(s)
        case .flag(let b): self = .flag(b)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .text(let s): try container.encode(s)
        case .flag(let b): try container.encode(b)
        case .int(let i): try container.encode(i)
        }
    }
}
