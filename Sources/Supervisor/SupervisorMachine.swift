import Foundation
import Logging
import Observability
import SyncEngine

#if canImport(Glibc)
import Glibc
#endif

/// One reading of the clock, as the executor passes it with every event: the wall clock (cron
/// schedules, due instants, summaries) and the monotonic clock in microseconds (timeouts,
/// heartbeats, grace periods, the shutdown deadline, the watchdog rhythm).
public struct Moment: Sendable, Hashable {
    public var wall: Date
    public var mono: UInt64

    public init(wall: Date, mono: UInt64) {
        self.wall = wall
        self.mono = mono
    }

    /// This moment `duration` later on both clocks.
    public func adding(_ duration: Duration) -> Moment {
        Moment(wall: wall.addingTimeInterval(duration.asSeconds), mono: mono + Moment.usec(duration))
    }

    /// `duration` in whole microseconds (0 for a negative one).
    static func usec(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000 + UInt64(attoseconds / 1_000_000_000_000)
    }
}

/// What happened: the executor's only way to tell the machine.
public enum SupervisorEvent: Sendable, Hashable {
    /// The loop woke (a timer, or after other events): deadlines and due runs are looked at.
    case timeReached
    /// A `.spawn` succeeded: the child runs as `pid`.
    case childStarted(service: String, pid: Int32)
    /// A `.spawn` failed (`error` says why).
    case spawnFailed(service: String, error: String)
    /// A line on a child's result pipe; nil when it was not a message.
    case childMessage(service: String, WorkerMessage?)
    /// A child ended and was reaped (its pipes already drained).
    case childExited(service: String, ChildExit)
    /// SIGTERM, SIGINT (stop) or SIGHUP (reload).
    case signal(Int32)
    /// `POST /trigger/SERVICE`; the answer comes back as `.answer(id:)`.
    case trigger(id: Int, service: String, dryRun: Bool)
    /// What a `.loadConfiguration` produced: the new configuration or the error text.
    case reload(SupervisorConfiguration?, error: String?)
}

/// A message to systemd (sd_notify).
public enum SystemdMessage: Sendable, Hashable {
    case ready(status: String)
    case status(String)
    case stopping(status: String)
    case reloading
    case watchdog
}

/// What the machine records: log lines and metric updates.
public enum SupervisorRecord: Sendable, Hashable {
    case log(Logger.Level, String)
    case runStarted(service: String, at: Date, restart: Bool)
    case runFinished(
        service: String, outcome: RunOutcome, durationSeconds: Double, summary: RunSummary?, cpuSeconds: Double,
        maxRSSBytes: UInt64)
    case sourceRequest(service: String, ok: Bool, seconds: Double)
    /// The service's state series (next run, failures, backoff) changed: read them from the machine.
    case serviceChanged(String)
    /// A configuration took effect: every service's series, with its expected run period.
    case configurationApplied
}

/// What the executor must do. It performs these in order and feeds back what follows
/// (`.childStarted` / `.spawnFailed` after a spawn, `.reload` after a load).
public enum SupervisorEffect: Sendable, Hashable {
    /// Spawn `PROGRAM worker SERVICE [--dry-run]` with these limits and descriptor-4 input.
    case spawn(service: String, dryRun: Bool, limits: ResourceLimits, input: Data?)
    /// Signal the process group of the service's run.
    case signalGroup(service: String, Int32)
    /// Wake the loop by this monotonic instant (µs) at the latest; nil: only events matter.
    case armTimer(mono: UInt64?)
    case notify(SystemdMessage)
    /// Read the configuration again (SIGHUP) and feed `.reload`.
    case loadConfiguration
    case record(SupervisorRecord)
    /// The answer to `.trigger(id:)`.
    case answer(id: Int, TriggerResult)
    /// Every child is gone after a stop: leave the loop with this exit code.
    case exit(Int32)
}

