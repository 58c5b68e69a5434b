import CProcessSpawn
import Foundation
import Logging
import Observability
import SyncEngine

#if canImport(Glibc)
import Glibc
#endif

/// What the supervisor needs from the configuration.
public struct SupervisorConfiguration: Sendable {
    public var settings: SupervisorSettings
    public var plans: [ServicePlan]
    /// Per service: extra variables its worker receives (test hooks only; nothing secret).
    public var childEnvironment: [String: [String: String]]
    /// Per service: the configuration its worker reads from descriptor 4, restricted to that
    /// service (`Configuration.restricted(to:)` as JSON; holds that service's secrets only).
    public var childConfiguration: [String: Data]
    /// `metrics.listen` and `metrics.trigger_token` (read at start; a reload cannot move the
    /// endpoint).
    public var metrics: MetricsSettings

    public init(
        settings: SupervisorSettings, plans: [ServicePlan], childEnvironment: [String: [String: String]] = [:],
        childConfiguration: [String: Data] = [:], metrics: MetricsSettings = MetricsSettings()
    ) {
        self.settings = settings
        self.plans = plans
        self.childEnvironment = childEnvironment
        self.childConfiguration = childConfiguration
        self.metrics = metrics
    }
}

/// Loads (and on SIGHUP reloads) the configuration.
public protocol SupervisorConfigurationSource: Sendable {
    func load() throws -> SupervisorConfiguration
}

/// `sudosos-sync run`: one loop on one thread that owns every child process. It waits (poll)
/// on a signal self-pipe, a wake-up pipe for control requests, and each child's pidfd,
/// stdout, stderr and result pipe, with a timeout at the next deadline (a scheduled run, a
/// backoff, a child's timeout, the watchdog). Every decision is ``SupervisorCore``'s; the
/// loop performs the effects. See docs/supervisor.md.
public final class Supervisor: SupervisorControl, @unchecked Sendable {
    /// Mutable state touched only by the loop thread.
    private var core: SupervisorCore
    private var configuration: SupervisorConfiguration
    private var runs: [String: ActiveRun] = [:]
    private var shutdownDeadline: UInt64?
    private var lastStatusLine = ""

    private let source: any SupervisorConfigurationSource
    private let executable: String
    private let metrics: SyncMetrics
    private let logger: Logger
    private let notifier: SystemdNotifier
    private let version: String
    private let startedAt = Date()
    private let hooks: TestHooks

    /// Shared with other threads (the HTTP endpoint), under `lock`.
    private let lock = NSLock()
    private var snapshot: StatusReport
    private var pendingTriggers: [(String, Bool, CheckedContinuation<TriggerResult, Never>)] = []
    private var loopFinished = false
    private var lastProgressUsec: UInt64 = sudosos_monotonic_usec()
    private var wakeWrite: Int32 = -1

    /// How long a child has between SIGTERM and SIGKILL when killed for a timeout.
    public var killGrace: Duration

    public init(
        configuration: SupervisorConfiguration, source: any SupervisorConfigurationSource, metrics: SyncMetrics,
        logger: Logger, version: String, executable: String = "/proc/self/exe", notifier: SystemdNotifier = SystemdNotifier()
    ) {
        self.configuration = configuration
        self.core = SupervisorCore(settings: configuration.settings, plans: configuration.plans, now: Date())
        self.source = source
        self.metrics = metrics
        self.logger = logger
        self.version = version
        self.executable = executable
        self.notifier = notifier
        self.hooks = TestHooks.fromEnvironment()
        self.killGrace = min(.seconds(10), configuration.settings.shutdownTimeout)
        self.snapshot = StatusReport(version: version, startedAt: startedAt, services: [])
        self.snapshot = makeReport()
        announceSchedules()
    }

    /// Every configured service's series exist, with its expected run period.
    private func announceSchedules() {
        let now = Date()
        for plan in configuration.plans {
            metrics.addService(plan.name)
            metrics.schedule(
                service: plan.name,
                expectedIntervalSeconds: plan.settings.enabled ? plan.schedule.expectedInterval(after: now) : 0)
            updateServiceMetrics(plan.name)
        }
    }

    // MARK: SupervisorControl

    public func status() async -> StatusReport {
        lock.withLock { snapshot }
    }

