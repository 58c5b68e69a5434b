import Foundation
import Prometheus
import Synchronization
import SyncEngine

/// Every metric of docs/metrics.md, owned by the supervisor and rendered by `GET /metrics`.
/// The supervisor calls these as its state changes; children never touch the registry.
///
/// Values live in swift-prometheus collectors (atomics and small locks), so an update never
/// waits for a scrape and a scrape never waits for the supervisor: `render()` reads the
/// collectors as they are at that instant.
///
/// Each series has a `PrometheusCollectorRegistry` of its own, so `render()` can write the
/// families and their series in a fixed order (the registry itself emits a dictionary's order,
/// which changes from process to process): families in the order of docs/metrics.md, series by
/// service (in configuration order) and then by label value (in the order of interface.md).
public final class SyncMetrics: Sendable {
    /// The `Content-Type` of `render()`'s bytes.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Buckets of `sudosos_sync_run_duration_seconds`: 0.1 s to 1 h.
    public static let runDurationBuckets: [Double] = [
        0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600,
    ]

    /// Buckets of `sudosos_sync_source_request_duration_seconds`: 5 ms to 30 s.
    public static let sourceRequestBuckets: [Double] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
    ]

    /// The `result` label values of `sudosos_sync_entities_total`.
    public static let entityResults = ["passed", "failed", "skipped"]

    private let version: String
    private let state: Mutex<State>
    /// Bumped after every change of a value (after, so a render that raced with a change is
    /// never mistaken for current).
    private let generation = Atomic<UInt64>(1)
    /// The series text of the last render and the generation it was rendered at: scrapes
    /// between two changes (the common case: values change a few times per run) copy it
    /// instead of rendering every series again.
    private let cache = Mutex<(generation: UInt64, bytes: [UInt8])>((0, []))

    /// Creates every series of `services` at 0, and
    /// `sudosos_sync_build_info{version,revision,swift_version}` (the binary passes its
    /// `BuildInfo`; `revision` and `swiftVersion` default to `unknown` for tests and demos).
    public init(services: [String], version: String, revision: String = "unknown", swiftVersion: String = "unknown") {
        self.version = version
        var state = State(cells: Array(repeating: [], count: Family.allCases.count))
        let info = PrometheusCollectorRegistry()
        info.makeGauge(
            descriptor: Family.buildInfo.descriptor,
            labels: [("version", version), ("revision", revision), ("swift_version", swiftVersion)]
        ).set(to: 1)
        state.cells[Family.buildInfo.rawValue].append(info)
        self.state = Mutex(state)
        for service in services { addService(service) }
    }

    /// The services whose series exist, in the order they were added.
    public var services: [String] {
        state.withLock { $0.order }
    }

    /// Creates the series of `service` at 0 if it has none yet (e.g. after a configuration
    /// reload added a service). Series of removed services stay, as Prometheus expects of a
    /// counter within one process's life.
    public func addService(_ service: String) {
        state.withLock { state in
            guard state.series[service] == nil else { return }
            state.series[service] = ServiceSeries(service: service, cells: &state.cells)
            state.order.append(service)
        }
        changed()
    }

    /// Marks the rendered text out of date.
    private func changed() {
        generation.add(1, ordering: .releasing)
    }

    private func series(_ service: String) -> ServiceSeries {
        if let found = state.withLock({ $0.series[service] }) { return found }
        addService(service)
        return state.withLock { $0.series[service]! }
    }

    /// A run started (`sudosos_sync_running` 1, `last_run_timestamp`).
    public func runStarted(service: String, at: Date) {
        let s = series(service)
        state.withLock { $0.lastRunStart[service] = at }
        s.running.set(to: 1)
        s.lastRun.set(at.timeIntervalSince1970)
        changed()
    }

    /// A run ended: outcome counter, duration histogram, last success, entity / change /
    /// rejection counters (from `summary`, absent when the child died), child CPU and max RSS.
    public func runFinished(
        service: String, outcome: RunOutcome, durationSeconds: Double, summary: RunSummary?,
        childCPUSeconds: Double, childMaxRSSBytes: UInt64
    ) {
        let s = series(service)
        s.runs[outcome]?.increment()
        for (candidate, gauge) in s.lastOutcome { gauge.set(to: candidate == outcome ? 1 : 0) }
        s.duration.record(max(durationSeconds, 0))
        s.running.set(to: 0)
        if outcome == .success {
            s.lastSuccess.set((summary?.finishedAt ?? Date()).timeIntervalSince1970)
        }
        if let summary {
            let entities = [summary.entities.passed, summary.entities.failed, summary.entities.skipped]
            for (counter, count) in zip(s.entities, entities) where count > 0 {
                counter.increment(by: Int64(count))
            }
            for (action, count) in summary.changes where count > 0 {
                s.changes[action]?.increment(by: Int64(count))
            }
            for (reason, count) in summary.rejected where count > 0 {
                s.rejected[reason]?.increment(by: Int64(count))
            }
        }
        if childCPUSeconds > 0 { s.childCPU.increment(by: childCPUSeconds) }
        s.childMaxRSS.set(Double(childMaxRSSBytes))
        changed()
    }

    /// A failed run is started again after its backoff.
    public func childRestarted(service: String) {
        series(service).childRestarts.increment()
        changed()
    }

    /// The supervisor's view of the service after every transition.
    ///
    /// Unless `schedule(service:expectedIntervalSeconds:)` set the expected interval, it is
    /// estimated here: while the service is healthy (no failures, no backoff), the gap from the
    /// start of its last run to its next run is one period; the largest gap seen is kept (a
    /// triggered run between two scheduled ones shows a shorter gap, never a longer one).
    public func serviceState(service: String, nextRunAt: Date?, consecutiveFailures: Int, backoffSeconds: Double) {
        let s = series(service)
        if let nextRunAt, consecutiveFailures == 0, backoffSeconds == 0 {
            let estimate: Double? = state.withLock { state in
                guard !state.explicitInterval.contains(service), let start = state.lastRunStart[service] else {
                    return nil
                }
                let gap = nextRunAt.timeIntervalSince(start)
                guard gap > 0, gap > state.estimatedInterval[service, default: 0] else { return nil }
                state.estimatedInterval[service] = gap
                return gap
            }
            if let estimate { s.expectedInterval.set(estimate) }
        }
        s.nextRun.set(nextRunAt?.timeIntervalSince1970 ?? 0)
        s.consecutiveFailures.set(Double(consecutiveFailures))
        s.backoff.set(backoffSeconds)
        changed()
    }

    /// The period the service is expected to run at (its interval, or the gap between two
    /// cron instants; 0 = unknown): `sudosos_sync_expected_interval_seconds`, the base of the
    /// stale alert (no success within twice this).
    public func schedule(service: String, expectedIntervalSeconds: Double) {
        let s = series(service)
        state.withLock { _ = $0.explicitInterval.insert(service) }
        s.expectedInterval.set(max(expectedIntervalSeconds, 0))
        changed()
    }

    /// One source request reported by a child.
    public func sourceRequest(service: String, ok: Bool, seconds: Double) {
        let s = series(service)
        (ok ? s.sourceOK : s.sourceError).increment()
        s.sourceDuration.record(max(seconds, 0))
        changed()
    }

    /// The exposition text (0.0.4), process metrics read from /proc at call time.
    public func render() -> [UInt8] {
        render(includeProcess: true)
    }

    /// The exposition text; `includeProcess: false` leaves out the `process_*` families, whose
    /// values change from call to call (for tests comparing exact text).
    public func render(includeProcess: Bool) -> [UInt8] {
        var buffer = renderSeries()
        if includeProcess { ProcessMetrics.render(into: &buffer) }
        return buffer
    }

    /// Every family but `process_*`: from the cache when nothing changed since it was made.
    private func renderSeries() -> [UInt8] {
        let current = generation.load(ordering: .acquiring)
        if let cached = cache.withLock({ $0.generation == current ? $0.bytes : nil }) { return cached }
        let cells = state.withLock { $0.cells }
        var buffer = [UInt8]()
        buffer.reserveCapacity(16 * 1024)
        for family in Family.allCases {
            let familyCells = cells[family.rawValue]
            guard !familyCells.isEmpty else { continue }
            buffer.append(contentsOf: "# HELP \(family.name) \(family.help)\n# TYPE \(family.name) \(family.type)\n".utf8)
            for registry in familyCells {
                // A registry of one series without help text emits "# TYPE ...\n" and then
                // the series' samples: keep the samples.
                let start = buffer.count
                registry.emit(into: &buffer)
                if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    buffer.removeSubrange(start...newline)
                }
            }
        }
        cache.withLock { cache in
            if current > cache.generation { cache = (current, buffer) }
        }
        return buffer
    }
}

