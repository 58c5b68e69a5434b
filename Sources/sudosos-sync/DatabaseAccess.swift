import Logging
import SudoSOSStore
import SyncEngine

/// Opening the SudoSOS database and handing a service to the runner: the calls into the
/// stores (`SudoSOSStore.MariaDBStore` / `PostgresStore`, chosen by the engine `database.url`
/// names, and `SyncRunner.run`), kept in one place.
enum DatabaseAccess {
    /// A store for the configured database. It connects on first use (bounded by
    /// `settings.connectTimeout`); an unreachable database is `SyncError.unavailable` there.
    static func open(_ settings: DatabaseSettings, logger: Logger) async throws -> any SudoSOSDatabase {
        switch settings.engine {
        case .mariadb: return try MariaDBStore(settings: settings, logger: logger)
        case .postgres: return try PostgresStore(settings: settings, logger: logger)
        case nil: throw SyncError.configuration("database.url names no engine sudosos-sync speaks (mariadb://, mysql://, postgresql://)")
        }
    }

    /// Connects and runs one statement (for `check-config --connect`); returns the engine and
    /// the server's version, e.g. `MariaDB/MySQL, server 10.11.6-MariaDB`.
    static func check(_ settings: DatabaseSettings, logger: Logger) async throws -> String {
        switch settings.engine {
        case .mariadb:
            let version = try await MariaDBStore(settings: settings, logger: logger).serverVersion()
            return "\(DatabaseEngine.mariadb.displayName), server \(version)"
        case .postgres:
            let version = try await PostgresStore(settings: settings, logger: logger).serverVersion()
            return "\(DatabaseEngine.postgres.displayName), server \(version)"
        case nil:
            throw SyncError.configuration("database.url names no engine sudosos-sync speaks (mariadb://, mysql://, postgresql://)")
        }
    }

    /// One run of `service` through the runner: lock, snapshot, fetch, plan, check, apply.
    static func run(
        _ runner: SyncRunner, _ service: any SyncService, dryRun: Bool, reporter: any RunReporter
    ) async throws -> RunResult {
        await runner.run(service, dryRun: dryRun, reporter: reporter)
    }
}