/// The whole supervisor policy: a value type with no I/O and no clock of its own. Every input
/// is a ``SupervisorEvent`` with the ``Moment`` it happened at; every output a list of
/// ``SupervisorEffect``s the executor (``Supervisor``) performs. Scheduling, backoff, reset_after,
/// the concurrency limit, the storm breaker and triggers are ``SupervisorCore``'s (one
/// ``ServiceMachine`` per service); this type adds the runs in flight and the process policy.
///
/// Phases: **running** (not stopping), **stopping** (a stop signal came; children are being
/// terminated), **exited** (every child gone after a stop; nothing happens any more). A run is
/// **live** (no kill reason), **terminating** (SIGTERM sent for a timeout, SIGKILL due at the
/// end of the grace), **killed** (SIGKILL sent) or **stopping** (SIGTERM sent at shutdown).
///
/// | phase \ event | timeReached | childStarted / spawnFailed | childMessage | childExited | signal TERM/INT | signal HUP | trigger | reload |
/// | --- | --- | --- | --- | --- | --- | --- | --- | --- |
/// | running | watchdog ping if due; storm end; spawn what is due (concurrency, storm); live run past `timeout` or silent past `heartbeat_timeout` → SIGTERM, kill at +grace; terminating run past its grace → SIGKILL; re-arm timer | started: run recorded, timeout clock starts; failed: a failed run (backoff) | heartbeat/any: sign of life; `started`: latency logged; `source_request`: metric; `summary`: kept for the end; unreadable: warning | classify (kill reason, exit code, signal, summary), merge the summary, backoff / schedule / wait, metrics | → stopping: SIGTERM to every live run, shutdown deadline = now + `shutdown_timeout`, STOPPING | RELOADING, load; → reload | 202 started / 409 running / 404 unknown or disabled; spawn if a slot is free | applied (runs finish under the old plan) or error logged; READY with the status |
/// | stopping | watchdog; kill every run not yet killed at the shutdown deadline; terminating runs still get SIGKILL at their grace; none left → exit 0 | started: recorded, SIGTERM at once; failed: recorded | as running | as running (recorded; no new runs) | second signal: SIGKILL to every run now | as running (a reload does not restart runs) | 409 | as running, nothing starts |
/// | exited | nothing | nothing | nothing | nothing | nothing | nothing | 409 | nothing |
public struct SupervisorMachine: Sendable {
    /// Why the supervisor is ending a run.
    public enum KillReason: Sendable, Hashable {
        case timeout(String)
        case shutdown
    }

    /// A run in flight: the machine's view of its child.
    public struct Run: Sendable, Hashable {
        public let service: String
        public let pid: Int32
        public let dryRun: Bool
        public let reason: RunReason
        public let startedAt: Date
        public let scheduledFor: Date
        public let timeout: Duration
        public let heartbeatTimeout: Duration
        public let startedMono: UInt64
        /// Last sign of life on the result pipe.
        public var lastSign: UInt64
        public var killReason: KillReason?
        public var killAt: UInt64?
        public var killSent = false
        public var summary: RunSummary?

        var timeoutDeadline: UInt64 { startedMono + Moment.usec(timeout) }
        var heartbeatDeadline: UInt64 { lastSign + Moment.usec(heartbeatTimeout) }

        /// The earliest instant the machine must look at this run again.
        var nextDeadline: UInt64? {
            if let killAt, !killSent { return killAt }
            if killReason != nil { return nil }
            return min(timeoutDeadline, heartbeatDeadline)
        }
    }

    /// A spawn asked for and not yet answered by `.childStarted` / `.spawnFailed`.
    struct Pending: Sendable, Hashable {
        var dryRun: Bool
        var reason: RunReason
        var scheduledFor: Date
    }

    public private(set) var core: SupervisorCore
    public private(set) var configuration: SupervisorConfiguration
    public private(set) var runs: [String: Run] = [:]
    private var pending: [String: Pending] = [:]
    public private(set) var shutdownDeadline: UInt64?
    public private(set) var exited = false
    /// How long a child has between SIGTERM and SIGKILL when killed for a timeout.
    public var killGrace: Duration
    /// Half of `WATCHDOG_USEC`, when systemd asked for pings.
    public let watchdogInterval: Duration?
    private var lastPing: UInt64?
    private var lastStatusLine = ""

    public init(
        configuration: SupervisorConfiguration, now: Moment, watchdogInterval: Duration? = nil, storm: StormBreaker? = nil,
        random: SplitMix64 = SplitMix64(seed: UInt64.random(in: .min ... .max))
    ) {
        self.configuration = configuration
        self.core = SupervisorCore(
            settings: configuration.settings, plans: configuration.plans, now: now.wall, storm: storm, random: random)
        self.killGrace = min(.seconds(10), configuration.settings.shutdownTimeout)
        self.watchdogInterval = watchdogInterval
    }

    public var stopping: Bool { core.stopping }

    // MARK: Start