    public func trigger(service: String, dryRun: Bool) async -> TriggerResult {
        await withCheckedContinuation { continuation in
            let finished = lock.withLock {
                if loopFinished { return true }
                pendingTriggers.append((service, dryRun, continuation))
                return false
            }
            if finished {
                continuation.resume(returning: .alreadyRunning)
            } else {
                wake()
            }
        }
    }

    public func isLoopAlive() -> Bool {
        let last = lock.withLock { loopFinished ? 0 : lastProgressUsec }
        return last != 0 && sudosos_monotonic_usec() - last < 5_000_000
    }

    private func wake() {
        var byte: UInt8 = 0
        let fd = lock.withLock { wakeWrite }
        if fd >= 0 { _ = write(fd, &byte, 1) }
    }

    // MARK: The loop

    /// Runs until SIGTERM / SIGINT and every child is gone. Blocks the calling thread; call
    /// it on a thread of its own once the HTTP endpoint listens (it sends READY=1). Returns
    /// the exit code (0).
    public func run() -> Int32 {
        var signalPipe: [Int32] = [-1, -1], wakePipe: [Int32] = [-1, -1]
        guard sudosos_pipe(&signalPipe, 1) == 0, sudosos_pipe(&wakePipe, 1) == 0 else {
            logger.critical("cannot create the supervisor's pipes: \(String(cString: strerror(errno)))")
            return ExitCode.failure.rawValue
        }
        _ = fcntl(signalPipe[1], F_SETFL, fcntl(signalPipe[1], F_GETFL) | O_NONBLOCK)
        _ = fcntl(wakePipe[1], F_SETFL, fcntl(wakePipe[1], F_GETFL) | O_NONBLOCK)
        lock.withLock { wakeWrite = wakePipe[1] }
        sudosos_install_signal_pipe(signalPipe[1])
        defer {
            lock.withLock {
                loopFinished = true
                wakeWrite = -1
            }
            for fd in signalPipe + wakePipe { close(fd) }
            for (_, _, continuation) in lock.withLock({ pendingTriggers }) { continuation.resume(returning: .alreadyRunning) }
        }

        publishStatus(force: true)
        notifier.ready(status: lastStatusLine)
        let enabled = core.services.filter(\.enabled).map(\.name)
        logger.info(
            "supervisor ready: \(enabled.isEmpty ? "no enabled services" : enabled.joined(separator: ", ")); max \(configuration.settings.maxConcurrentRuns) concurrent runs"
        )
        var lastPing: UInt64 = 0
        if hooks.active { logger.warning("test hooks are active (SUDOSOS_SYNC_TEST_*): a debug build under test") }

        while true {
            hooks.stallIfRequested()
            let monoNow = sudosos_monotonic_usec()
            lock.withLock { lastProgressUsec = monoNow }
            if let interval = notifier.watchdogInterval, monoNow - lastPing >= UInt64(interval.asSeconds * 1e6) {
                notifier.watchdog()
                lastPing = monoNow
            }

            drainTriggers()
            if !core.stopping {
                for action in core.tick(now: Date()) { perform(action) }
            }
            enforceDeadlines()
            publishStatus()
            if core.stopping && runs.isEmpty { break }

            // Wait for the next event or deadline.
            var fds: [pollfd] = [
                pollfd(fd: signalPipe[0], events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakePipe[0], events: Int16(POLLIN), revents: 0),
            ]
            var owners: [(String, Int32)] = []
            for (name, run) in runs {
                for fd in [run.child.pidfd, run.child.stdoutFD, run.child.stderrFD, run.child.resultFD] where fd >= 0 {
                    fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
                    owners.append((name, fd))
                }
            }
            let timeout = pollTimeout(lastPing: lastPing)
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 && errno != EINTR {
                logger.error("poll failed: \(String(cString: strerror(errno)))")
            }
            guard ready > 0 else { continue }
            if fds[0].revents != 0 { handleSignals(fd: signalPipe[0]) }
            if fds[1].revents != 0 { _ = ChildProcess.readAvailable(wakePipe[0]) }
            for (index, (name, fd)) in owners.enumerated() where fds[index + 2].revents != 0 {
                guard let run = runs[name] else { continue }
                if fd == run.child.pidfd {
                    childExited(name)
                } else {
                    readOutput(run, fd: fd)
                }
            }
            // Children without a pidfd (very old kernels): poll for their exit.
            for (name, run) in runs where run.child.pidfd < 0 { if run.child.reap() != nil { childExited(name) } }
        }
        notifier.status("stopped")
        logger.info("supervisor stopped; no child left")
        return ExitCode.success.rawValue
    }

