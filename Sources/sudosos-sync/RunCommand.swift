import ArgumentParser
import Foundation
import Logging
import Observability
import Supervisor
import SyncEngine

/// `sudosos-sync run`: the supervisor systemd starts (docs/supervisor.md).
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the supervisor: schedule the sync services, one child process per run, metrics, sd_notify."
    )

    @Option(name: .long, help: "Configuration file (default: $SUDOSOS_SYNC_CONFIG or /etc/sudosos-sync/config.yaml).")
    var config: String?

    func run() async throws {
        CommandLogging.bootstrap()
        let logger = Logger(label: "sudosos-sync.supervisor")
        let source = TestHooks.configurationSource() ?? ProductionConfigurationSource(path: config)
        let configuration: SupervisorConfiguration
        do {
            configuration = try source.load()
        } catch let error as SyncError {
            logger.critical("\(error.message)")
            throw ArgumentParser.ExitCode(error.exitCode.rawValue)
        }
        let metrics = SyncMetrics(services: configuration.plans.map(\.name).sorted(), version: SupervisorVersion.current)
        let supervisor = Supervisor(
            configuration: configuration, source: source, metrics: metrics, logger: logger,
            version: SupervisorVersion.current)
        let endpoint = HTTPEndpoint(
            host: configuration.metrics.listenHost, port: configuration.metrics.listenPort, metrics: metrics,
            control: supervisor, triggerToken: configuration.metrics.triggerToken, logger: logger)
        let port: Int
        do {
            port = try await endpoint.start()
        } catch {
            logger.critical(
                "cannot listen on \(configuration.metrics.listenHost):\(configuration.metrics.listenPort) (metrics.listen): \(error)")
            throw ArgumentParser.ExitCode(SyncEngine.ExitCode.unavailable.rawValue)
        }
        logger.info("HTTP endpoint listening on \(configuration.metrics.listenHost):\(port)")
        // The loop blocks in poll(): give it a thread of its own, not a cooperative one.
        let code: Int32 = await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: supervisor.run()) }
            thread.name = "supervisor-loop"
            thread.start()
        }
        await endpoint.stop()
        if code != 0 { throw ArgumentParser.ExitCode(code) }
    }
}

/// The version reported by `/status` and `sudosos_sync_build_info`.
enum SupervisorVersion {
    static let current = "0.1.0"
}

/// The YAML configuration (ConfigurationLoader, the command line's work), restricted per
/// service for the children.
struct ProductionConfigurationSource: SupervisorConfigurationSource {
    var path: String?

    func load() throws -> SupervisorConfiguration {
        throw SyncError.configuration(
            "this build has no configuration loader yet (set \(TestHooks.configVariable) in a debug build for tests)")
    }
}

/// Logging for the supervisor commands: to stderr, one line per event.
enum CommandLogging {
    static func bootstrap() {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
    }
}