    /// The loop is up (the endpoint listens): READY with the first status line.
    public mutating func start(at now: Moment) -> [SupervisorEffect] {
        lastStatusLine = statusLine()
        let enabled = core.services.filter(\.enabled).map(\.name)
        return [
            .notify(.ready(status: lastStatusLine)),
            .record(
                .log(
                    .info,
                    "supervisor ready: \(enabled.isEmpty ? "no enabled services" : enabled.joined(separator: ", ")); max \(configuration.settings.maxConcurrentRuns) concurrent runs"
                )),
        ]
    }

    // MARK: Events

    /// Decides what `event` at `now` means. Every (phase, event) pair is decided: see the table.
    public mutating func handle(_ event: SupervisorEvent, at now: Moment) -> [SupervisorEffect] {
        if exited {
            if case .trigger(let id, _, _) = event { return [.answer(id: id, .alreadyRunning)] }
            return []
        }
        var out: [SupervisorEffect] = []
        switch event {
        case .timeReached:
            if let watchdogInterval, now.mono >= (lastPing ?? 0) + Moment.usec(watchdogInterval) || lastPing == nil {
                out.append(.notify(.watchdog))
                lastPing = now.mono
            }
            if !core.stopping { out += tick(now) }
            out += enforceDeadlines(now)
            if core.stopping && runs.isEmpty && pending.isEmpty {
                exited = true
                out += [
                    .notify(.status("stopped")), .record(.log(.info, "supervisor stopped; no child left")), .exit(0),
                ]
                return out
            }
        case .childStarted(let service, let pid):
            out += started(service, pid: pid, now)
        case .spawnFailed(let service, let error):
            pending[service] = nil
            out.append(.record(.log(.error, "\(service): \(error)")))
            out += finish(service, RunEnd(outcome: .failure, retryable: true), duration: 0, cpu: 0, rss: 0, record: nil, now)
        case .childMessage(let service, let message):
            out += received(message, from: service, now)
        case .childExited(let service, let exit):
            out += exited(service, exit, now)
        case .signal(let signal):
            switch signal {
            case SIGTERM, SIGINT: out += stop(signal: signal, now)
            case SIGHUP:
                out += [
                    .notify(.reloading), .record(.log(.info, "reloading the configuration (SIGHUP)")), .loadConfiguration,
                ]
            default: break
            }
        case .trigger(let id, let service, let dryRun):
            let result: TriggerResult
            switch core.trigger(service: service, dryRun: dryRun) {
            case .accepted?, .alreadyQueued?: result = .started
            case .alreadyRunning?: result = .alreadyRunning
            case .disabled?, nil: result = .unknownService
            }
            if result == .started { out.append(.record(.log(.info, "\(service): run triggered\(dryRun ? " (dry run)" : "")"))) }
            out.append(.answer(id: id, result))
            if !core.stopping { out += tick(now) }
        case .reload(let fresh, let error):
            if let fresh {
                configuration = fresh
                core.reload(settings: fresh.settings, plans: fresh.plans, now: now.wall)
                out += [
                    .record(.configurationApplied),
                    .record(.log(.info, "configuration reloaded; running runs finish under the previous one")),
                ]
            } else {
                out.append(.record(.log(.error, "reload failed, keeping the previous configuration: \(error ?? "?")")))
            }
            lastStatusLine = statusLine()
            out.append(.notify(.ready(status: lastStatusLine)))
        }
        let line = statusLine()
        if line != lastStatusLine {
            lastStatusLine = line
            out.append(.notify(.status(line)))
        }
        out.append(.armTimer(mono: nextDeadline(now)))
        return out
    }

    /// Starts what is due.
    private mutating func tick(_ now: Moment) -> [SupervisorEffect] {
        var out: [SupervisorEffect] = []
        for action in core.tick(now: now.wall) {
            switch action {
            case .start(let service, let dryRun, let reason, let scheduledFor):
                guard let plan = core.plans[service] else { continue }
                pending[service] = Pending(dryRun: dryRun, reason: reason, scheduledFor: scheduledFor)
                out.append(
                    .spawn(
                        service: service, dryRun: dryRun, limits: plan.settings.limits,
                        input: configuration.childConfiguration[service]))
            case .stormStarted(let until, let failures):
                out.append(stormStarted(until: until, failures: failures))
            case .stormEnded:
                out.append(.record(.log(.notice, "failure storm over: runs resume")))
            }
        }
        return out
    }