    /// Milliseconds until the earliest deadline, at most one second (so the loop's liveness is
    /// always fresh).
    private func pollTimeout(lastPing: UInt64) -> Int32 {
        var wait = 1.0
        if let next = core.nextWakeup() { wait = min(wait, next.timeIntervalSinceNow) }
        let mono = sudosos_monotonic_usec()
        func until(_ usec: UInt64) -> Double { usec > mono ? Double(usec - mono) / 1e6 : 0 }
        for run in runs.values {
            wait = min(wait, until(run.nextDeadline))
        }
        if let shutdownDeadline { wait = min(wait, until(shutdownDeadline)) }
        if let interval = notifier.watchdogInterval {
            wait = min(wait, until(lastPing + UInt64(interval.asSeconds * 1e6)))
        }
        return Int32(max(0, (wait * 1000).rounded(.up)))
    }

    private func handleSignals(fd: Int32) {
        for byte in ChildProcess.readAvailable(fd) ?? [] {
            switch Int32(byte) {
            case SIGTERM, SIGINT:
                beginShutdown(signal: Int32(byte))
            case SIGHUP:
                reload()
            default:
                break
            }
        }
    }

    private func beginShutdown(signal: Int32) {
        if core.stopping {
            logger.warning("second stop signal: killing every child now")
            for run in runs.values { run.child.signalGroup(SIGKILL) }
            return
        }
        logger.info("stop requested (signal \(signal)): no new runs; stopping \(runs.count) running")
        core.stop()
        notifier.stopping(status: "stopping: \(runs.keys.sorted().joined(separator: ", "))")
        let timeout = configuration.settings.shutdownTimeout.asSeconds
        shutdownDeadline = sudosos_monotonic_usec() + UInt64(timeout * 1e6)
        for run in runs.values where run.killReason == nil {
            run.killReason = .shutdown
            run.termSentAt = sudosos_monotonic_usec()
            run.child.signalGroup(SIGTERM)
        }
        lastStatusLine = ""
    }

    private func reload() {
        notifier.reloading()
        logger.info("reloading the configuration (SIGHUP)")
        do {
            let fresh = try source.load()
            configuration = fresh
            core.reload(settings: fresh.settings, plans: fresh.plans, now: Date())
            announceSchedules()
            logger.info("configuration reloaded; running runs finish under the previous one")
        } catch {
            logger.error("reload failed, keeping the previous configuration: \(error)")
        }
        publishStatus(force: true)
        notifier.ready(status: lastStatusLine)
    }

    private func drainTriggers() {
        let requests = lock.withLock {
            defer { pendingTriggers = [] }
            return pendingTriggers
        }
        for (service, dryRun, continuation) in requests {
            let result: TriggerResult
            switch core.trigger(service: service, dryRun: dryRun) {
            case .accepted?, .alreadyQueued?: result = .started
            case .alreadyRunning?: result = .alreadyRunning
            case .disabled?, nil: result = .unknownService
            }
            if result == .started { logger.info("\(service): run triggered\(dryRun ? " (dry run)" : "")") }
            continuation.resume(returning: result)
        }
        if !requests.isEmpty, !core.stopping {
            for action in core.tick(now: Date()) { perform(action) }
        }
    }

    // MARK: Effects

    private func perform(_ action: SupervisorAction) {
        switch action {
        case .start(let service, let dryRun, let reason, let scheduledFor):
            startRun(service: service, dryRun: dryRun, reason: reason, scheduledFor: scheduledFor)
        case .stormStarted(let until, let failures):
            logger.warning(
                "\(failures) failed runs within \(Int(core.storm.window))s: pausing scheduled runs and retries until \(until)")
        case .stormEnded:
            logger.notice("failure storm over: runs resume")
        }
    }

