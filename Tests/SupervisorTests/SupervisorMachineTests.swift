import Foundation
import SyncEngine
import Testing

@testable import Supervisor

#if canImport(Glibc)
import Glibc
#endif

/// The supervisor's timing and process policy on a mock clock: no processes, no sleeps. Each
/// test drives ``SupervisorMachine`` with events at chosen instants and checks its effects.
@Suite struct SupervisorMachineTests {
    /// A mock clock: both readings move together, only when a test says so.
    struct MockClock {
        var now = Moment(wall: Date(timeIntervalSince1970: 1_790_000_000), mono: 1_000_000_000)
        mutating func advance(_ d: Duration) { now = now.adding(d) }
    }

    static func configuration(
        services: [String: ServiceSettings], shutdown: Duration = .seconds(5), backoff: BackoffSettings? = nil,
        max: Int = 2
    ) -> SupervisorConfiguration {
        let settings = SupervisorSettings(
            timezone: "UTC", maxConcurrentRuns: max, shutdownTimeout: shutdown,
            backoff: backoff
                ?? BackoffSettings(initial: .seconds(2), max: .seconds(60), multiplier: 2, jitter: 0, resetAfter: .seconds(600)))
        let plans = services.map { name, s in
            ServicePlan(name: name, settings: s, schedule: try! Schedule(s.schedule, timezone: "UTC"))
        }
        return SupervisorConfiguration(settings: settings, plans: plans)
    }

    static func service(
        timeout: Duration = .seconds(60), heartbeat: Duration = .seconds(120), runOnStart: Bool = true,
        interval: Duration = .seconds(3600)
    ) -> ServiceSettings {
        ServiceSettings(
            enabled: true, schedule: .interval(interval), runOnStart: runOnStart, timeout: timeout,
            heartbeatTimeout: heartbeat)
    }

    /// The machine, its mock clock and the log lines it recorded.
    struct Driver {
        var clock = MockClock()
        var machine: SupervisorMachine
        var log: [String] = []

        init(
            _ services: [String: ServiceSettings] = ["ldap": SupervisorMachineTests.service()], shutdown: Duration = .seconds(5),
            watchdog: Duration? = nil
        ) {
            machine = SupervisorMachine(
                configuration: SupervisorMachineTests.configuration(services: services, shutdown: shutdown), now: clock.now,
                watchdogInterval: watchdog, random: SplitMix64(seed: 1))
            _ = machine.start(at: clock.now)
        }

        @discardableResult
        mutating func send(_ event: SupervisorEvent) -> [SupervisorEffect] {
            let effects = machine.handle(event, at: clock.now)
            for case .record(.log(_, let line)) in effects { log.append(line) }
            return effects
        }

        /// Moves the clock and lets the loop wake.
        @discardableResult
        mutating func after(_ d: Duration) -> [SupervisorEffect] {
            clock.advance(d)
            return send(.timeReached)
        }

        /// Plays the executor's part of a spawn: every `.spawn` succeeds with the next pid.
        @discardableResult
        mutating func startSpawned(_ effects: [SupervisorEffect], pid: Int32 = 100) -> [String] {
            var started: [String] = []
            for case .spawn(let service, _, _, _) in effects {
                send(.childStarted(service: service, pid: pid + Int32(started.count)))
                started.append(service)
            }
            return started
        }

        func outcome(_ service: String = "ldap") -> RunOutcome? { machine.core.service(service)?.lastOutcome }
    }

    static func signals(_ effects: [SupervisorEffect]) -> [Int32] {
        effects.compactMap { if case .signalGroup(_, let s) = $0 { return s } else { return nil } }
    }

    static func timer(_ effects: [SupervisorEffect]) -> UInt64?? {
        for case .armTimer(let mono) in effects.reversed() { return .some(mono) }
        return .none
    }

    /// The last armed timer is `mono`, give or take the microsecond a wall-clock difference
    /// may round to.
    static func armed(_ effects: [SupervisorEffect], near mono: UInt64) -> Bool {
        guard case .some(.some(let at)) = timer(effects) else { return false }
        return at + 1 >= mono && at <= mono + 1
    }

    static func exit(code: Int32? = nil, signal: Int32? = nil) -> ChildExit {
        ChildExit(code: code, signal: signal, cpuSeconds: 0.1, maxRSSBytes: 1 << 20)
    }


    // MARK: Timeouts and the kill sequence

