import Foundation
import SyncEngine

#if canImport(Glibc)
import Glibc
#endif

/// Test-only hooks, so the process tests can drive the real binary without the sync sources.
///
/// They exist only in debug builds (`#if DEBUG`; `swift build -c release` compiles them out)
/// and only act when a `SUDOSOS_SYNC_TEST_*` environment variable is set. The configuration
/// file cannot enable them. See docs/supervisor.md, "Test hooks".
///
/// - `SUDOSOS_SYNC_TEST_CONFIG=FILE`: `run` takes its configuration from this JSON file
///   (``TestConfiguration``) instead of the YAML configuration.
/// - `SUDOSOS_SYNC_TEST_STALL_FILE=FILE`: while FILE exists, the supervisor's loop (only
///   the loop) blocks: it stops pinging the watchdog while the process stays alive.
/// - In the worker, the configuration's `behaviour` replaces the real run (``TestBehaviour``).
public struct TestHooks: Sendable {
    public static let configVariable = "SUDOSOS_SYNC_TEST_CONFIG"
    public static let stallVariable = "SUDOSOS_SYNC_TEST_STALL_FILE"

    public let active: Bool
    let stallFile: String?

    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> TestHooks {
        #if DEBUG
        let any = environment.keys.contains { $0.hasPrefix(WorkerEnvironment.testPrefix) }
        return TestHooks(active: any, stallFile: environment[stallVariable])
        #else
        return TestHooks(active: false, stallFile: nil)
        #endif
    }

    /// Blocks the calling (loop) thread while the stall file exists.
    func stallIfRequested() {
        guard let stallFile else { return }
        while access(stallFile, F_OK) == 0 { usleep(20_000) }
    }

    /// The `SUDOSOS_SYNC_TEST_*` variables a child inherits (debug builds only).
    func childEnvironment(_ own: [String: String]) -> [String: String] {
        guard active else { return [:] }
        return own.filter { $0.key.hasPrefix(WorkerEnvironment.testPrefix) }
    }

    /// The test configuration source, when `SUDOSOS_SYNC_TEST_CONFIG` is set in a debug build.
    public static func configurationSource(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> (any SupervisorConfigurationSource)? {
        #if DEBUG
        guard let path = environment[configVariable] else { return nil }
        return TestConfigurationSource(path: path)
        #else
        return nil
        #endif
    }
}

/// The JSON a test writes to configure `sudosos-sync run` (durations in seconds).
public struct TestConfiguration: Codable, Sendable {
    public struct Service: Codable, Sendable {
        public var enabled: Bool?
        public var schedule: String?
        public var interval: Double?
        public var run_on_start: Bool?
        public var timeout: Double?
        public var heartbeat_timeout: Double?
        public var memory: UInt64?
        public var open_files: UInt64?
        /// A secret that only this service's worker may see (`SUDOSOS_SYNC_SECRET`).
        public var secret: String?
        /// Like `secret`, read from `$CREDENTIALS_DIRECTORY/NAME` (one trailing newline stripped).
        public var secret_credential: String?
        /// The worker's behaviour per run (the last one repeats).
        public var runs: [[TestStep]]?
    }

    public var timezone: String?
    /// `metrics.listen` port on 127.0.0.1 (0: any free port, logged at start).
    public var listen_port: Int?
    public var max_concurrent_runs: Int?
    public var shutdown_timeout: Double?
    public var backoff_initial: Double?
    public var backoff_max: Double?
    public var backoff_multiplier: Double?
    public var backoff_jitter: Double?
    public var backoff_reset_after: Double?
    public var services: [String: Service]
}

/// One step of a test worker's behaviour.
public struct TestStep: Codable, Sendable {
    /// `work` (sleep with heartbeats), `silent` (sleep without), `exit`, `log`, `psql`
    /// (run SQL through psql, in the worker's process group), `env` (write the worker's
    /// environment to `file`), `crash` (SIGKILL itself), `pid` (write the worker's pid to
    /// `file`), `ignore_term` (ignore SIGTERM from now on), `check_secret` (compare the
    /// secret the worker received with `text`, print whether it matches, never the secret).
    public var step: String
    public var seconds: Double?
    public var code: Int32?
    public var text: String?
    public var url: String?
    public var sql: String?
    public var file: String?
}

struct TestConfigurationSource: SupervisorConfigurationSource {
    var path: String

