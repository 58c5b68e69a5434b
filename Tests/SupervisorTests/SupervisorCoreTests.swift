import Foundation
import SyncEngine
import Testing

@testable import Supervisor

/// The whole supervisor's decisions: concurrency limit, storm breaker, triggers, stop.
@Suite struct SupervisorCoreTests {
    let t0 = Date(timeIntervalSince1970: 1_790_000_000)

    func core(services: [String], max: Int = 2, storm: StormBreaker? = nil) -> SupervisorCore {
        let settings = SupervisorSettings(
            timezone: "UTC", maxConcurrentRuns: max, shutdownTimeout: .seconds(5),
            backoff: BackoffSettings(initial: .seconds(1), max: .seconds(8), multiplier: 2, jitter: 0, resetAfter: .seconds(60)))
        let plans = services.map {
            ServicePlan(
                name: $0, settings: ServiceSettings(enabled: true, schedule: .interval(.seconds(3600)), runOnStart: true),
                schedule: Schedule(.interval(.seconds(3600))))
        }
        return SupervisorCore(settings: settings, plans: plans, now: t0, storm: storm, random: SplitMix64(seed: 1))
    }

    func started(_ actions: [SupervisorAction]) -> [String] {
        actions.compactMap { if case .start(let s, _, _, _) = $0 { return s } else { return nil } }
    }

    @Test func atMostMaxConcurrentRuns() {
        var c = core(services: ["a", "b", "c"], max: 2)
        #expect(started(c.tick(now: t0)) == ["a", "b"])
        #expect(c.runningCount == 2)
        #expect(started(c.tick(now: t0.addingTimeInterval(1))) == [])
        _ = c.runEnded(service: "a", RunEnd(outcome: .success), now: t0.addingTimeInterval(2))
        #expect(started(c.tick(now: t0.addingTimeInterval(2))) == ["c"])
    }

    @Test func nextWakeupIsTheEarliestDueTime() {
        var c = core(services: ["a"])
        _ = c.tick(now: t0)
        #expect(c.nextWakeup() == nil)  // running: only its exit can change anything
        _ = c.runEnded(service: "a", RunEnd(outcome: .failure), now: t0.addingTimeInterval(3))
        #expect(c.nextWakeup() == t0.addingTimeInterval(4))  // 1 s backoff, no jitter
    }

    /// Too many failures across services pause scheduled runs and retries, and say so.
    @Test func stormBreakerPausesEveryService() {
        var c = core(services: ["a", "b", "c"], max: 3, storm: StormBreaker(threshold: 4, window: 60, pause: 120))
        var now = t0
        var stormActions: [SupervisorAction] = []
        for _ in 0..<2 {
            for s in started(c.tick(now: now)) {
                stormActions += c.runEnded(service: s, RunEnd(outcome: .crash), now: now).actions
            }
            now += 2.5
        }
        #expect(stormActions.contains { if case .stormStarted = $0 { return true } else { return false } })
        #expect(c.stormUntil != nil)
        #expect(started(c.tick(now: now + 60)) == [])  // retries held back
        #expect(c.statusLine(in: TimeZone(identifier: "UTC")!).hasPrefix("storm: runs paused until"))
        #expect(c.trigger(service: "a", dryRun: false) == .accepted)
        #expect(started(c.tick(now: now + 61)) == ["a"])  // an operator's trigger still runs
        let after = c.tick(now: c.stormUntil!.addingTimeInterval(1))
        #expect(after.first == .stormEnded)
        #expect(Set(started(after)) == ["b", "c"])
    }

    @Test func triggerAnswers() {
        var c = core(services: ["a"])
        #expect(c.trigger(service: "nope", dryRun: false) == nil)
        _ = c.tick(now: t0)
        #expect(c.trigger(service: "a", dryRun: false) == .alreadyRunning)
        c.stop()
        #expect(c.tick(now: t0.addingTimeInterval(10_000)).isEmpty)
        #expect(c.trigger(service: "a", dryRun: false) == .alreadyRunning)
    }

    @Test func reloadAddsAndDisablesServices() {
        var c = core(services: ["a", "b"])
        _ = c.tick(now: t0)
        let newPlans = [
            ServicePlan(name: "b", settings: ServiceSettings(enabled: false), schedule: Schedule(.manual)),
            ServicePlan(
                name: "d", settings: ServiceSettings(enabled: true, schedule: .interval(.seconds(60))),
                schedule: Schedule(.interval(.seconds(60)))),
        ]
        c.reload(settings: c.settings, plans: newPlans, now: t0.addingTimeInterval(1))
        #expect(c.services.map(\.name) == ["a", "b", "d"])
        #expect(c.service("a")?.isRunning == true)  // finishes under the old configuration
        #expect(c.service("a")?.enabled == false)
        #expect(c.service("d")?.due?.at == t0.addingTimeInterval(61))
    }

    @Test func statusLineSummarisesEveryService() {
        var c = core(services: ["gewisdb", "ldap"])
        _ = c.tick(now: t0)
        _ = c.runEnded(service: "ldap", RunEnd(outcome: .failure), now: t0.addingTimeInterval(1))
        let line = c.statusLine(in: TimeZone(identifier: "UTC")!)
        #expect(line.contains("gewisdb: running since"))
        #expect(line.contains("ldap: failure, retry"))
        #expect(line.contains("(1 failures)"))
        #expect(!line.contains("\n"))
    }
}
