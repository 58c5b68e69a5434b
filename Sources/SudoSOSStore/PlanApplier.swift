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
    /// The schema variant the snapshot was read in: the table and column names written.
    let schema: SudoSOSSchema

    /// Applies `plan`; returns it as applied (deletions whose balance is not zero at apply
    /// time turned into closes).
    func apply(_ original: Plan) throws -> Plan {
        let plan = try Balances.checkingDeletions(original, session: connection)
        let batches = try PlanBatches(plan)
        let newIds = try createUsers(batches.creates)
        let resolve = PlanBatches.resolver(newIds)
        let unbinds = batches.unbinds, binds = batches.binds, roleRemovals = batches.roleRemovals
        let roleAdditions = batches.roleAdditions, membershipRemovals = batches.membershipRemovals
        let membershipAdditions = batches.membershipAdditions, notices = batches.notices

        try updateUsers(try batches.mergedEdits(), edits: batches.edits)
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
        let memberships = schema.membershipTable
        let organ = schema.membershipOrganColumn
        try bulk(
            "removing organ memberships", rows: membershipRemovals,
            columns: [("int", { String($0.0) }), ("int", { String($0.1) }), ("text", { $0.2 })],
            key: { "\($0.0):\($0.1)" },
            sql: """
                del AS (DELETE FROM "\(memberships)" m USING t WHERE m."userId" = t.c1 AND m."\(organ)" = t.c2 RETURNING m.*),
                aud AS (INSERT INTO sudosos_sync.audit (run_id, table_name, row_key, action, old, new, reason)
                        SELECT $1::bigint, '\(memberships)',
                               jsonb_build_object('userId', del."userId", '\(organ)', del."\(organ)"), 'membership_removed',
                               to_jsonb(del), NULL, t.c3
                        FROM del JOIN t ON t.c1 = del."userId" AND t.c2 = del."\(organ)" ORDER BY t.ord RETURNING 1)
                SELECT del."userId"::text || ':' || del."\(organ)"::text AS k FROM del
                """)
        try bulk(
            "adding organ memberships",
            rows: try membershipAdditions.map { (try resolve($0.0), try resolve($0.1), $0.2, $0.3) },
            columns: [
                ("int", { String($0.0) }), ("int", { String($0.1) }), ("int", { String($0.2) }), ("text", { $0.3 }),
            ],
            key: { "\($0.0):\($0.1)" },
            // Before 1761328648026 there is no index column: the index only orders the plan.
            sql: """
                ins AS (INSERT INTO "\(memberships)" ("userId", "\(organ)", \(schema.membershipHasIndex ? #""index", "# : "")version)
                        SELECT t.c1, t.c2, \(schema.membershipHasIndex ? "t.c3, " : "")1 FROM t ORDER BY t.ord RETURNING *),
                aud AS (INSERT INTO sudosos_sync.audit (run_id, table_name, row_key, action, old, new, reason)
                        SELECT $1::bigint, '\(memberships)',
                               jsonb_build_object('userId', ins."userId", '\(organ)', ins."\(organ)"), 'membership_added',
                               NULL, to_jsonb(ins), t.c4
                        FROM ins JOIN t ON t.c1 = ins."userId" AND t.c2 = ins."\(organ)" ORDER BY t.ord RETURNING 1)
                SELECT ins."userId"::text || ':' || ins."\(organ)"::text AS k FROM ins
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

    // MARK: - Verdicts

    /// Upserts this run's verdicts (`sudosos_sync.verdict`), `at` = now(): one statement.
    private func recordVerdicts(_ plan: Plan, resolve: (UserRef) throws -> Int) throws {
        let rows = try PlanBatches.latestVerdicts(plan, resolve: resolve)
        guard !rows.isEmpty else { return }
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

    /// Inserts the new users (version 1) and their member-number rows; returns plan ref → id.
    /// The ids are reserved from the sequence first, so refs map to ids without relying on the
    /// order of RETURNING.
    private func createUsers(_ creates: [(user: NewUser, reason: String)]) throws -> [Int: Int] {
        guard !creates.isEmpty else { return [:] }
        let reserved = try connection.query(
            #"SELECT nextval(pg_get_serial_sequence('"user"', 'id'))::int AS id FROM generate_series(1, $1::int)"#,
            [String(creates.count)], what: "reserving user ids")
        let ids = try reserved.rows.map { try $0.int("id") }
        guard ids.count == creates.count else { throw SyncError.failed("reserving user ids returned \(ids.count) ids") }
        let users = creates.map(\.0)
        // The terms-of-service column of the schema variant, as text or boolean.
        let tos = schema.termsOfServiceColumn
        let tosValues = users.map { schema.columnValue(.text($0.acceptedToS.rawValue), of: .acceptedToS) }
        let tosParameter: String
        switch tos.type {
        case .boolean: tosParameter = PGValue.boolArray(tosValues.map { if case .flag(let b) = $0 { b } else { true } })
        default: tosParameter = PGValue.textArray(tosValues.map(\.description))
        }
        let rows = try connection.query(
            """
            WITH t AS (
              SELECT * FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::bool[], $8::text[],
                                   $9::\(tos.type == .boolean ? "bool" : "text")[], $10::bool[], $11::int[], $12::text[])
                WITH ORDINALITY AS t(id, first_name, last_name, email, active, of_age, type, tos, debt, member_id, reason, ord)
            ), ins AS (
              INSERT INTO "user" (id, version, "firstName", "lastName", email, active, "ofAge", type, "\(tos.column)",
                                  "canGoIntoDebt")
              SELECT id, 1, first_name, last_name, email, active, of_age, type, tos, debt FROM t ORDER BY ord
              RETURNING *
            ), mu AS (
              INSERT INTO "\(schema.memberTable)" ("userId", "\(schema.memberNumberColumn)")
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
                PGValue.textArray(users.map(\.type.rawValue)), tosParameter,
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
    private func updateUsers(_ merged: PlanBatches.MergedEdits, edits: [PlanBatches.UserEdit]) throws {
        guard !edits.isEmpty else { return }
        let order = merged.order
        // Keyed by the variant's column, in the column's type (acceptedToS or tosRequired).
        let (expect, set) = merged.byColumn(schema)
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
            let column = schema.userColumn(field)
            return column.type == .boolean ? flag(column.column) : text(column.column)
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
        guard stale.isEmpty else { throw PlanBatches.staleUsers(stale) }
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
        guard missing.isEmpty, written.count == Set(expected).count else { throw PlanBatches.stale(what, missing) }
    }
}