    private mutating func started(_ service: String, pid: Int32, _ now: Moment) -> [SupervisorEffect] {
        guard let request = pending.removeValue(forKey: service), let plan = core.plans[service] else { return [] }
        var run = Run(
            service: service, pid: pid, dryRun: request.dryRun, reason: request.reason, startedAt: now.wall,
            scheduledFor: request.scheduledFor, timeout: plan.settings.timeout,
            heartbeatTimeout: plan.settings.heartbeatTimeout, startedMono: now.mono, lastSign: now.mono)
        var out: [SupervisorEffect] = [
            .record(.runStarted(service: service, at: now.wall, restart: request.reason == .retry)),
            .record(
                .log(
                    .info,
                    "\(service): run started (\(request.reason.rawValue)\(request.dryRun ? ", dry run" : ""), pid \(pid), timeout \(DurationFormat.short(plan.settings.timeout)))"
                )),
            .record(.serviceChanged(service)),
        ]
        if core.stopping {
            // Spawned just before a stop: it stops with the others.
            run.killReason = .shutdown
            out.append(.signalGroup(service: service, SIGTERM))
        }
        runs[service] = run
        return out
    }

    private mutating func received(_ message: WorkerMessage?, from service: String, _ now: Moment) -> [SupervisorEffect] {
        guard var run = runs[service] else { return [] }
        guard let message else { return [.record(.log(.warning, "\(service): unreadable line on the result pipe"))] }
        run.lastSign = now.mono
        var out: [SupervisorEffect] = []
        switch message.type {
        case .started:
            let latency = now.wall.timeIntervalSince(run.scheduledFor)
            out.append(
                .record(
                    .log(
                        .info,
                        "\(service): worker started, first work \(Int((latency * 1000).rounded())) ms after the \(run.reason == .trigger ? "trigger" : "due instant (\(run.reason.rawValue))")"
                    )))
        case .heartbeat:
            break
        case .sourceRequest:
            out.append(.record(.sourceRequest(service: service, ok: message.ok ?? false, seconds: message.seconds ?? 0)))
        case .summary:
            run.summary = message.summary
        }
        runs[service] = run
        return out
    }

    private mutating func enforceDeadlines(_ now: Moment) -> [SupervisorEffect] {
        var out: [SupervisorEffect] = []
        for name in runs.keys.sorted() {
            guard var run = runs[name] else { continue }
            if run.killReason == nil {
                if now.mono >= run.timeoutDeadline {
                    run.killReason = .timeout("ran past its timeout of \(DurationFormat.short(run.timeout))")
                } else if now.mono >= run.heartbeatDeadline {
                    run.killReason = .timeout("silent for \(DurationFormat.short(run.heartbeatTimeout)) (heartbeat timeout)")
                }
                if case .timeout(let why)? = run.killReason {
                    out += [
                        .record(.log(.warning, "\(name): \(why): terminating pid \(run.pid)")),
                        .signalGroup(service: name, SIGTERM),
                    ]
                    run.killAt = now.mono + Moment.usec(killGrace)
                }
            }
            if let killAt = run.killAt, now.mono >= killAt, !run.killSent {
                out += [
                    .record(.log(.warning, "\(name): still running after SIGTERM: killing pid \(run.pid)")),
                    .signalGroup(service: name, SIGKILL),
                ]
                run.killSent = true
            }
            if let shutdownDeadline, now.mono >= shutdownDeadline, !run.killSent {
                out += [
                    .record(.log(.warning, "\(name): still running at the shutdown timeout: killing pid \(run.pid)")),
                    .signalGroup(service: name, SIGKILL),
                ]
                run.killSent = true
            }
            runs[name] = run
        }
        return out
    }

    private mutating func stop(signal: Int32, _ now: Moment) -> [SupervisorEffect] {
        if core.stopping {
            return [.record(.log(.warning, "second stop signal: killing every child now"))]
                + runs.keys.sorted().map { .signalGroup(service: $0, SIGKILL) }
        }
        var out: [SupervisorEffect] = [
            .record(.log(.info, "stop requested (signal \(signal)): no new runs; stopping \(runs.count) running"))
        ]
        core.stop()
        out.append(.notify(.stopping(status: "stopping: \(runs.keys.sorted().joined(separator: ", "))")))
        shutdownDeadline = now.mono + Moment.usec(configuration.settings.shutdownTimeout)
        for name in runs.keys.sorted() where runs[name]?.killReason == nil {
            runs[name]?.killReason = .shutdown
            out.append(.signalGroup(service: name, SIGTERM))
        }
        lastStatusLine = ""
        return out
    }

