import Logging
import SyncEngine

/// Opening the SudoSOS database and handing a service to the runner: the two calls into the
/// store's work (`SudoSOSStore.PostgresStore`, `SyncRunner.run`), kept in one place.
enum DatabaseAccess {
    /// Connects to the database (bounded by `settings.connectTimeout`); throws
    /// `SyncError.unavailable` when it cannot.
    static func open(_ settings: DatabaseSettings, logger: Logger) async throws -> any SudoSOSDatabase {
        // Pending the store (branch `store`): replaced by PostgresStore once it lands on main.
        throw SyncError.unavailable("database: the PostgreSQL store is not built into this binary yet")
    }

    /// Checks the database answers (for `check-config --connect`).
    static func check(_ settings: DatabaseSettings, logger: Logger) async throws {
        _ = try await open(settings, logger: logger)
    }

    static func run(
        _ runner: SyncRunner, _ service: any SyncService, dryRun: Bool, reporter: any RunReporter
    ) async throws -> RunResult {
        // Pending the store (branch `store`): `runner.run(service, dryRun:reporter:)`.
        throw SyncError.failed("the sync runner is not built into this binary yet")
    }
}