/// The metric families, in rendering order, with their types and help texts.
enum Family: Int, CaseIterable, Sendable {
    case runs, lastOutcome, runDuration, lastRun, lastSuccess, nextRun, expectedInterval, running
    case consecutiveFailures, backoff, childRestarts, childCPU, childMaxRSS
    case entities, changes, rejected, sourceRequests, sourceRequestDuration, buildInfo

    var name: String {
        switch self {
        case .runs: "sudosos_sync_runs_total"
        case .lastOutcome: "sudosos_sync_last_outcome"
        case .runDuration: "sudosos_sync_run_duration_seconds"
        case .lastRun: "sudosos_sync_last_run_timestamp_seconds"
        case .lastSuccess: "sudosos_sync_last_success_timestamp_seconds"
        case .nextRun: "sudosos_sync_next_run_timestamp_seconds"
        case .expectedInterval: "sudosos_sync_expected_interval_seconds"
        case .running: "sudosos_sync_running"
        case .consecutiveFailures: "sudosos_sync_consecutive_failures"
        case .backoff: "sudosos_sync_backoff_seconds"
        case .childRestarts: "sudosos_sync_child_restarts_total"
        case .childCPU: "sudosos_sync_child_cpu_seconds_total"
        case .childMaxRSS: "sudosos_sync_child_max_rss_bytes"
        case .entities: "sudosos_sync_entities_total"
        case .changes: "sudosos_sync_changes_total"
        case .rejected: "sudosos_sync_rejected_records_total"
        case .sourceRequests: "sudosos_sync_source_requests_total"
        case .sourceRequestDuration: "sudosos_sync_source_request_duration_seconds"
        case .buildInfo: "sudosos_sync_build_info"
        }
    }