    /// `timeout`: SIGTERM exactly at the timeout, not a microsecond before; SIGKILL exactly one
    /// grace later if the child is still there; recorded as `timeout` with the reason.
    @Test func runPastItsTimeoutIsTerminatedThenKilled() {
        var d = Driver(["ldap": Self.service(timeout: .milliseconds(1500))], shutdown: .seconds(1))
        #expect(d.startSpawned(d.send(.timeReached)) == ["ldap"])
        #expect(d.machine.killGrace == .seconds(1), "grace: min(10 s, shutdown_timeout)")
        #expect(Self.signals(d.after(.microseconds(1_499_999))).isEmpty)
        let term = d.after(.microseconds(1))
        #expect(Self.signals(term) == [SIGTERM])
        #expect(d.log.last == "ldap: ran past its timeout of 1.5s: terminating pid 100")
        #expect(Self.timer(term) == .some(d.clock.now.mono + 1_000_000), "armed for the end of the grace")
        #expect(Self.signals(d.after(.milliseconds(999))).isEmpty)
        #expect(Self.signals(d.after(.milliseconds(1))) == [SIGKILL])
        #expect(d.log.last == "ldap: still running after SIGTERM: killing pid 100")
        #expect(Self.signals(d.after(.seconds(5))).isEmpty, "SIGKILL once")
        d.send(.childExited(service: "ldap", Self.exit(signal: SIGKILL)))
        #expect(d.outcome() == .timeout)
        #expect(d.machine.core.service("ldap")?.lastRun?.error == "ran past its timeout of 1.5s")
    }

    /// `heartbeat_timeout`: every message is a sign of life; silence for the timeout is killed.
    @Test func silentRunIsKilledAtItsHeartbeatTimeout() {
        var d = Driver(["gewisdb": Self.service(heartbeat: .seconds(1))])
        d.startSpawned(d.send(.timeReached))
        for _ in 0..<15 {
            #expect(Self.signals(d.after(.milliseconds(100))).isEmpty)
            d.send(.childMessage(service: "gewisdb", WorkerMessage(type: .heartbeat, phase: "test")))
        }
        #expect(Self.signals(d.after(.milliseconds(999))).isEmpty)
        #expect(Self.signals(d.after(.milliseconds(1))) == [SIGTERM])
        #expect(d.log.last == "gewisdb: silent for 1s (heartbeat timeout): terminating pid 100")
        d.send(.childExited(service: "gewisdb", Self.exit(signal: SIGTERM)))
        #expect(d.outcome("gewisdb") == .timeout)
        #expect(d.log.contains { $0.hasPrefix("gewisdb: run ended: timeout (signal 15") })
    }

    /// An unreadable line on the result pipe is no sign of life.
    @Test func unreadableLinesDoNotCountAsHeartbeats() {
        var d = Driver(["ldap": Self.service(heartbeat: .seconds(1))])
        d.startSpawned(d.send(.timeReached))
        d.clock.advance(.milliseconds(500))
        d.send(.childMessage(service: "ldap", nil))
        #expect(d.log.last == "ldap: unreadable line on the result pipe")
        #expect(Self.signals(d.after(.milliseconds(500))) == [SIGTERM])
    }

    // MARK: Backoff

    /// A crash (signal) backs off: the retry is spawned exactly `initial` after the crash.
    @Test func crashIsRetriedExactlyAfterTheBackoff() {
        var d = Driver()
        d.startSpawned(d.send(.timeReached))
        d.clock.advance(.seconds(3))
        let ended = d.send(.childExited(service: "ldap", Self.exit(signal: SIGKILL)))
        #expect(d.outcome() == .crash)
        #expect(d.log.contains("ldap: retry in 2s"))
        #expect(Self.armed(ended, near: d.clock.now.mono + 2_000_000))
        #expect(d.startSpawned(d.after(.milliseconds(1999))).isEmpty)
        let retry = d.after(.milliseconds(1))
        #expect(d.startSpawned(retry) == ["ldap"])
        #expect(d.log.contains { $0.hasPrefix("ldap: run started (retry, pid 100") })
        // The second failure doubles the delay.
        d.clock.advance(.seconds(1))
        d.send(.childExited(service: "ldap", Self.exit(code: 1)))
        #expect(d.log.last == "ldap: retry in 4s")
    }

