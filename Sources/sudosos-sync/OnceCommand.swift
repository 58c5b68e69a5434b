import ArgumentParser
import Foundation
import Logging
import SyncEngine

/// `sudosos-sync once SERVICE [--dry-run] [--json] [--reveal] [--config FILE]`: one run of one
/// service in the foreground. The report goes to stdout, logs to stderr; the exit code is the
/// run's.
struct OnceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "once",
        abstract: "Run one service once in the foreground and print its change report."
    )

    @Argument(help: ArgumentHelp("The service to run: \(Services.names.joined(separator: " or ")).", valueName: "service"))
    var service: String

    @Flag(name: .long, help: "Plan and print the changes; write nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Print the report as JSON (shape in docs/operations.md).")
    var json = false

    @Flag(name: .long, help: "Show e-mail addresses in full in the report (they are masked otherwise).")
    var reveal = false

    @OptionGroup var options: GlobalOptions

    func validate() throws {
        guard Services.names.contains(service) else {
            throw ValidationError("unknown service '\(service)' (known: \(Services.names.joined(separator: ", ")))")
        }
    }

    func run() async throws {
        let logger = try options.bootstrapLogging()
        let configuration: Configuration
        do {
            configuration = try options.loader.load()
            LogRedactor.shared.register(configuration.secrets)
            _ = try Services.make(service, from: configuration)
        } catch let error as SyncError {
            throw CommandFailure.report(error, to: logger)
        }
        let result = await RunPath.execute(
            service: service, configuration: configuration, dryRun: dryRun,
            reporter: LoggingReporter(logger: logger), logger: logger)
        let report = PlanReport(result, reveal: reveal)
        let output = json ? report.json() : report.text()
        FileHandle.standardOutput.write(Data(output.utf8))
        log(result, logger: logger)
        if result.exitCode != .success { throw ArgumentParser.ExitCode(result.exitCode.rawValue) }
    }

    /// One log line for the run's end: info when it succeeded, error otherwise.
    private func log(_ result: RunResult, logger: Logger) {
        let summary = result.summary
        var metadata: Logger.Metadata = [
            "service": .string(summary.service), "outcome": .string(summary.outcome.rawValue),
            "dry_run": .stringConvertible(summary.dryRun), "exit_code": .stringConvertible(result.exitCode.rawValue),
        ]
        for (action, count) in summary.changes where count > 0 { metadata[action] = .stringConvertible(count) }
        if result.exitCode == .success {
            logger.info("run finished", metadata: metadata)
        } else {
            logger.error("run ended: \(summary.error ?? summary.outcome.rawValue)", metadata: metadata)
        }
    }
}
