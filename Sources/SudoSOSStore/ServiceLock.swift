import SyncEngine

/// The advisory lock of one service, held by a session of its own for the whole run.
///
/// A session-level `pg_try_advisory_lock` is tied to its connection: should the process die,
/// PostgreSQL releases it as soon as the connection closes, so a crashed run never blocks the
/// next one. Holding it on a dedicated session keeps it independent of the transactions on the
/// main session.
struct ServiceLock: Sendable {
    let service: String
    let key: Int64
    let connection: PGConnection
    let store: PostgresStore

    /// Takes the lock or throws `SyncError.locked` at once when another session holds it
    /// (`SyncError.unavailable` when the database cannot be reached).
    static func acquire(service: String, store: PostgresStore) async throws -> ServiceLock {
        let key = AdvisoryLockKey.service(service)
        return try await store.onQueue {
            let connection = try store.connect()
            let got = try connection.query(
                "SELECT pg_try_advisory_lock($1::bigint) AS got", [String(key)],
                what: "taking the lock of service \(service)")
            guard let row = got.rows.first, try row.bool("got") else {
                let holder = (try? Self.holder(of: key, on: connection)) ?? nil
                throw SyncError.locked(
                    "another instance is running service \(service)"
                        + (holder.map { " (database session \($0) holds its lock)" } ?? ""))
            }
            return ServiceLock(service: service, key: key, connection: connection, store: store)
        }
    }

    /// Releases the lock and closes its session (closing alone would release it too).
    func release() async {
        let connection = connection, key = key, service = service
        _ = try? await store.onQueue {
            try connection.query(
                "SELECT pg_advisory_unlock($1::bigint)", [String(key)],
                what: "releasing the lock of service \(service)")
        }
    }

    /// The pid and application name of the session holding `key`, for the message.
    private static func holder(of key: Int64, on connection: PGConnection) throws -> String? {
        let bits = UInt64(bitPattern: key)
        let rows = try connection.query(
            """
            SELECT l.pid, coalesce(a.application_name, '') AS app
            FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = $1::bigint::oid
              AND l.objid = $2::bigint::oid AND l.objsubid = 1
            LIMIT 1
            """,
            [String(bits >> 32), String(bits & 0xffff_ffff)], what: "looking up the lock holder")
        guard let row = rows.rows.first else { return nil }
        let pid = try row.int("pid"), app = try row.string("app")
        return app.isEmpty ? "pid \(pid)" : "pid \(pid), \(app)"
    }
}
