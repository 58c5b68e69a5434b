import SyncEngine

/// Reads a `Snapshot` in a constant number of statements whatever the population: one per
/// table (users of the requested types, bindings, member numbers, memberships, roles, role
/// assignments, server settings, and balances when asked), inside one read-only
/// REPEATABLE READ transaction so all of them see the same moment.
struct SnapshotReader {
    let connection: PGConnection

    func read(_ request: SnapshotRequest, store: PostgresStore) throws -> Snapshot {
        try store.inTransaction(connection, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") {
            var snapshot = Snapshot()
            snapshot.users = try users(of: request.userTypes)
            snapshot.ldapBindings = try pairs(
                #"SELECT "userId" AS k, lower("UUID") AS v FROM ldap_authenticator"#, what: "reading ldap_authenticator"
            ) { try ($0.int("k"), $0.string("v")) }
            snapshot.memberNumbers = try pairs(
                #"SELECT "userId" AS k, "memberId" AS v FROM member_user"#, what: "reading member_user"
            ) { try ($0.int("k"), $0.int("v")) }
            snapshot.organMemberships = try connection.query(
                #"SELECT "userId", "organId", "index" FROM organ_membership ORDER BY "organId", "index", "userId""#,
                what: "reading organ_membership"
            ).rows.map { try OrganMembership(userId: $0.int("userId"), organId: $0.int("organId"), index: $0.int("index")) }
            snapshot.roles = try connection.query(
                #"SELECT id, name FROM role ORDER BY id"#, what: "reading role"
            ).rows.map { try Role(id: $0.int("id"), name: $0.string("name")) }
            snapshot.roleAssignments = Set(
                try connection.query(#"SELECT "userId", "roleId" FROM assigned_role"#, what: "reading assigned_role")
                    .rows.map { try RoleAssignment(userId: $0.int("userId"), roleId: $0.int("roleId")) })
            snapshot.settings = try pairs(
                #"SELECT key AS k, value AS v FROM server_setting"#, what: "reading server_setting"
            ) { try ($0.string("k"), $0.string("v")) }
            for peer in request.peers {
                var verdicts = PeerVerdicts(service: peer.service, maxAgeSeconds: Double(peer.maxAge.components.seconds))
                for row in try connection.query(
                    """
                    SELECT user_id, vouches, run_id, extract(epoch FROM now() - at)::float8 AS age
                    FROM sudosos_sync.verdict WHERE service = $1
                    """,
                    [peer.service], what: "reading the \(peer.service) service's verdicts"
                ).rows {
                    verdicts.verdicts[try row.int("user_id")] = RecordedVerdict(
                        vouches: try row.bool("vouches"), ageSeconds: try row.double("age"), runId: try row.int64("run_id"))
                }
                snapshot.peers[peer.service] = verdicts
            }
            if request.includeBalances {
                snapshot.balances = try BalanceReader(connection: connection).balances(of: Array(snapshot.users.keys))
            }
            return snapshot
        }
    }

    private func users(of types: Set<UserType>) throws -> [Int: User] {
        let rows = try connection.query(
            """
            SELECT id, version, "firstName", "lastName", active, "ofAge", email, deleted, type, "acceptedToS",
                   "canGoIntoDebt"
            FROM "user" WHERE type = ANY($1::text[])
            """,
            [PGValue.textArray(types.map(\.rawValue).sorted())], what: "reading users")
        var users: [Int: User] = [:]
        users.reserveCapacity(rows.count)
        for row in rows.rows {
            let user = try User(
                id: row.int("id"), version: row.int("version"), firstName: row.string("firstName"),
                lastName: row.string("lastName"), active: row.bool("active"), ofAge: row.bool("ofAge"),
                email: row.string("email"), deleted: row.bool("deleted"), type: row.enumeration("type", as: UserType.self),
                acceptedToS: row.enumeration("acceptedToS", as: TermsOfServiceStatus.self),
                canGoIntoDebt: row.bool("canGoIntoDebt"))
            users[user.id] = user
        }
        return users
    }

    /// A two-column query as a dictionary (later rows win on a repeated key).
    private func pairs<K: Hashable, V>(
        _ sql: String, what: String, _ decode: (PGRow) throws -> (K, V)
    ) throws -> [K: V] {
        var result: [K: V] = [:]
        for row in try connection.query(sql, what: what).rows {
            let (k, v) = try decode(row)
            result[k] = v
        }
        return result
    }
}

/// Balances of users. SudoSOS keeps a cached `balance` row per user and adds the transactions
/// and transfers newer than it; without those tables the balance cannot be known, and an
/// unknown balance is never guessed to be zero.
struct BalanceReader {
    let connection: PGConnection

    func balances(of userIds: [Int]) throws -> [Int: Balance] {
        // The query and the table check live in Balances.swift (with fixtures/sql/20-sudosos-balance.sql).
        try Balances.read(userIds, connection: connection)
    }
}