    /// The name without help text: the registry of a single series emits no `# HELP` line
    /// (`render()` writes one per family).
    var descriptor: MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: "")
    }

    var type: String {
        switch self {
        case .runs, .childRestarts, .childCPU, .entities, .changes, .rejected, .sourceRequests: "counter"
        case .runDuration, .sourceRequestDuration: "histogram"
        default: "gauge"
        }
    }

    var help: String {
        switch self {
        case .runs: "Runs finished, by outcome."
        case .lastOutcome: "1 for the outcome of the service's last finished run, 0 for the others."
        case .runDuration: "Wall-clock duration of runs in seconds, from start to the child's exit."
        case .lastRun: "Unix time the last run started (0: none yet)."
        case .lastSuccess: "Unix time the last successful run finished (0: none since start-up)."
        case .nextRun: "Unix time of the next scheduled run (0: none scheduled)."
        case .expectedInterval: "Seconds between two scheduled runs (0: unknown); stale after twice this."
        case .running: "1 while a run of the service is in progress."
        case .consecutiveFailures: "Runs that failed, crashed or timed out in a row."
        case .backoff: "Current backoff delay in seconds before the next retry (0: not backing off)."
        case .childRestarts: "Failed runs started again after their backoff."
        case .childCPU: "CPU seconds (user and system) used by the service's child processes."
        case .childMaxRSS: "Maximum resident set size in bytes of the last run's child process."
        case .entities: "Entities seen by runs: passed (in step), failed (rejected or request failed), skipped."
        case .changes: "Changes applied (or planned, on a dry or refused run), by action."
        case .rejected: "Source records rejected as invalid, by reason."
        case .sourceRequests: "Requests to the source (GEWISDB, LDAP) made by runs, by result."
        case .sourceRequestDuration: "Duration of requests to the source in seconds."
        case .buildInfo: "Always 1; the labels name the running build: version, git revision, Swift version."
        }
    }
}

