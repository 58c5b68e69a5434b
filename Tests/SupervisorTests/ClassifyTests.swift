import Foundation
import SyncEngine
import Testing

@testable import Supervisor

/// How a child's end maps to a run outcome, and the state/input pairs the main tests do not
/// reach.
@Suite struct ClassifyTests {
    func exit(code: Int32? = nil, signal: Int32? = nil) -> ChildExit {
        ChildExit(code: code, signal: signal, cpuSeconds: 0, maxRSSBytes: 0)
    }

    func summary(_ outcome: RunOutcome) -> RunSummary {
        RunSummary(service: "ldap", outcome: outcome, dryRun: false, startedAt: Date(), finishedAt: Date())
    }

    @Test func exitCodesAndSignals() {
        #expect(SupervisorMachine.classify(exit: exit(code: 0), killReason: nil, summary: nil).outcome == .success)
        #expect(SupervisorMachine.classify(exit: exit(code: 1), killReason: nil, summary: nil).outcome == .failure)
        #expect(SupervisorMachine.classify(exit: exit(code: 69), killReason: nil, summary: nil).outcome == .failure)
        #expect(SupervisorMachine.classify(exit: exit(code: 65), killReason: nil, summary: nil).outcome == .refused)
        #expect(SupervisorMachine.classify(exit: exit(code: 75), killReason: nil, summary: nil).outcome == .notReady)
        #expect(SupervisorMachine.classify(exit: exit(code: 75), killReason: nil, summary: summary(.locked)).outcome == .locked)
        let config = SupervisorMachine.classify(exit: exit(code: 78), killReason: nil, summary: nil)
        #expect(config.outcome == .failure && !config.retryable)
        #expect(SupervisorMachine.classify(exit: exit(signal: 9), killReason: nil, summary: nil).outcome == .crash)
        #expect(SupervisorMachine.classify(exit: exit(signal: 11), killReason: nil, summary: nil).outcome == .crash)
        // Killed by us: a timeout, whatever the signal or exit code.
        #expect(SupervisorMachine.classify(exit: exit(signal: 15), killReason: .timeout("x"), summary: nil).outcome == .timeout)
        #expect(SupervisorMachine.classify(exit: exit(code: 0), killReason: .timeout("x"), summary: nil).outcome == .timeout)
        // Stopped at shutdown: a failure, unless it finished cleanly first.
        #expect(SupervisorMachine.classify(exit: exit(signal: 15), killReason: .shutdown, summary: nil).outcome == .failure)
        #expect(
            SupervisorMachine.classify(exit: exit(code: 0), killReason: .shutdown, summary: summary(.success)).outcome == .success)
    }

    /// Inputs that do not apply to a state change nothing (s6's `nop`).
    @Test func inapplicableInputsAreNoOps() {
        let t0 = Date(timeIntervalSince1970: 1_790_000_000)
        var m = ServiceMachine(name: "ldap", schedule: Schedule(.manual), enabled: true, runOnStart: false, now: t0)
        #expect(m.due == nil)
        #expect(m.start(now: t0, configuredDryRun: false) == nil)
        // A stale "run ended" while idle: recorded, state unchanged.
        _ = m.finish(RunEnd(outcome: .crash), now: t0, backoff: BackoffSettings(), jitter: 0.5)
        #expect(m.state == .idle && m.consecutiveFailures == 0)
        m.stop()
        #expect(m.trigger(dryRun: false) == .alreadyRunning)
        #expect(m.due == nil)
        m.reconfigure(schedule: Schedule(.interval(.seconds(5))), enabled: true, now: t0)
        #expect(m.state == .stopped)
    }
}
