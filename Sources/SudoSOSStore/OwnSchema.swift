import SyncEngine

/// Our own schema `sudosos_sync`: one `run` row per run, one `audit` row per applied change,
/// one `verdict` row per service and user (what its latest run said about them).
/// SudoSOS's own tables are never altered. See docs/database.md.
enum OwnSchema {
    /// Key of the transaction-level advisory lock that serializes the creation, so two
    /// first runs starting together cannot both try to create the same objects.
    static let creationLockKey: Int64 = AdvisoryLockKey.make("sudosos-sync/schema")

    static let statements = [
        "CREATE SCHEMA IF NOT EXISTS sudosos_sync",
        """
        CREATE TABLE IF NOT EXISTS sudosos_sync.run (
          id bigserial PRIMARY KEY,
          service text NOT NULL,
          started timestamptz NOT NULL,
          finished timestamptz,
          outcome text,
          dry_run boolean NOT NULL DEFAULT false,
          counts jsonb,
          error text
        )
        """,
        "CREATE INDEX IF NOT EXISTS run_service_started ON sudosos_sync.run (service, started DESC)",
        """
        CREATE TABLE IF NOT EXISTS sudosos_sync.audit (
          id bigserial PRIMARY KEY,
          run_id bigint NOT NULL REFERENCES sudosos_sync.run (id),
          at timestamptz NOT NULL DEFAULT now(),
          table_name text NOT NULL,
          row_key jsonb NOT NULL,
          action text NOT NULL,
          old jsonb,
          new jsonb,
          reason text NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS audit_run_id ON sudosos_sync.audit (run_id)",
        // One verdict per user across the services: what each service's latest run said.
        """
        CREATE TABLE IF NOT EXISTS sudosos_sync.verdict (
          service text NOT NULL,
          user_id integer NOT NULL,
          vouches boolean NOT NULL,
          run_id bigint NOT NULL REFERENCES sudosos_sync.run (id),
          at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (service, user_id)
        )
        """,
        "CREATE INDEX IF NOT EXISTS audit_row ON sudosos_sync.audit (table_name, row_key)",
    ]

    /// Creates what is missing. One round trip when everything exists; otherwise the creation
    /// runs in a transaction under `creationLockKey`, so concurrent first runs wait for each
    /// other instead of failing on a duplicate catalog entry.
    static func ensure(on connection: PGConnection, store: PostgresStore) throws {
        let present = try connection.query(
            """
            SELECT to_regclass('sudosos_sync.run') IS NOT NULL AND to_regclass('sudosos_sync.audit') IS NOT NULL
                   AND to_regclass('sudosos_sync.verdict') IS NOT NULL AS ok
            """,
            what: "looking for the sudosos_sync schema")
        if let row = present.rows.first, try row.bool("ok") { return }
        try connection.inTransaction {
            try connection.query(
                "SELECT pg_advisory_xact_lock($1::bigint)", [String(creationLockKey)],
                what: "locking the creation of the sudosos_sync schema")
            for statement in statements {
                try connection.execute(statement, what: "creating the sudosos_sync schema")
            }
        }
    }
}

/// 64-bit advisory lock keys from names (FNV-1a), stable across runs, hosts and versions.
public enum AdvisoryLockKey {
    /// The key of `name`.
    public static func make(_ name: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    /// The key of the lock one service's runs hold (`pg_advisory_lock(bigint)`).
    public static func service(_ service: String) -> Int64 { make("sudosos-sync/service/\(service)") }
}
