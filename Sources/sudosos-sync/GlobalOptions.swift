import ArgumentParser
import Foundation
import Logging
import SyncEngine
import Synchronization

/// Options every command that reads the configuration takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Configuration file (default: $SUDOSOS_SYNC_CONFIG, else /etc/sudosos-sync/config.yaml).", valueName: "file"), completion: .configurationFile)
    var config: String?

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical (default: $SUDOSOS_SYNC_LOG_LEVEL, else info).", valueName: "level"))
    var logLevel: Logger.Level?

    /// The level from the flag, else `SUDOSOS_SYNC_LOG_LEVEL`, else info.
    func resolvedLogLevel(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Logger.Level {
        if let logLevel { return logLevel }
        guard let text = environment["SUDOSOS_SYNC_LOG_LEVEL"], !text.isEmpty else { return .info }
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            let all = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw SyncError.configuration("SUDOSOS_SYNC_LOG_LEVEL: \"\(Masking.scrub(text))\" is not a log level (use \(all))")
        }
        return level
    }

    /// Installs the stderr log handler (once per process) and returns the command's logger.
    /// A bad `SUDOSOS_SYNC_LOG_LEVEL` is reported at info level and ends the command with 78.
    func bootstrapLogging() throws -> Logger {
        do {
            let level = try resolvedLogLevel()
            LoggingSetup.bootstrap(level: level)
            return Logger(label: "sudosos-sync")
        } catch let error as SyncError {
            LoggingSetup.bootstrap(level: .info)
            throw CommandFailure.report(error, to: Logger(label: "sudosos-sync"))
        }
    }

    /// The loader for this command line and the process environment.
    var loader: ConfigurationLoader { ConfigurationLoader(path: config) }
}

extension CompletionKind {
    /// `--config`: YAML files (and folders to descend into), for `--generate-completion-script`.
    static var configurationFile: CompletionKind { .file(extensions: ["yaml", "yml"]) }
}

extension Logger.Level: @retroactive ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.lowercased()) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

/// `LoggingSystem.bootstrap` may run only once per process.
enum LoggingSetup {
    private static let done = Mutex(false)

    static func bootstrap(level: Logger.Level) {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        if first { StderrLogHandler.bootstrap(level: level) }
    }
}

/// Ends a command: logs the error's one line and exits with its code.
enum CommandFailure {
    static func report(_ error: SyncError, to logger: Logger) -> ArgumentParser.ExitCode {
        logger.error("\(error.message)")
        return ArgumentParser.ExitCode(error.exitCode.rawValue)
    }
}
