import Foundation
import SyncEngine
import Testing

@testable import Supervisor

/// The per-service state machine on an injected clock (a `Date` passed to every input) and
/// injected jitter.
@Suite struct ServiceMachineTests {
    let t0 = Date(timeIntervalSince1970: 1_790_000_000)
    let backoff = BackoffSettings(
        initial: .seconds(10), max: .seconds(60), multiplier: 2, jitter: 0.2, resetAfter: .seconds(600))

    func machine(interval: Double = 900, runOnStart: Bool = false) -> ServiceMachine {
        ServiceMachine(
            name: "ldap", schedule: Schedule(.interval(.seconds(interval))), enabled: true, runOnStart: runOnStart,
            now: t0)
    }

    @Test func firstRunFollowsTheSchedule() {
        #expect(machine().due?.at == t0.addingTimeInterval(900))
        #expect(machine(runOnStart: true).due?.at == t0)
        let disabled = ServiceMachine(name: "x", schedule: Schedule(.interval(.seconds(60))), enabled: false, runOnStart: true, now: t0)
        #expect(disabled.due == nil)
        #expect(disabled.state == .disabled)
    }

    @Test func successReturnsToIdleAtTheNextScheduledRun() {
        var m = machine(runOnStart: true)
        #expect(m.start(now: t0, configuredDryRun: false)?.reason == .schedule)
        #expect(m.isRunning)
        let decision = m.finish(RunEnd(outcome: .success), now: t0.addingTimeInterval(30), backoff: backoff, jitter: 0.5)
        #expect(decision == .scheduled(next: t0.addingTimeInterval(900)))
        #expect(m.state == .idle)
        #expect(m.lastSuccessAt == t0.addingTimeInterval(30))
    }

    @Test func backoffGrowsGeometricallyAndIsCapped() {
        var m = machine(runOnStart: true)
        var now = t0
        var delays: [Double] = []
        for _ in 0..<5 {
            _ = m.start(now: now, configuredDryRun: false)
            guard case .backoff(let delay, let until) = m.finish(RunEnd(outcome: .crash), now: now, backoff: backoff, jitter: 0.5)
            else { Issue.record("expected backoff"); return }
            delays.append(delay)
            #expect(m.due?.reason == .retry)
            now = until
        }
        // jitter 0.5 = no spread: 10, 20, 40, 60 (cap), 60.
        #expect(delays == [10, 20, 40, 60, 60])
        #expect(m.consecutiveFailures == 5)
    }

    @Test func jitterSpreadsWithinBounds() {
        #expect(ServiceMachine.backoffDelay(level: 1, settings: backoff, jitter: 0) == 8)
        #expect(abs(ServiceMachine.backoffDelay(level: 1, settings: backoff, jitter: 0.999_999) - 12) < 0.001)
        #expect(ServiceMachine.backoffDelay(level: 3, settings: backoff, jitter: 0.5) == 40)
    }

    @Test func failureTimeoutAndCrashAllBackOff() {
        for outcome in [RunOutcome.failure, .crash, .timeout] {
            var m = machine(runOnStart: true)
            _ = m.start(now: t0, configuredDryRun: false)
            let decision = m.finish(RunEnd(outcome: outcome), now: t0, backoff: backoff, jitter: 0.5)
            #expect(decision == .backoff(delay: 10, until: t0.addingTimeInterval(10)), "\(outcome)")
        }
    }

    /// Guards against hammering: a refused run or a configuration error waits for the next
    /// scheduled run instead of retrying.
    @Test func refusedAndConfigurationErrorsWaitForTheSchedule() {
        for end in [RunEnd(outcome: .refused), RunEnd(outcome: .failure, retryable: false)] {
            var m = machine(runOnStart: true)
            _ = m.start(now: t0, configuredDryRun: false)
            let decision = m.finish(end, now: t0.addingTimeInterval(5), backoff: backoff, jitter: 0.5)
            #expect(decision == .waitForSchedule(next: t0.addingTimeInterval(900)))
            #expect(m.state == .waiting)
            #expect(m.due?.at == t0.addingTimeInterval(900))
            #expect(m.consecutiveFailures == 1)
            #expect(m.backoffSeconds == 0)
        }
    }