/// The registries behind `SyncMetrics`, guarded by one mutex that is held only to look up or
/// add series (never while a value changes or renders).
private struct State: Sendable {
    /// Per family (`Family.rawValue`), the one-series registries in rendering order.
    var cells: [[PrometheusCollectorRegistry]]
    var series: [String: ServiceSeries] = [:]
    var order: [String] = []
    /// Start of each service's last run (for the expected interval's estimate).
    var lastRunStart: [String: Date] = [:]
    /// Services whose expected interval the supervisor set; no estimate replaces it.
    var explicitInterval: Set<String> = []
    /// The largest healthy gap seen from a run's start to the next run.
    var estimatedInterval: [String: Double] = [:]
}

/// The collectors of one service.
private struct ServiceSeries: Sendable {
    let runs: [RunOutcome: Counter]
    let lastOutcome: [RunOutcome: Gauge]
    let duration: ValueHistogram
    let lastRun, lastSuccess, nextRun, expectedInterval, running, consecutiveFailures, backoff: Gauge
    let childRestarts, childCPU: Counter
    let childMaxRSS: Gauge
    /// In the order of `SyncMetrics.entityResults`.
    let entities: [Counter]
    let changes: [String: Counter]
    let rejected: [String: Counter]
    let sourceOK, sourceError: Counter
    let sourceDuration: ValueHistogram

    /// Makes every series of `service` at 0 and appends their registries to `cells`.
    init(service: String, cells: inout [[PrometheusCollectorRegistry]]) {
        func cell(_ family: Family) -> PrometheusCollectorRegistry {
            let registry = PrometheusCollectorRegistry()
            cells[family.rawValue].append(registry)
            return registry
        }
        func counter(_ family: Family, _ extra: [(String, String)] = []) -> Counter {
            cell(family).makeCounter(descriptor: family.descriptor, labels: [("service", service)] + extra)
        }
        func gauge(_ family: Family, _ extra: [(String, String)] = []) -> Gauge {
            cell(family).makeGauge(descriptor: family.descriptor, labels: [("service", service)] + extra)
        }
        func histogram(_ family: Family, _ buckets: [Double]) -> ValueHistogram {
            cell(family).makeValueHistogram(
                descriptor: family.descriptor, labels: [("service", service)], buckets: buckets)
        }
        var runs: [RunOutcome: Counter] = [:]
        for outcome in RunOutcome.allCases { runs[outcome] = counter(.runs, [("outcome", outcome.rawValue)]) }
        self.runs = runs
        var lastOutcome: [RunOutcome: Gauge] = [:]
        for outcome in RunOutcome.allCases {
            lastOutcome[outcome] = gauge(.lastOutcome, [("outcome", outcome.rawValue)])
        }
        self.lastOutcome = lastOutcome
        duration = histogram(.runDuration, SyncMetrics.runDurationBuckets)
        lastRun = gauge(.lastRun)
        lastSuccess = gauge(.lastSuccess)
        nextRun = gauge(.nextRun)
        expectedInterval = gauge(.expectedInterval)
        running = gauge(.running)
        consecutiveFailures = gauge(.consecutiveFailures)
        backoff = gauge(.backoff)
        childRestarts = counter(.childRestarts)
        childCPU = counter(.childCPU)
        childMaxRSS = gauge(.childMaxRSS)
        entities = SyncMetrics.entityResults.map { counter(.entities, [("result", $0)]) }
        var changes: [String: Counter] = [:]
        for action in ChangeAction.allCases {
            changes[action.rawValue] = counter(.changes, [("action", action.rawValue)])
        }
        self.changes = changes
        var rejected: [String: Counter] = [:]
        for reason in RejectionReason.allCases {
            rejected[reason.rawValue] = counter(.rejected, [("reason", reason.rawValue)])
        }
        self.rejected = rejected
        sourceOK = counter(.sourceRequests, [("result", "ok")])
        sourceError = counter(.sourceRequests, [("result", "error")])
        sourceDuration = histogram(.sourceRequestDuration, SyncMetrics.sourceRequestBuckets)
    }
}
