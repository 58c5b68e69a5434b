import ArgumentParser
import Foundation
import Logging
import Supervisor
import SyncEngine

/// `sudosos-sync worker SERVICE`: internal. The supervisor re-executes its own binary with
/// this command for every run (docs/supervisor.md, "Worker protocol"); not for operators.
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
        channel?.send(WorkerMessage(type: .started, at: Date()))
        if let steps = TestBehaviour.steps(for: service) {
            let code = TestBehaviour.play(steps, service: service, channel: channel)
            if code != 0 { throw ArgumentParser.ExitCode(code) }
            return
        }
        CommandLogging.bootstrap()
        let logger = Logger(label: "sudosos-sync.\(service)")
        let startedAt = Date()
        let error = SyncError.configuration("the worker has no one-run path in this build yet")
        logger.error("\(error.message)")
        channel?.send(
            WorkerMessage(
                type: .summary,
                summary: RunSummary(
                    service: service, outcome: error.outcome, dryRun: dryRun, startedAt: startedAt, finishedAt: Date(),
                    error: error.message)))
        throw ArgumentParser.ExitCode(error.exitCode.rawValue)
    }
}