    private func startRun(service: String, dryRun: Bool, reason: RunReason, scheduledFor: Date) {
        guard let plan = core.plans[service] else { return }
        var environment: [String: String] = [:]
        let own = ProcessInfo.processInfo.environment
        for key in WorkerEnvironment.inherited { if let value = own[key] { environment[key] = value } }
        for (key, value) in hooks.childEnvironment(own) { environment[key] = value }
        for (key, value) in configuration.childEnvironment[service] ?? [:] { environment[key] = value }
        environment[WorkerEnvironment.supervisorPID] = String(getpid())
        var arguments = ["sudosos-sync", "worker", service]
        if dryRun { arguments.append("--dry-run") }
        let now = Date()
        do {
            // Spawned from the loop thread: PR_SET_PDEATHSIG fires when the *thread* that forked
            // exits, and this one lives until every child is gone.
            let child = try ChildProcess.spawn(
                executable: executable, arguments: arguments, environment: environment, limits: plan.settings.limits,
                input: configuration.childConfiguration[service])
            let run = ActiveRun(
                service: service, child: child, dryRun: dryRun, reason: reason, startedAt: now, scheduledFor: scheduledFor,
                timeout: plan.settings.timeout, heartbeatTimeout: plan.settings.heartbeatTimeout)
            runs[service] = run
            metrics.runStarted(service: service, at: now)
            if reason == .retry { metrics.childRestarted(service: service) }
            logger.info(
                "\(service): run started (\(reason.rawValue)\(dryRun ? ", dry run" : ""), pid \(child.pid), timeout \(DurationFormat.short(plan.settings.timeout)))"
            )
        } catch {
            logger.error("\(service): \(error)")
            finish(service: service, end: RunEnd(outcome: .failure, retryable: true, summary: nil), duration: 0, cpu: 0, rss: 0)
        }
        updateServiceMetrics(service)
    }

    private func readOutput(_ run: ActiveRun, fd: Int32) {
        guard let bytes = ChildProcess.readAvailable(fd) else {
            // End of file: flush the unfinished line and stop watching this pipe.
            drain(run, fd: fd, final: true)
            run.child.closePipe(fd)
            return
        }
        handle(bytes, from: fd, of: run)
    }

    private func drain(_ run: ActiveRun, fd: Int32, final: Bool) {
        while let bytes = ChildProcess.readAvailable(fd), !bytes.isEmpty {
            handle(bytes, from: fd, of: run)
            if bytes.count < 8192 { break }
        }
        guard final else { return }
        if fd == run.child.stdoutFD, let tail = run.stdoutLines.flush() { relog(run, tail) }
        if fd == run.child.stderrFD, let tail = run.stderrLines.flush() { relog(run, tail) }
        if fd == run.child.resultFD, let tail = run.resultLines.flush() { message(run, tail) }
    }

    private func handle(_ bytes: [UInt8], from fd: Int32, of run: ActiveRun) {
        if fd == run.child.stdoutFD {
            for line in run.stdoutLines.append(bytes) { relog(run, line) }
        } else if fd == run.child.stderrFD {
            for line in run.stderrLines.append(bytes) { relog(run, line) }
        } else if fd == run.child.resultFD {
            for line in run.resultLines.append(bytes) { message(run, line) }
        }
    }

    /// Re-logs a child's line with the service name, at the level its journald priority
    /// prefix (`<4>`) names; info without one.
    private func relog(_ run: ActiveRun, _ line: String) {
        guard !line.isEmpty else { return }
        var text = Substring(line)
        var level = Logger.Level.info
        if text.count >= 3, text.first == "<", let digit = text.dropFirst().first?.wholeNumberValue,
            text.dropFirst(2).first == ">"
        {
            text = text.dropFirst(3)
            level = switch digit {
            case 0...2: .critical
            case 3: .error
            case 4: .warning
            case 5: .notice
            case 6: .info
            default: .debug
            }
        }
        logger.log(level: level, "\(run.service): \(text)")
    }

    private func message(_ run: ActiveRun, _ line: String) {
        guard let message = WorkerMessage.parse(Substring(line)) else {
            logger.warning("\(run.service): unreadable line on the result pipe")
            return
        }
        run.lastSign = sudosos_monotonic_usec()
        switch message.type {
        case .started:
            let latency = Date().timeIntervalSince(run.scheduledFor)
            logger.info(
                "\(run.service): worker started, first work \(Int((latency * 1000).rounded())) ms after the \(run.reason == .trigger ? "trigger" : "due instant (\(run.reason.rawValue))")"
            )
        case .heartbeat:
            break
        case .sourceRequest:
            metrics.sourceRequest(service: run.service, ok: message.ok ?? false, seconds: message.seconds ?? 0)
        case .summary:
            run.summary = message.summary
        }
    }

