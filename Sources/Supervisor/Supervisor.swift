import CProcessSpawn
import Foundation
import Logging
import Observability
import SyncEngine

#if canImport(Glibc)
import Glibc
#endif

/// What the supervisor needs from the configuration.
public struct SupervisorConfiguration: Sendable, Hashable {
    public var settings: SupervisorSettings
    public var plans: [ServicePlan]
    /// Per service: the configuration its worker reads from descriptor 4, restricted to that
    /// service (`Configuration.restricted(to:)` as JSON; holds that service's secrets only).
    public var childConfiguration: [String: Data]
    /// `metrics.listen` and `metrics.trigger_token` (read at start; a reload cannot move the
    /// endpoint).
    public var metrics: MetricsSettings

    public init(
        settings: SupervisorSettings, plans: [ServicePlan], childConfiguration: [String: Data] = [:], metrics: MetricsSettings = MetricsSettings()
    ) {
        self.settings = settings
        self.plans = plans
        self.childConfiguration = childConfiguration
        self.metrics = metrics
    }
}

/// Loads (and on SIGHUP reloads) the configuration.
public protocol SupervisorConfigurationSource: Sendable {
    func load() throws -> SupervisorConfiguration
}

/// `sudosos-sync run`: the executor of ``SupervisorMachine``. One loop on one thread owns every
/// child process. It waits (poll) on a signal self-pipe, a wake-up pipe for control requests, and
/// each child's pidfd, stdout, stderr and result pipe, until the machine's armed timer; it turns
/// what it sees into ``SupervisorEvent``s with the clock's reading and performs the
/// ``SupervisorEffect``s the machine answers. Every decision is the machine's. See
/// docs/supervisor.md.
public final class Supervisor: SupervisorControl, @unchecked Sendable {
    /// Loop-thread state.
    private var machine: SupervisorMachine
    private var children: [String: LiveChild] = [:]
    private var timer: UInt64?
    private var exitCode: Int32?
    private var answers: [Int: CheckedContinuation<TriggerResult, Never>] = [:]
    private var nextTrigger = 0
    private var inbox: [SupervisorEvent] = []
    private var feeding = false

    private let source: any SupervisorConfigurationSource
    private let executable: String
    private let metrics: SyncMetrics
    private let logger: Logger
    private let notifier: SystemdNotifier
    private let version: String
    private let startedAt = Date()

    /// Shared with other threads (the HTTP endpoint), under `lock`.
    private let lock = NSLock()
    private var snapshot: StatusReport
    private var pendingTriggers: [(String, Bool, CheckedContinuation<TriggerResult, Never>)] = []
    private var loopFinished = false
    private var lastProgressUsec: UInt64 = sudosos_monotonic_usec()
    private var wakeWrite: Int32 = -1

    /// How long a child has between SIGTERM and SIGKILL when killed for a timeout.
    public var killGrace: Duration {
        get { machine.killGrace }
        set { machine.killGrace = newValue }
    }

    /// `executable`: the worker program, run as `EXECUTABLE worker SERVICE [--dry-run]` (by
    /// default this binary itself; `run --worker-executable`).
    public init(
        configuration: SupervisorConfiguration, source: any SupervisorConfigurationSource, metrics: SyncMetrics,
        logger: Logger, version: String, executable: String = "/proc/self/exe", notifier: SystemdNotifier = SystemdNotifier()
    ) {
        self.machine = SupervisorMachine(
            configuration: configuration, now: Self.now(), watchdogInterval: notifier.watchdogInterval)
        self.source = source
        self.metrics = metrics
        self.logger = logger
        self.version = version
        self.executable = executable
        self.notifier = notifier
        self.snapshot = StatusReport(version: version, startedAt: startedAt, services: [])
        self.snapshot = machine.report(version: version, startedAt: startedAt, now: Date())
        record(.configurationApplied)
    }