    @Test func notReadyAndLockedRetryAtTheNextSchedule() {
        for outcome in [RunOutcome.notReady, .locked] {
            var m = machine(runOnStart: true)
            _ = m.start(now: t0, configuredDryRun: false)
            let decision = m.finish(RunEnd(outcome: outcome), now: t0.addingTimeInterval(1), backoff: backoff, jitter: 0.5)
            #expect(decision == .scheduled(next: t0.addingTimeInterval(900)))
            #expect(m.state == .idle)
            #expect(m.consecutiveFailures == 0)
        }
    }

    /// A success soon after a failure keeps the backoff level (a flapping service keeps
    /// backing off); one `reset_after` past the last failure resets it.
    @Test func backoffLevelResetsOnlyAfterResetAfter() {
        var m = machine(runOnStart: true)
        var now = t0
        func fail() -> Double? {
            _ = m.start(now: now, configuredDryRun: false)
            if case .backoff(let d, _) = m.finish(RunEnd(outcome: .failure), now: now, backoff: backoff, jitter: 0.5) { return d }
            return nil
        }
        func succeed() {
            _ = m.trigger(dryRun: false)
            _ = m.start(now: now, configuredDryRun: false)
            _ = m.finish(RunEnd(outcome: .success), now: now, backoff: backoff, jitter: 0.5)
        }
        #expect(fail() == 10)
        now += 10
        #expect(fail() == 20)
        now += 20
        succeed()  // 20 s after the last failure
        #expect(m.consecutiveFailures == 0)
        now += 60
        _ = m.trigger(dryRun: false)
        #expect(fail() == 40)  // flapping: the level was kept
        now += 601
        succeed()  // more than reset_after since the last failure
        now += 5
        _ = m.trigger(dryRun: false)
        #expect(fail() == 10)
    }

    /// Guards against overlapping runs of one service.
    @Test func noOverlapWhileRunning() {
        var m = machine(runOnStart: true)
        _ = m.start(now: t0, configuredDryRun: false)
        #expect(m.due == nil)
        #expect(m.start(now: t0.addingTimeInterval(10_000), configuredDryRun: false) == nil)
        #expect(m.trigger(dryRun: false) == .alreadyRunning)
    }

    @Test func triggerOverridesBackoffAndCarriesDryRun() {
        var m = machine(runOnStart: true)
        _ = m.start(now: t0, configuredDryRun: false)
        _ = m.finish(RunEnd(outcome: .failure), now: t0, backoff: backoff, jitter: 0.5)
        #expect(m.trigger(dryRun: true) == .accepted)
        #expect(m.trigger(dryRun: true) == .alreadyQueued)
        let started = m.start(now: t0.addingTimeInterval(1), configuredDryRun: false)
        #expect(started?.reason == .trigger)
        #expect(started?.dryRun == true)
    }

    /// A run missed while the supervisor was busy or down is run once, not once per missed
    /// period, and the next one is computed from now.
    @Test func missedRunsAreNotReplayed() {
        var m = machine(interval: 60)
        let late = t0.addingTimeInterval(5 * 3600)
        #expect(m.start(now: late, configuredDryRun: false)?.reason == .schedule)
        _ = m.finish(RunEnd(outcome: .success), now: late.addingTimeInterval(2), backoff: backoff, jitter: 0.5)
        #expect(m.due?.at == late.addingTimeInterval(60))
    }

    @Test func reloadKeepsTheRunningRunAndAppliesTheNewSchedule() {
        var m = machine(runOnStart: true)
        _ = m.start(now: t0, configuredDryRun: false)
        m.reconfigure(schedule: Schedule(.interval(.seconds(60))), enabled: true, now: t0.addingTimeInterval(1))
        #expect(m.isRunning)
        _ = m.finish(RunEnd(outcome: .success), now: t0.addingTimeInterval(2), backoff: backoff, jitter: 0.5)
        #expect(m.due?.at == t0.addingTimeInterval(60))
        m.reconfigure(schedule: Schedule(.interval(.seconds(60))), enabled: false, now: t0.addingTimeInterval(3))
        #expect(m.state == .disabled)
        #expect(m.trigger(dryRun: false) == .disabled)
    }
}