    func load() throws -> SupervisorConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SyncError.configuration("\(TestHooks.configVariable): cannot read \(path)")
        }
        let test: TestConfiguration
        do {
            test = try JSONDecoder().decode(TestConfiguration.self, from: data)
        } catch {
            throw SyncError.configuration("\(TestHooks.configVariable): \(error)")
        }
        let defaults = BackoffSettings()
        let settings = SupervisorSettings(
            timezone: test.timezone ?? "Europe/Amsterdam", maxConcurrentRuns: test.max_concurrent_runs ?? 2,
            shutdownTimeout: .milliseconds(Int64((test.shutdown_timeout ?? 30) * 1000)),
            backoff: BackoffSettings(
                initial: test.backoff_initial.map { .milliseconds(Int64($0 * 1000)) } ?? defaults.initial,
                max: test.backoff_max.map { .milliseconds(Int64($0 * 1000)) } ?? defaults.max,
                multiplier: test.backoff_multiplier ?? defaults.multiplier, jitter: test.backoff_jitter ?? defaults.jitter,
                resetAfter: test.backoff_reset_after.map { .milliseconds(Int64($0 * 1000)) } ?? defaults.resetAfter))
        var plans: [ServicePlan] = []
        var environment: [String: [String: String]] = [:]
        for (name, service) in test.services {
            let schedule: ScheduleSetting? =
                if let cron = service.schedule { .cron(cron) } else if let interval = service.interval {
                    .interval(.milliseconds(Int64(interval * 1000)))
                } else { nil }
            let common = ServiceSettings(
                enabled: service.enabled ?? true, schedule: schedule, runOnStart: service.run_on_start ?? false,
                timeout: .milliseconds(Int64((service.timeout ?? 600) * 1000)),
                heartbeatTimeout: .milliseconds(Int64((service.heartbeat_timeout ?? 120) * 1000)),
                limits: ResourceLimits(memoryBytes: service.memory, openFiles: service.open_files))
            plans.append(
                ServicePlan(name: name, settings: common, schedule: try Schedule(schedule, timezone: settings.timezone)))
            var own: [String: String] = [:]
            if let secret = service.secret { own["SUDOSOS_SYNC_SECRET"] = secret }
            if let credential = service.secret_credential {
                let directory = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"] ?? ""
                guard var value = try? String(contentsOfFile: directory + "/" + credential, encoding: .utf8) else {
                    throw SyncError.configuration("services.\(name): credential \(credential) is missing")
                }
                if value.hasSuffix("\n") { value.removeLast() }
                own["SUDOSOS_SYNC_SECRET"] = value
            }
            environment[name] = own
        }
        return SupervisorConfiguration(
            settings: settings, plans: plans, childEnvironment: environment,
            metrics: MetricsSettings(listenHost: "127.0.0.1", listenPort: test.listen_port ?? 0))
    }
}

/// The worker side of the test hooks: plays the configured steps instead of a real run.
public enum TestBehaviour {
    /// The behaviour of this run of `service`, if a test configured one (debug builds only).
    public static func steps(for service: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        -> [TestStep]?
    {
        #if DEBUG
        guard let path = environment[TestHooks.configVariable], let data = FileManager.default.contents(atPath: path),
            let test = try? JSONDecoder().decode(TestConfiguration.self, from: data),
            let runs = test.services[service]?.runs, !runs.isEmpty
        else { return nil }
        // Count this run: one line per run in PATH.SERVICE.runs.
        let counter = "\(path).\(service).runs"
        let previous = (try? String(contentsOfFile: counter, encoding: .utf8))?.split(separator: "\n").count ?? 0
        if let handle = FileHandle(forWritingAtPath: counter) ?? {
            _ = FileManager.default.createFile(atPath: counter, contents: nil)
            return FileHandle(forWritingAtPath: counter)
        }() {
            handle.seekToEndOfFile()
            handle.write(Data("\(getpid())\n".utf8))
            try? handle.close()
        }
        return runs[min(previous, runs.count - 1)]
        #else
        return nil
        #endif
    }

    /// Plays `steps`; returns the exit code.
    public static func play(_ steps: [TestStep], service: String, channel: ResultChannel?) -> Int32 {
        let started = Date()
        for step in steps {
            switch step.step {
            case "work":
                let end = Date().addingTimeInterval(step.seconds ?? 1)
                while Date() < end {
                    channel?.heartbeat(phase: "test")
                    usleep(100_000)
                }
            case "silent":
                usleep(UInt32(min((step.seconds ?? 3600) * 1e6, 4e9)))
            case "log":
                FileHandle.standardOutput.write(Data(((step.text ?? "") + "\n").utf8))
            case "crash":
                kill(getpid(), SIGKILL)
            case "pid":
                if let file = step.file { try? "\(getpid())\n".write(toFile: file, atomically: true, encoding: .utf8) }
            case "env":
                let lines = ProcessInfo.processInfo.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                if let file = step.file {
                    try? (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
                }
            case "check_secret":
                let ok = ProcessInfo.processInfo.environment["SUDOSOS_SYNC_SECRET"] == step.text
                FileHandle.standardOutput.write(Data("secret \(ok ? "matches" : "does not match")\n".utf8))
                if !ok { return ExitCode.failure.rawValue }
            case "ignore_term":
                signal(SIGTERM, SIG_IGN)
            case "psql":
                // posix_spawn with default attributes keeps psql in the worker's process group
                // (Foundation's Process would give it a group of its own).
                let arguments = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", step.url ?? "", "-c", step.sql ?? ""]
                var argv = arguments.map { strdup($0) } + [nil]
                defer { for p in argv { free(p) } }
                var pid: pid_t = 0
                guard posix_spawn(&pid, "/usr/bin/psql", nil, nil, &argv, environ) == 0 else {
                    return ExitCode.failure.rawValue
                }
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                if status != 0 { return ExitCode.failure.rawValue }
            case "exit":
                let code = step.code ?? 0
                let outcome: RunOutcome =
                    switch code {
                    case 0: .success
                    case 65: .refused
                    case 75: .notReady
                    default: .failure
                    }
                channel?.send(
                    WorkerMessage(
                        type: .summary,
                        summary: RunSummary(
                            service: service, outcome: outcome, dryRun: false, startedAt: started, finishedAt: Date(),
                            error: code == 0 ? nil : "test behaviour exit \(code)")))
                return code
            default:
                FileHandle.standardError.write(Data("unknown test step \(step.step)\n".utf8))
                return ExitCode.usage.rawValue
            }
        }
        return 0
    }
}