    /// The clock: the only place the supervisor reads it.
    static func now() -> Moment { Moment(wall: Date(), mono: sudosos_monotonic_usec()) }

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
            for continuation in answers.values { continuation.resume(returning: .alreadyRunning) }
        }

        perform(machine.start(at: Self.now()))
        while true {
            lock.withLock { lastProgressUsec = sudosos_monotonic_usec() }
            drainTriggers()
            feed(.timeReached)
            if let exitCode { return exitCode }

            // Wait for the next event or the armed timer.
            var fds: [pollfd] = [
                pollfd(fd: signalPipe[0], events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakePipe[0], events: Int16(POLLIN), revents: 0),
            ]
            var owners: [(String, Int32)] = []
            for (name, live) in children {
                for fd in [live.child.pidfd, live.child.stdoutFD, live.child.stderrFD, live.child.resultFD] where fd >= 0 {
                    fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
                    owners.append((name, fd))
                }
            }
            let ready = poll(&fds, nfds_t(fds.count), pollTimeout())
            if ready < 0 && errno != EINTR {
                logger.error("poll failed: \(String(cString: strerror(errno)))")
            }
            guard ready > 0 else { continue }
            if fds[0].revents != 0 {
                for byte in ChildProcess.readAvailable(signalPipe[0]) ?? [] { feed(.signal(Int32(byte))) }
            }
            if fds[1].revents != 0 { _ = ChildProcess.readAvailable(wakePipe[0]) }
            for (index, (name, fd)) in owners.enumerated() where fds[index + 2].revents != 0 {
                guard let live = children[name] else { continue }
                if fd == live.child.pidfd {
                    childExited(name)
                } else {
                    readOutput(live, fd: fd)
                }
            }
            // Children without a pidfd (very old kernels): poll for their exit.
            for (name, live) in children where live.child.pidfd < 0 { childExited(name) }
        }
    }

    /// Milliseconds until the armed timer, at most one second (so the loop's liveness is always
    /// fresh).
    private func pollTimeout() -> Int32 {
        var wait = 1.0
        let mono = sudosos_monotonic_usec()
        if let timer { wait = min(wait, timer > mono ? Double(timer - mono) / 1e6 : 0) }
        return Int32(max(0, (wait * 1000).rounded(.up)))
    }

    private func drainTriggers() {
        let requests = lock.withLock {
            defer { pendingTriggers = [] }
            return pendingTriggers
        }
        for (service, dryRun, continuation) in requests {
            nextTrigger += 1
            answers[nextTrigger] = continuation
            feed(.trigger(id: nextTrigger, service: service, dryRun: dryRun))
        }
    }

    // MARK: Effects

    /// Hands `event` to the machine and performs its answer. Events that effects produce (a
    /// spawn's outcome, a loaded configuration) queue behind the effects still to perform, so
    /// the machine sees them in order and its last armed timer is the one that counts.
    private func feed(_ event: SupervisorEvent) {
        inbox.append(event)
        guard !feeding else { return }
        feeding = true
        defer { feeding = false }
        while !inbox.isEmpty { perform(machine.handle(inbox.removeFirst(), at: Self.now())) }
    }

    private func perform(_ effects: [SupervisorEffect]) {
        for effect in effects {
            switch effect {
            case .spawn(let service, let dryRun, let limits, let input):
                spawn(service: service, dryRun: dryRun, limits: limits, input: input)
            case .signalGroup(let service, let signal):
                children[service]?.child.signalGroup(signal)
            case .armTimer(let mono):
                timer = mono
            case .notify(let message):
                switch message {
                case .ready(let status): notifier.ready(status: status)
                case .status(let line): notifier.status(line)
                case .stopping(let status): notifier.stopping(status: status)
                case .reloading: notifier.reloading()
                case .watchdog: notifier.watchdog()
                }
            case .loadConfiguration:
                do {
                    feed(.reload(try source.load(), error: nil))
                } catch {
                    feed(.reload(nil, error: "\(error)"))
                }
            case .record(let record):
                self.record(record)
            case .answer(let id, let result):
                answers.removeValue(forKey: id)?.resume(returning: result)
            case .exit(let code):
                exitCode = code
            }
        }
        let report = machine.report(version: version, startedAt: startedAt, now: Date())
        lock.withLock { snapshot = report }
    }

    private func record(_ record: SupervisorRecord) {
        switch record {
        case .log(let level, let message):
            logger.log(level: level, "\(message)")
        case .runStarted(let service, let at, let restart):
            metrics.runStarted(service: service, at: at)
            if restart { metrics.childRestarted(service: service) }
        case .runFinished(let service, let outcome, let duration, let summary, let cpu, let rss):
            metrics.runFinished(
                service: service, outcome: outcome, durationSeconds: duration, summary: summary, childCPUSeconds: cpu,
                childMaxRSSBytes: rss)
        case .sourceRequest(let service, let ok, let seconds):
            metrics.sourceRequest(service: service, ok: ok, seconds: seconds)
        case .serviceChanged(let service):
            updateServiceMetrics(service)
        case .configurationApplied:
            let now = Date()
            for plan in machine.configuration.plans {
                metrics.addService(plan.name)
                metrics.schedule(
                    service: plan.name,
                    expectedIntervalSeconds: plan.settings.enabled ? plan.schedule.expectedInterval(after: now) : 0)
                updateServiceMetrics(plan.name)
            }
        }
    }

    private func updateServiceMetrics(_ service: String) {
        guard let state = machine.core.service(service) else { return }
        metrics.serviceState(
            service: service, nextRunAt: state.due?.at == .distantPast ? Date() : state.due?.at,
            consecutiveFailures: state.consecutiveFailures, backoffSeconds: state.backoffSeconds)
    }

    private func spawn(service: String, dryRun: Bool, limits: ResourceLimits, input: Data?) {
        var environment: [String: String] = [:]
        let own = ProcessInfo.processInfo.environment
        for key in WorkerEnvironment.inherited { if let value = own[key] { environment[key] = value } }
        environment[WorkerEnvironment.supervisorPID] = String(getpid())
        var arguments = ["sudosos-sync", "worker", service]
        if dryRun { arguments.append("--dry-run") }
        do {
            // Spawned from the loop thread: PR_SET_PDEATHSIG fires when the *thread* that forked
            // exits, and this one lives until every child is gone.
            let child = try ChildProcess.spawn(
                executable: executable, arguments: arguments, environment: environment, limits: limits, input: input)
            children[service] = LiveChild(service: service, child: child)
            feed(.childStarted(service: service, pid: child.pid))
        } catch {
            feed(.spawnFailed(service: service, error: "\(error)"))
        }
    }

    private func childExited(_ service: String) {
        guard let live = children[service], let exit = live.child.reap() else { return }
        for fd in [live.child.stdoutFD, live.child.stderrFD, live.child.resultFD] where fd >= 0 {
            drain(live, fd: fd, final: true)
        }
        live.child.closeDescriptors()
        children[service] = nil
        feed(.childExited(service: service, exit))
    }

    // MARK: Child output

    private func readOutput(_ live: LiveChild, fd: Int32) {
        guard let bytes = ChildProcess.readAvailable(fd) else {
            // End of file: flush the unfinished line and stop watching this pipe.
            drain(live, fd: fd, final: true)
            live.child.closePipe(fd)
            return
        }
        handle(bytes, from: fd, of: live)
    }

    private func drain(_ live: LiveChild, fd: Int32, final: Bool) {
        while let bytes = ChildProcess.readAvailable(fd), !bytes.isEmpty {
            handle(bytes, from: fd, of: live)
            if bytes.count < 8192 { break }
        }
        guard final else { return }
        if fd == live.child.stdoutFD, let tail = live.stdoutLines.flush() { relog(live, tail) }
        if fd == live.child.stderrFD, let tail = live.stderrLines.flush() { relog(live, tail) }
        if fd == live.child.resultFD, let tail = live.resultLines.flush() { message(live, tail) }
    }

    private func handle(_ bytes: [UInt8], from fd: Int32, of live: LiveChild) {
        if fd == live.child.stdoutFD {
            for line in live.stdoutLines.append(bytes) { relog(live, line) }
        } else if fd == live.child.stderrFD {
            for line in live.stderrLines.append(bytes) { relog(live, line) }
        } else if fd == live.child.resultFD {
            for line in live.resultLines.append(bytes) { message(live, line) }
        }
    }

    private func message(_ live: LiveChild, _ line: String) {
        feed(.childMessage(service: live.service, WorkerMessage.parse(Substring(line))))
    }

    /// Re-logs a child's line with the service name, at the level its journald priority
    /// prefix (`<4>`) names; info without one.
    private func relog(_ live: LiveChild, _ line: String) {
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
        logger.log(level: level, "\(live.service): \(text)")
    }
}

/// A child in flight and its line buffers. Loop-thread only.
final class LiveChild {
    let service: String
    let child: ChildProcess
    var stdoutLines = LineBuffer()
    var stderrLines = LineBuffer()
    var resultLines = LineBuffer(limit: 1 << 20)

    init(service: String, child: ChildProcess) {
        self.service = service
        self.child = child
    }
}
