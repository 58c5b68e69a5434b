import Logging
import SudoSOSStore
import SyncEngine

/// Opening the SudoSOS database and handing a service to the runner: the two calls into the
/// store (`SudoSOSStore.PostgresStore`, `SyncRunner.run`), kept in one place.
enum DatabaseAccess {
    /// A store for the configured database. It connects on first use (bounded by
    /// `settings.connectTimeout`); an unreachable database is `SyncError.unavailable` there.
    static func open(_ settings: DatabaseSettings, logger: Logger) async throws -> any SudoSOSDatabase {
        try PostgresStore(settings: settings, logger: logger)
    }

    /// Connects and runs one statement (for `check-config --connect`).
    static func check(_ settings: DatabaseSettings, logger: Logger) async throws {
        try await PostgresStore(settings: settings, logger: logger).ping()
    }

    /// One run of `service` through the runner: lock, snapshot, fetch, plan, check, apply.
    static func run(
        _ runner: SyncRunner, _ service: any SyncService, dryRun: Bool, reporter: any RunReporter
    ) async throws -> RunResult {
        await runner.run(service, dryRun: dryRun, reporter: reporter)
    }
}
