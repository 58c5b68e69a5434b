import Foundation
import Logging
import SyncEngine

/// One run of one service in this process: what `once` does, and what the supervisor's worker
/// command calls in its child. Never throws: every failure becomes a `RunResult` whose exit
/// code says what went wrong (78 configuration, 69 unreachable, 75 locked / not ready, ...).
enum RunPath {
    /// Runs `service` with `configuration` (already loaded and checked).
    ///
    /// - Parameters:
    ///   - dryRun: plan and report only; `services.NAME.dry_run` also forces it.
    ///   - reporter: heartbeats and source requests (the worker forwards them to the supervisor).
    static func execute(
        service name: String, configuration: Configuration, dryRun: Bool, reporter: any RunReporter, logger: Logger
    ) async -> RunResult {
        let startedAt = Date()
        var logger = logger
        logger[metadataKey: "service"] = .string(name)
        let service: any SyncService
        do {
            service = try Services.make(name, from: configuration)
        } catch {
            return failed(name, dryRun: dryRun, startedAt: startedAt, error: error, logger: logger)
        }
        let settings = configuration.services[name] ?? ServiceSettings()
        let effectiveDryRun = dryRun || settings.dryRun
        do {
            let database = try await DatabaseAccess.open(configuration.database, logger: logger)
            let runner = SyncRunner(database: database, threshold: settings.threshold, logger: logger, timeout: settings.timeout)
            return try await DatabaseAccess.run(runner, service, dryRun: effectiveDryRun, reporter: reporter)
        } catch {
            return failed(name, dryRun: effectiveDryRun, startedAt: startedAt, error: error, logger: logger)
        }
    }

    /// The result (and the log line) of a run that ended before the runner could report one;
    /// the runner logs the end of every run it started itself.
    static func failed(
        _ service: String, dryRun: Bool, startedAt: Date, error: any Error,
        logger: Logger = Logger(label: "sudosos-sync")
    ) -> RunResult {
        let syncError = error as? SyncError ?? SyncError.failed("\(type(of: error)): \(error)")
        logger.error("run not started: \(syncError.message)")
        let summary = RunSummary(
            service: service, outcome: syncError.outcome, dryRun: dryRun, startedAt: startedAt, finishedAt: Date(),
            error: syncError.message)
        return RunResult(summary: summary, plan: nil, exitCode: syncError.exitCode)
    }
}

/// Logs the run's progress (heartbeats at debug level, failed source requests at debug).
struct LoggingReporter: RunReporter {
    var logger: Logger

    func heartbeat(phase: String) {
        logger.debug("run phase", metadata: ["phase": .string(phase)])
    }

    func sourceRequest(ok: Bool, seconds: Double) {
        if !ok { logger.debug("source request failed", metadata: ["seconds": .stringConvertible(seconds)]) }
    }
}
