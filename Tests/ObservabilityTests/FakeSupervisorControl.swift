import Foundation
import Observability
import Synchronization
import SyncEngine

/// A `SupervisorControl` for endpoint tests: services with a fixed status, triggers recorded,
/// and switches for a stalled loop (`/healthz`) and a stuck supervisor (`status()` hangs).
final class FakeSupervisorControl: SupervisorControl {
    struct State {
        var services: [ServiceStatus]
        var running: Set<String> = []
        var triggers: [(service: String, dryRun: Bool)] = []
        var loopAlive = true
        var stuck = false
    }

    let state: Mutex<State>
    let startedAt = Date(timeIntervalSince1970: 1_795_600_000)

    init(services: [ServiceStatus] = FakeSupervisorControl.sampleServices()) {
        state = Mutex(State(services: services))
    }

    func status() async -> StatusReport {
        while state.withLock({ $0.stuck }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let services = state.withLock { $0.services }
        return StatusReport(version: "9.9.9-test", startedAt: startedAt, services: services)
    }

    func trigger(service: String, dryRun: Bool) async -> TriggerResult {
        state.withLock { state in
            guard state.services.contains(where: { $0.name == service }) else { return .unknownService }
            guard !state.running.contains(service) else { return .alreadyRunning }
            state.running.insert(service)
            state.triggers.append((service, dryRun))
            return .started
        }
    }

    func isLoopAlive() -> Bool {
        state.withLock { $0.loopAlive }
    }

    var triggers: [(service: String, dryRun: Bool)] { state.withLock { $0.triggers } }

    /// `ldap` ran successfully a minute ago; `gewisdb` failed twice and is backing off.
    static func sampleServices(now: Date = Date()) -> [ServiceStatus] {
        let ldapRun = RunSummary(
            service: "ldap", outcome: .success, dryRun: false, startedAt: now.addingTimeInterval(-64),
            finishedAt: now.addingTimeInterval(-61), entities: EntityCounts(passed: 120, failed: 1, skipped: 4),
            changes: ["updated": 3, "bound": 1])
        let gewisdbRun = RunSummary(
            service: "gewisdb", outcome: .failure, dryRun: false, startedAt: now.addingTimeInterval(-30),
            finishedAt: now.addingTimeInterval(-28), error: "GEWISDB answered 502 <Bad Gateway>")
        return [
            ServiceStatus(
                name: "ldap", enabled: true, state: "idle", lastRun: ldapRun, lastSuccessAt: ldapRun.finishedAt,
                nextRunAt: now.addingTimeInterval(839), consecutiveFailures: 0, backoffSeconds: 0,
                schedule: "*/15 * * * *"),
            ServiceStatus(
                name: "gewisdb", enabled: true, state: "backoff", lastRun: gewisdbRun,
                lastSuccessAt: now.addingTimeInterval(-86_000), nextRunAt: now.addingTimeInterval(20),
                consecutiveFailures: 2, backoffSeconds: 20, schedule: "41 1 * * *"),
        ]
    }
}
