import ArgumentParser
import BuildInfo
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

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let logger = try options.bootstrapLogging()
        let source = TestHooks.configurationSource() ?? ProductionConfigurationSource(path: options.config)
        let configuration: SupervisorConfiguration
        do {
            configuration = try source.load()
        } catch let error as SyncError {
            throw CommandFailure.report(error, to: logger)
        }
        let build = BuildInfo.current
        let metrics = SyncMetrics(
            services: configuration.plans.map(\.name).sorted(), version: build.version, revision: build.revision,
            swiftVersion: build.swiftVersion)
        let supervisor = Supervisor(
            configuration: configuration, source: source, metrics: metrics, logger: logger, version: build.version)
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

/// The YAML configuration through `ConfigurationLoader` (file, environment, credentials), with
/// each service's worker configuration restricted to that service.
struct ProductionConfigurationSource: SupervisorConfigurationSource {
    var path: String?

    func load() throws -> SupervisorConfiguration {
        let configuration = try ConfigurationLoader(path: path).load()
        LogRedactor.shared.register(configuration.secrets)
        var plans: [ServicePlan] = []
        var children: [String: Data] = [:]
        for (name, settings) in configuration.services {
            let schedule = try Schedule(settings.schedule, timezone: configuration.supervisor.timezone)
            plans.append(ServicePlan(name: name, settings: settings, schedule: schedule))
            if settings.enabled {
                // Fails early (exit 78) on a service the worker could not build.
                _ = try Services.make(name, from: configuration)
                children[name] = try configuration.restricted(to: name)?.childJSON()
            }
        }
        return SupervisorConfiguration(
            settings: configuration.supervisor, plans: plans, childConfiguration: children, metrics: configuration.metrics)
    }
}
