// endpoint-demo: serves the real HTTPEndpoint with real SyncMetrics, fed by simulated runs,
// for the Prometheus end-to-end test, the status page screenshot and the /metrics benchmark
// when no configured supervisor (`sudosos-sync run`) is at hand.
//
//   endpoint-demo [--port N] [--services ldap,gewisdb] [--every SECONDS] [--runs N]
//
// Prints `listening on 127.0.0.1:PORT` on stdout once it serves; runs until killed.
// Every SECONDS (default 2; 0 = never) each service runs once: mostly successes, every
// fourth a failure, with made-up counts. `--runs N` records N runs per service at start-up.
import Foundation
import Logging
import Observability
import Synchronization
import SyncEngine


/// The supervisor's side of the endpoint, played by the simulation.
final class DemoControl: SupervisorControl {
    let statuses: Mutex<[ServiceStatus]>
    let startedAt = Date()

    init(services: [String]) {
        statuses = Mutex(
            services.map {
                ServiceStatus(
                    name: $0, enabled: true, state: "idle", lastRun: nil, lastSuccessAt: nil, nextRunAt: nil,
                    consecutiveFailures: 0, backoffSeconds: 0, schedule: $0 == "gewisdb" ? "41 1 * * *" : "*/15 * * * *")
            })
    }

    func status() async -> StatusReport {
        StatusReport(version: "0.0.0-demo", startedAt: startedAt, services: statuses.withLock { $0 })
    }

    func trigger(service: String, dryRun: Bool) async -> TriggerResult {
        statuses.withLock { all in
            guard let i = all.firstIndex(where: { $0.name == service }) else { return .unknownService }
            return all[i].state == "running" ? .alreadyRunning : .started
        }
    }

    func isLoopAlive() -> Bool { true }

    func update(_ service: String, _ change: (inout ServiceStatus) -> Void) {
        statuses.withLock { all in
            if let i = all.firstIndex(where: { $0.name == service }) { change(&all[i]) }
        }
    }
}

/// One simulated run of `service`, number `n`.
func simulateRun(_ service: String, _ n: Int, metrics: SyncMetrics, control: DemoControl, every: Double) {
    let duration = 0.2 + Double((n * 37) % 50) / 10
    let finished = Date()
    let start = finished.addingTimeInterval(-duration)
    metrics.runStarted(service: service, at: start)
    control.update(service) { $0.state = "running" }
    // Every fourth run fails; the services take turns, so the demo shows both outcomes.
    let offset = service.utf8.count % 4
    let outcome: RunOutcome = (n + offset) % 4 == 3 ? .failure : .success
    for i in 0..<20 {
        metrics.sourceRequest(service: service, ok: (i + n) % 13 != 0, seconds: 0.004 * Double(1 + (i * n) % 40))
    }
    let summary = RunSummary(
        service: service, outcome: outcome, dryRun: false, startedAt: start, finishedAt: finished,
        entities: EntityCounts(passed: 1200 + n, failed: n % 3, skipped: 40),
        changes: ["updated": n % 5, "created": n % 2, "deactivated": n % 7 == 0 ? 1 : 0, "role_added": n % 3],
        rejected: ["invalid_email": n % 2, "too_long": n % 5 == 0 ? 1 : 0],
        error: outcome == .failure ? "GEWISDB answered 502 Bad Gateway" : nil)
    metrics.runFinished(
        service: service, outcome: outcome, durationSeconds: duration, summary: summary,
        childCPUSeconds: duration / 3, childMaxRSSBytes: UInt64(24_000_000 + (n % 10) * 1_000_000))
    let failures = outcome == .success ? 0 : 1
    let next = Date().addingTimeInterval(every > 0 ? every : 900)
    metrics.serviceState(service: service, nextRunAt: next, consecutiveFailures: failures, backoffSeconds: failures > 0 ? 10 : 0)
    metrics.schedule(service: service, expectedIntervalSeconds: every > 0 ? every : 900)
    if failures > 0 { metrics.childRestarted(service: service) }
    control.update(service) { status in
        status.state = outcome == .success ? "idle" : "backoff"
        status.lastRun = summary
        if outcome == .success { status.lastSuccessAt = finished }
        status.nextRunAt = next
        status.consecutiveFailures = failures
        status.backoffSeconds = failures > 0 ? 10 : 0
    }
}

var port = 0
var services = ["ldap", "gewisdb"]
var every = 2.0
var initialRuns = 0
var renderBench = 0
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--port": port = Int(arguments.next() ?? "") ?? 0
    case "--services": services = (arguments.next() ?? "").split(separator: ",").map(String.init)
    case "--every": every = Double(arguments.next() ?? "") ?? 2
    case "--runs": initialRuns = Int(arguments.next() ?? "") ?? 0
    case "--render-bench": renderBench = Int(arguments.next() ?? "") ?? 0
    default:
        FileHandle.standardError.write(Data("usage: endpoint-demo [--port N] [--services a,b] [--every S] [--runs N]\n".utf8))
        exit(64)
    }
}

LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
var logger = Logger(label: "endpoint-demo")
logger.logLevel = .warning
let metrics = SyncMetrics(services: services, version: "0.0.0-demo")
let control = DemoControl(services: services)
for n in 0..<initialRuns {
    for service in services { simulateRun(service, n, metrics: metrics, control: control, every: every) }
}
if renderBench > 0 {
    // Time `SyncMetrics.render()` alone, without HTTP: N renders, then exit.
    let clock = ContinuousClock()
    var bytes = 0
    let withProcess = clock.measure { for _ in 0..<renderBench { bytes &+= metrics.render().count } }
    let withoutProcess = clock.measure {
        for _ in 0..<renderBench { bytes &+= metrics.render(includeProcess: false).count }
    }
    print("render: \(withProcess / renderBench) per call (\(withoutProcess / renderBench) without process_*), \(bytes / renderBench / 2) bytes")
    exit(0)
}
let endpoint = HTTPEndpoint(
    host: "127.0.0.1", port: port, metrics: metrics, control: control, triggerToken: nil, logger: logger)
let bound = try await endpoint.start()
FileHandle.standardOutput.write(Data("listening on 127.0.0.1:\(bound)\n".utf8))
var n = initialRuns
while true {
    if every > 0 {
        try await Task.sleep(for: .seconds(every))
        for service in services { simulateRun(service, n, metrics: metrics, control: control, every: every) }
        n += 1
    } else {
        try await Task.sleep(for: .seconds(3600))
    }
}
