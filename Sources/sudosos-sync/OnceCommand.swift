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

    @Argument(help: ArgumentHelp("The service to run: \(Services.names.joined(separator: " or ")).", valueName: "service"), completion: .list(Services.names))
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
        if result.exitCode != .success { throw ArgumentParser.ExitCode(result.exitCode.rawValue) }
    }
}