    /// A failed spawn is a failed run: recorded and backed off like one.
    @Test func spawnFailureIsAFailedRun() {
        var d = Driver()
        let effects = d.send(.timeReached)
        #expect(effects.contains { if case .spawn("ldap", false, _, _) = $0 { true } else { false } })
        d.send(.spawnFailed(service: "ldap", error: "could not spawn the worker: fork failed"))
        #expect(d.outcome() == .failure)
        #expect(d.log.contains("ldap: could not spawn the worker: fork failed"))
        #expect(d.log.contains("ldap: retry in 2s"))
    }

    // MARK: Shutdown

    /// SIGTERM: every run gets SIGTERM, no new runs start, a run still there at
    /// `shutdown_timeout` is killed, and the d.machine exits 0 once it is gone.
    @Test func shutdownTerminatesThenKillsAtTheDeadline() {
        var d = Driver(["ldap": Self.service(), "gewisdb": Self.service(runOnStart: false)], shutdown: .seconds(1))
        d.startSpawned(d.send(.timeReached))
        d.clock.advance(.seconds(1))
        let stop = d.send(.signal(SIGTERM))
        #expect(Self.signals(stop) == [SIGTERM])
        #expect(stop.contains(.notify(.stopping(status: "stopping: ldap"))))
        #expect(stop.contains(.notify(.status("stopping: ldap"))))
        #expect(d.send(.trigger(id: 1, service: "gewisdb", dryRun: false)).contains(.answer(id: 1, .alreadyRunning)))
        #expect(Self.signals(d.after(.milliseconds(999))).isEmpty)
        #expect(Self.signals(d.after(.milliseconds(1))) == [SIGKILL])
        #expect(d.log.last == "ldap: still running at the shutdown timeout: killing pid 100")
        d.send(.childExited(service: "ldap", Self.exit(signal: SIGKILL)))
        #expect(d.outcome() == .failure)
        let end = d.after(.milliseconds(1))
        #expect(end.suffix(3) == [.notify(.status("stopped")), .record(.log(.info, "supervisor stopped; no child left")), .exit(0)])
        #expect(d.after(.seconds(1)).isEmpty, "exited: nothing happens any more")
        #expect(d.send(.trigger(id: 2, service: "ldap", dryRun: false)) == [.answer(id: 2, .alreadyRunning)])
    }

    /// A second stop signal kills every child at once.
    @Test func secondSignalKillsEveryChildNow() {
        var d = Driver()
        d.startSpawned(d.send(.timeReached))
        #expect(Self.signals(d.send(.signal(SIGINT))) == [SIGTERM])
        #expect(Self.signals(d.send(.signal(SIGTERM))) == [SIGKILL])
        #expect(d.log.last == "second stop signal: killing every child now")
    }

    /// A run that finishes cleanly while stopping keeps its own outcome (summary merged);
    /// one that dies of the SIGTERM is a failure.
    @Test func shutdownKeepsACleanRunsOutcome() {
        var d = Driver()
        d.startSpawned(d.send(.timeReached))
        d.send(.signal(SIGTERM))
        let summary = RunSummary(service: "ldap", outcome: .success, dryRun: false, startedAt: d.clock.now.wall, finishedAt: d.clock.now.wall)
        d.send(.childMessage(service: "ldap", WorkerMessage(type: .summary, summary: summary)))
        d.send(.childExited(service: "ldap", Self.exit(code: 0)))
        #expect(d.outcome() == .success)
        #expect(d.send(.timeReached).last == .exit(0))
    }

    /// No run in flight: the stop signal ends the loop at once.
    @Test func stopWithNoRunsExitsAtOnce() {
        var d = Driver(["ldap": Self.service(runOnStart: false)])
        d.send(.signal(SIGTERM))
        #expect(d.send(.timeReached).last == .exit(0))
    }

    // MARK: Summaries

    /// A child killed for a timeout that sent a success summary is recorded as a timeout with
    /// the supervisor's reason; one that sent none gets a summary naming how it ended.
    @Test func summariesAreMergedWithTheSupervisorsOutcome() {
        var d = Driver(["ldap": Self.service(timeout: .seconds(1)), "gewisdb": Self.service()])
        d.startSpawned(d.send(.timeReached))
        let summary = RunSummary(service: "ldap", outcome: .success, dryRun: false, startedAt: d.clock.now.wall, finishedAt: d.clock.now.wall)
        d.send(.childMessage(service: "ldap", WorkerMessage(type: .summary, summary: summary)))
        d.after(.seconds(1))
        d.send(.childExited(service: "ldap", Self.exit(code: 0)))
        let ldap = d.machine.core.service("ldap")?.lastRun
        #expect(ldap?.outcome == .timeout && ldap?.error == "ran past its timeout of 1s")
        d.send(.childExited(service: "gewisdb", Self.exit(signal: SIGSEGV)))
        let gewisdb = d.machine.core.service("gewisdb")?.lastRun
        #expect(gewisdb?.outcome == .crash)
        #expect(gewisdb?.error == "the worker ended without a summary (signal 11)")
    }

