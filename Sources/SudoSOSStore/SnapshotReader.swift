import SyncEngine

/// Reads a `Snapshot` in a constant number of statements whatever the population: one per
/// table (users of the requested types, bindings, member numbers, memberships, roles, role
/// assignments, server settings, and balances when asked), inside one read-only
/// REPEATABLE READ transaction so all of them see the same moment.
///
/// Engine-independent: the same statements run on PostgreSQL and MariaDB (`SharedSQL`).
struct SnapshotReader {
    let session: any SQLSession

    func read(_ request: SnapshotRequest) throws -> Snapshot {
        try session.inTransaction(begin: session.dialect.beginSnapshot) {
            var snapshot = Snapshot()
            let schema = request.schema
            snapshot.users = try users(of: request.userTypes, schema: schema)
            snapshot.ldapBindings = try pairs(
                #"SELECT "userId" AS k, lower("UUID") AS v FROM ldap_authenticator"#, what: "reading ldap_authenticator"
            ) { try ($0.int("k"), $0.string("v")) }
            snapshot.memberNumbers = try pairs(
                #"SELECT "userId" AS k, "\#(schema.memberNumberColumn)" AS v FROM "\#(schema.memberTable)""#,
                what: "reading \(schema.memberTable)"
            ) { try ($0.int("k"), $0.int("v")) }
            // Without an `index` column (before 1761328648026) the index is the one that
            // migration assigns: the position of the member within the organ, by user id.
            let index = schema.membershipHasIndex
                ? #""index""#
                : #"(ROW_NUMBER() OVER (PARTITION BY "\#(schema.membershipOrganColumn)" ORDER BY "userId") - 1)"#
            snapshot.organMemberships = try session.query(
                #"""
                SELECT "userId", "\#(schema.membershipOrganColumn)" AS "organId", \#(index) AS "index"
                FROM "\#(schema.membershipTable)" ORDER BY 2, 3, 1
                """#, [],
                what: "reading \(schema.membershipTable)"
            ).rows.map { try OrganMembership(userId: $0.int("userId"), organId: $0.int("organId"), index: $0.int("index")) }
            snapshot.roles = try session.query(
                #"SELECT id, name FROM role ORDER BY id"#, what: "reading role"
            ).rows.map { try Role(id: $0.int("id"), name: $0.string("name")) }
            snapshot.roleAssignments = Set(
                try session.query(#"SELECT "userId", "roleId" FROM assigned_role"#, what: "reading assigned_role")
                    .rows.map { try RoleAssignment(userId: $0.int("userId"), roleId: $0.int("roleId")) })
            snapshot.settings = try pairs(
                #"SELECT "key" AS k, "value" AS v FROM server_setting"#, what: "reading server_setting"
            ) { try ($0.string("k"), $0.string("v")) }
            for peer in request.peers {
                var verdicts = PeerVerdicts(service: peer.service, maxAgeSeconds: Double(peer.maxAge.components.seconds))
                for row in try session.query(
                    session.dialect.peerVerdicts, [peer.service], what: "reading the \(peer.service) service's verdicts"
                ).rows {
                    verdicts.verdicts[try row.int("user_id")] = RecordedVerdict(
                        vouches: try row.bool("vouches"), ageSeconds: try row.double("age"), runId: try row.int64("run_id"))
                }
                snapshot.peers[peer.service] = verdicts
            }
            if request.includeBalances {
                snapshot.balances = try Balances.read(Array(snapshot.users.keys), session: session)
            }
            return snapshot
        }
    }

    private func users(of types: Set<UserType>, schema: SudoSOSSchema) throws -> [Int: User] {
        let tos = schema.termsOfServiceColumn.column
        let rows = try session.query(
            """
            SELECT id, version, "firstName", "lastName", active, "ofAge", email, deleted, type, "\(raw: tos)",
                   "canGoIntoDebt"
            FROM "user" WHERE type IN (SELECT v FROM \(texts: types.map(\.rawValue).sorted()) AS l)
            """, what: "reading users")
        var users: [Int: User] = [:]
        users.reserveCapacity(rows.count)
        for row in rows.rows {
            let user = try User(
                id: row.int("id"), version: row.int("version"), firstName: row.string("firstName"),
                lastName: row.string("lastName"), active: row.bool("active"), ofAge: row.bool("ofAge"),
                email: row.string("email"), deleted: row.bool("deleted"), type: row.enumeration("type", as: UserType.self),
                acceptedToS: schema.termsOfService == .tosRequired
                    ? SudoSOSSchema.termsOfService(tosRequired: row.bool(tos))
                    : row.enumeration(tos, as: TermsOfServiceStatus.self),
                canGoIntoDebt: row.bool("canGoIntoDebt"))
            users[user.id] = user
        }
        return users
    }

    /// A two-column query as a dictionary (later rows win on a repeated key).
    private func pairs<K: Hashable, V>(
        _ sql: String, what: String, _ decode: (SQLRow) throws -> (K, V)
    ) throws -> [K: V] {
        var result: [K: V] = [:]
        for row in try session.query(sql, [], what: what).rows {
            let (k, v) = try decode(row)
            result[k] = v
        }
        return result
    }
}