    private func enforceDeadlines() {
        let mono = sudosos_monotonic_usec()
        for run in runs.values {
            if run.killReason == nil {
                if mono >= run.timeoutDeadline {
                    run.killReason = .timeout("ran past its timeout of \(DurationFormat.short(run.timeout))")
                } else if mono >= run.heartbeatDeadline {
                    run.killReason = .timeout("silent for \(DurationFormat.short(run.heartbeatTimeout)) (heartbeat timeout)")
                }
                if case .timeout(let why)? = run.killReason {
                    logger.warning("\(run.service): \(why): terminating pid \(run.child.pid)")
                    run.termSentAt = mono
                    run.killAt = mono + UInt64(killGrace.asSeconds * 1e6)
                    run.child.signalGroup(SIGTERM)
                }
            }
            if let killAt = run.killAt, mono >= killAt, !run.killSent {
                logger.warning("\(run.service): still running after SIGTERM: killing pid \(run.child.pid)")
                run.child.signalGroup(SIGKILL)
                run.killSent = true
            }
        }
        if let shutdownDeadline, mono >= shutdownDeadline {
            for run in runs.values where !run.killSent {
                logger.warning("\(run.service): still running at the shutdown timeout: killing pid \(run.child.pid)")
                run.child.signalGroup(SIGKILL)
                run.killSent = true
            }
        }
    }

    private func childExited(_ service: String) {
        guard let run = runs[service], let exit = run.child.reap() else { return }
        for fd in [run.child.stdoutFD, run.child.stderrFD, run.child.resultFD] where fd >= 0 {
            drain(run, fd: fd, final: true)
        }
        run.child.closeDescriptors()
        runs[service] = nil
        let end = Self.classify(exit: exit, killReason: run.killReason, summary: run.summary)
        let duration = Date().timeIntervalSince(run.startedAt)
        let ended = exit.code.map { "exit \($0)" } ?? "signal \(exit.signal ?? 0)"
        var how = ended
        how += String(format: ", %.2fs CPU, max RSS %.0f MiB", exit.cpuSeconds, Double(exit.maxRSSBytes) / 1_048_576)
        var message = "\(service): run ended: \(end.outcome.rawValue) (\(how), \(DurationFormat.short(seconds: duration)))"
        if end.outcome != .success, let error = run.summary?.error { message += ": \(error)" }
        if end.outcome == .success { logger.info("\(message)") } else { logger.warning("\(message)") }
        finish(
            service: service, end: end, duration: duration, cpu: exit.cpuSeconds, rss: exit.maxRSSBytes,
            record: Self.record(end, of: run, ended: ended))
    }

    /// The summary `/status` shows for a run: the child's own, with the supervisor's outcome
    /// (a child killed for a timeout may have sent none, or one that says otherwise).
    static func record(_ end: RunEnd, of run: ActiveRun, ended: String) -> RunSummary {
        var summary =
            end.summary
            ?? RunSummary(
                service: run.service, outcome: end.outcome, dryRun: run.dryRun, startedAt: run.startedAt,
                finishedAt: Date(), error: "the worker ended without a summary (\(ended))")
        summary.outcome = end.outcome
        if case .timeout(let why)? = run.killReason { summary.error = why }
        return summary
    }

    private func finish(
        service: String, end: RunEnd, duration: Double, cpu: Double, rss: UInt64, record: RunSummary? = nil
    ) {
        let now = Date()
        var recorded = end
        recorded.summary = record ?? end.summary
        let (decision, actions) = core.runEnded(service: service, recorded, now: now)
        metrics.runFinished(
            service: service, outcome: end.outcome, durationSeconds: duration, summary: end.summary, childCPUSeconds: cpu,
            childMaxRSSBytes: rss)
        switch decision {
        case .backoff(let delay, _)?:
            logger.notice("\(service): retry in \(DurationFormat.short(seconds: delay))")
        case .waitForSchedule(let next)?:
            logger.notice("\(service): not retried; waiting for the next scheduled run\(next.map { " at \($0)" } ?? "")")
        default:
            break
        }
        for action in actions { perform(action) }
        updateServiceMetrics(service)
    }