    // MARK: Triggers

    /// Trigger answers: started (202), already running (409), unknown (404); a trigger spawns
    /// at once when a slot is free.
    @Test func triggerAnswers() {
        var d = Driver(["ldap": Self.service(runOnStart: false)])
        let first = d.send(.trigger(id: 1, service: "ldap", dryRun: true))
        #expect(first.contains(.answer(id: 1, .started)))
        #expect(first.contains { if case .spawn("ldap", true, _, _) = $0 { true } else { false } })
        d.startSpawned(first)
        #expect(d.send(.trigger(id: 2, service: "ldap", dryRun: false)).contains(.answer(id: 2, .alreadyRunning)))
        #expect(d.send(.trigger(id: 3, service: "nope", dryRun: false)).contains(.answer(id: 3, .unknownService)))
        #expect(d.log.contains("ldap: run triggered (dry run)"))
        #expect(d.log.contains { $0.hasPrefix("ldap: run started (trigger, dry run, pid 100") })
    }

    // MARK: Watchdog, timer, reload

    /// The watchdog is pinged on the first wake-up, then once per interval, never in between;
    /// the armed timer names the next ping.
    @Test func watchdogPingsOncePerInterval() {
        var d = Driver(["ldap": Self.service(runOnStart: false)], watchdog: .milliseconds(500))
        var pings: [UInt64] = []
        for _ in 0..<40 {
            let effects = d.after(.milliseconds(100))
            if effects.contains(.notify(.watchdog)) { pings.append(d.clock.now.mono) }
            #expect(Self.timer(effects).map { $0 != nil } == true)
        }
        #expect(pings.count == 8)
        #expect(zip(pings.dropFirst(), pings).allSatisfy { $0 - $1 == 500_000 })
    }

    /// With nothing due and no watchdog, no timer is armed: only events wake the loop.
    @Test func nothingDueArmsNoTimer() {
        var d = Driver(["ldap": Self.service(runOnStart: false, interval: .seconds(3600))])
        let effects = d.send(.timeReached)
        #expect(Self.armed(effects, near: d.clock.now.mono + 3_600_000_000), "the next scheduled run")
        d = Driver(["ldap": ServiceSettings(enabled: true, schedule: nil, runOnStart: false)])
        #expect(Self.timer(d.send(.timeReached)) == .some(nil))
    }

    /// SIGHUP: RELOADING, then a load; a good configuration applies and READY follows, a bad one
    /// is logged and the old one kept (READY too).
    @Test func reloadGoodAndBad() {
        var d = Driver()
        let hup = d.send(.signal(SIGHUP))
        #expect(hup.prefix(1) == [.notify(.reloading)] && hup.contains(.loadConfiguration))
        let fresh = Self.configuration(services: ["ldap": Self.service(runOnStart: false, interval: .seconds(60))])
        let good = d.send(.reload(fresh, error: nil))
        #expect(good.contains(.record(.configurationApplied)))
        #expect(good.contains { if case .notify(.ready) = $0 { true } else { false } })
        #expect(d.machine.configuration == fresh)
        let bad = d.send(.reload(nil, error: "services: not a mapping"))
        #expect(d.log.last == "reload failed, keeping the previous configuration: services: not a mapping")
        #expect(bad.contains { if case .notify(.ready) = $0 { true } else { false } })
        #expect(d.machine.configuration == fresh)
    }

    /// At most `max_concurrent_runs` children; a slot freed by an exit is used at once.
    @Test func concurrencyLimitHoldsAcrossExits() {
        var d = Driver(["a": Self.service(), "b": Self.service(), "c": Self.service()])
        #expect(d.startSpawned(d.send(.timeReached)) == ["a", "b"])
        #expect(d.startSpawned(d.after(.seconds(1))).isEmpty)
        d.send(.childExited(service: "a", Self.exit(code: 0)))
        #expect(d.startSpawned(d.send(.timeReached)) == ["c"])
    }
}
