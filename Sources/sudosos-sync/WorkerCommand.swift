import ArgumentParser
import Foundation
import Logging
import Supervisor
import SyncEngine

/// `sudosos-sync worker SERVICE`: internal. The supervisor re-executes its own binary with
/// this command for every run (docs/supervisor.md, "Worker protocol"); not for operators.
///
/// Descriptors: 0 /dev/null, 1 and 2 re-logged by the supervisor with the service name,
/// 3 the result pipe (JSON lines), 4 the configuration (JSON, that service only).
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Internal: one supervised run of SERVICE (started by `run`).",
        shouldDisplay: false
    )

    @Argument(help: "The service to run.")
    var service: String

    @Flag(name: .long, help: "Compute and report the changes without writing them.")
    var dryRun = false

    func run() async throws {
        // PR_SET_PDEATHSIG was armed before exec; if the supervisor died before that, our
        // parent is no longer the supervisor: stop at once.
        guard WorkerEnvironment.parentIsAlive() else {
            FileHandle.standardError.write(Data("worker: the supervisor that started this run is gone\n".utf8))
            throw ArgumentParser.ExitCode(SyncEngine.ExitCode.failure.rawValue)
        }
        let channel = ResultChannel.inherited()
        let input = WorkerInput.read()
        channel?.send(WorkerMessage(type: .started, at: Date()))
        let startedAt = Date()
        let configuration: Configuration
        do {
            guard let input else {
                throw SyncError.configuration("worker: no configuration on descriptor 4 (only `run` starts workers)")
            }
            configuration = try Configuration(childJSON: input)
        } catch let error as SyncError {
            StderrLogHandler.bootstrap(level: .info, journal: true)
            let logger = Logger(label: "sudosos-sync")
            logger.error("\(error.message)")
            send(RunPath.failed(service, dryRun: dryRun, startedAt: startedAt, error: error), to: channel)
            throw ArgumentParser.ExitCode(error.exitCode.rawValue)
        }
        LogRedactor.shared.register(configuration.secrets)
        let level = Logger.Level(rawValue: ProcessInfo.processInfo.environment["SUDOSOS_SYNC_LOG_LEVEL"] ?? "") ?? .info
        // Lines start with a journald priority (`<6>`), which the supervisor maps back to a
        // level when it re-logs them with the service name.
        StderrLogHandler.bootstrap(level: level, journal: true)
        let logger = Logger(label: "sudosos-sync")
        let result = await RunPath.execute(
            service: service, configuration: configuration, dryRun: dryRun,
            reporter: channel ?? (LoggingReporter(logger: logger) as any RunReporter), logger: logger)
        send(result, to: channel)
        if result.exitCode != .success { throw ArgumentParser.ExitCode(result.exitCode.rawValue) }
    }

    private func send(_ result: RunResult, to channel: ResultChannel?) {
        channel?.send(WorkerMessage(type: .summary, summary: result.summary))
    }
}