    /// Maps how a child ended to a run outcome.
    static func classify(exit: ChildExit, killReason: ActiveRun.KillReason?, summary: RunSummary?) -> RunEnd {
        switch killReason {
        case .timeout?:
            return RunEnd(outcome: .timeout, summary: summary)
        case .shutdown?:
            if exit.code == 0, let summary { return RunEnd(outcome: summary.outcome, summary: summary) }
            return RunEnd(outcome: .failure, summary: summary)
        case nil:
            break
        }
        guard let code = exit.code else { return RunEnd(outcome: .crash, summary: summary) }
        switch code {
        case ExitCode.success.rawValue:
            return RunEnd(outcome: summary?.outcome ?? .success, summary: summary)
        case ExitCode.refused.rawValue:
            return RunEnd(outcome: .refused, summary: summary)
        case ExitCode.temporary.rawValue:
            let outcome = summary?.outcome == .locked ? RunOutcome.locked : .notReady
            return RunEnd(outcome: outcome, summary: summary)
        case ExitCode.configuration.rawValue:
            return RunEnd(outcome: .failure, retryable: false, summary: summary)
        default:
            return RunEnd(outcome: .failure, summary: summary)
        }
    }

    // MARK: Status

    private func updateServiceMetrics(_ service: String) {
        guard let machine = core.service(service) else { return }
        metrics.serviceState(
            service: service, nextRunAt: machine.due?.at == .distantPast ? Date() : machine.due?.at,
            consecutiveFailures: machine.consecutiveFailures, backoffSeconds: machine.backoffSeconds)
    }

    private func publishStatus(force: Bool = false) {
        let zone = TimeZone(identifier: configuration.settings.timezone) ?? .current
        let line = core.stopping ? "stopping: \(runs.keys.sorted().joined(separator: ", "))" : core.statusLine(in: zone)
        let report = makeReport()
        lock.withLock { snapshot = report }
        if force || line != lastStatusLine {
            lastStatusLine = line
            if !force { notifier.status(line) }
        }
    }

    private func makeReport() -> StatusReport {
        StatusReport(
            version: version, startedAt: startedAt,
            services: core.services.map { machine in
                let next: Date? =
                    switch machine.due {
                    case let due? where due.at == .distantPast: Date()
                    case let due?: due.at
                    case nil: machine.isRunning ? machine.nextScheduled : nil
                    }
                return ServiceStatus(
                    name: machine.name, enabled: machine.enabled, state: machine.state.name, lastRun: machine.lastRun,
                    lastSuccessAt: machine.lastSuccessAt, nextRunAt: next, consecutiveFailures: machine.consecutiveFailures,
                    backoffSeconds: machine.backoffSeconds, schedule: machine.schedule.description)
            })
    }
}

/// A run in flight: its child and the supervisor's view of it. Loop-thread only.
final class ActiveRun {
    enum KillReason: Equatable {
        case timeout(String)
        case shutdown
    }

    let service: String
    let child: ChildProcess
    let dryRun: Bool
    let reason: RunReason
    let startedAt: Date
    let scheduledFor: Date
    let timeout: Duration
    let heartbeatTimeout: Duration
    let startedMono: UInt64
    /// Last sign of life on the result pipe.
    var lastSign: UInt64
    var killReason: KillReason?
    var termSentAt: UInt64?
    var killAt: UInt64?
    var killSent = false
    var summary: RunSummary?
    var stdoutLines = LineBuffer()
    var stderrLines = LineBuffer()
    var resultLines = LineBuffer(limit: 1 << 20)

    init(
        service: String, child: ChildProcess, dryRun: Bool, reason: RunReason, startedAt: Date, scheduledFor: Date,
        timeout: Duration, heartbeatTimeout: Duration
    ) {
        self.service = service
        self.child = child
        self.dryRun = dryRun
        self.reason = reason
        self.startedAt = startedAt
        self.scheduledFor = scheduledFor
        self.timeout = timeout
        self.heartbeatTimeout = heartbeatTimeout
        self.startedMono = sudosos_monotonic_usec()
        self.lastSign = startedMono
    }

    var timeoutDeadline: UInt64 { startedMono + UInt64(timeout.asSeconds * 1e6) }
    var heartbeatDeadline: UInt64 { lastSign + UInt64(heartbeatTimeout.asSeconds * 1e6) }

    /// The earliest instant the loop must look at this run again.
    var nextDeadline: UInt64 {
        if let killAt, !killSent { return killAt }
        if killReason != nil { return UInt64.max }
        return min(timeoutDeadline, heartbeatDeadline)
    }
}