    private mutating func exited(_ service: String, _ exit: ChildExit, _ now: Moment) -> [SupervisorEffect] {
        guard let run = runs.removeValue(forKey: service) else { return [] }
        let end = Self.classify(exit: exit, killReason: run.killReason, summary: run.summary)
        let duration = now.wall.timeIntervalSince(run.startedAt)
        let ended = exit.code.map { "exit \($0)" } ?? "signal \(exit.signal ?? 0)"
        var how = ended
        how += String(format: ", %.2fs CPU, max RSS %.0f MiB", exit.cpuSeconds, Double(exit.maxRSSBytes) / 1_048_576)
        var message = "\(service): run ended: \(end.outcome.rawValue) (\(how), \(DurationFormat.short(seconds: duration)))"
        if end.outcome != .success, let error = run.summary?.error { message += ": \(error)" }
        return [.record(.log(end.outcome == .success ? .info : .warning, message))]
            + finish(
                service, end, duration: duration, cpu: exit.cpuSeconds, rss: exit.maxRSSBytes,
                record: Self.record(end, of: run, ended: ended, at: now.wall), now)
    }

    private mutating func finish(
        _ service: String, _ end: RunEnd, duration: Double, cpu: Double, rss: UInt64, record: RunSummary?, _ now: Moment
    ) -> [SupervisorEffect] {
        var recorded = end
        recorded.summary = record ?? end.summary
        let (decision, actions) = core.runEnded(service: service, recorded, now: now.wall)
        var out: [SupervisorEffect] = [
            .record(
                .runFinished(
                    service: service, outcome: end.outcome, durationSeconds: duration, summary: end.summary,
                    cpuSeconds: cpu, maxRSSBytes: rss))
        ]
        switch decision {
        case .backoff(let delay, _)?:
            out.append(.record(.log(.notice, "\(service): retry in \(DurationFormat.short(seconds: delay))")))
        case .waitForSchedule(let next)?:
            out.append(
                .record(
                    .log(.notice, "\(service): not retried; waiting for the next scheduled run\(next.map { " at \($0)" } ?? "")")
                ))
        default:
            break
        }
        for action in actions {
            if case .stormStarted(let until, let failures) = action { out.append(stormStarted(until: until, failures: failures)) }
        }
        out.append(.record(.serviceChanged(service)))
        return out
    }

    private func stormStarted(until: Date, failures: Int) -> SupervisorEffect {
        .record(
            .log(
                .warning,
                "\(failures) failed runs within \(Int(core.storm.window))s: pausing scheduled runs and retries until \(until)"))
    }

    /// Maps how a child ended to a run outcome.
    public static func classify(exit: ChildExit, killReason: KillReason?, summary: RunSummary?) -> RunEnd {
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

    /// The summary `/status` shows for a run: the child's own, with the supervisor's outcome
    /// (a child killed for a timeout may have sent none, or one that says otherwise).
    static func record(_ end: RunEnd, of run: Run, ended: String, at now: Date) -> RunSummary {
        var summary =
            end.summary
            ?? RunSummary(
                service: run.service, outcome: end.outcome, dryRun: run.dryRun, startedAt: run.startedAt,
                finishedAt: now, error: "the worker ended without a summary (\(ended))")
        summary.outcome = end.outcome
        if case .timeout(let why)? = run.killReason { summary.error = why }
        return summary
    }

    // MARK: Queries

    /// The earliest monotonic instant something is due: a start, a run's deadline, the shutdown
    /// deadline, the next watchdog ping. Nil: only events can change anything.
    public func nextDeadline(_ now: Moment) -> UInt64? {
        var deadlines: [UInt64] = runs.values.compactMap(\.nextDeadline)
        if let next = core.nextWakeup() {
            deadlines.append(now.mono + UInt64((max(0, next.timeIntervalSince(now.wall)) * 1e6).rounded(.up)))
        }
        if let shutdownDeadline { deadlines.append(shutdownDeadline) }
        if let watchdogInterval { deadlines.append((lastPing ?? 0) + Moment.usec(watchdogInterval)) }
        return deadlines.min()
    }

    /// The `STATUS=` line.
    public func statusLine() -> String {
        let zone = TimeZone(identifier: configuration.settings.timezone) ?? .current
        return core.stopping ? "stopping: \(runs.keys.sorted().joined(separator: ", "))" : core.statusLine(in: zone)
    }

    /// `/status`.
    public func report(version: String, startedAt: Date, now: Date) -> StatusReport {
        StatusReport(
            version: version, startedAt: startedAt,
            services: core.services.map { machine in
                let next: Date? =
                    switch machine.due {
                    case let due? where due.at == .distantPast: now
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
