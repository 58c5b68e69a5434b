import Foundation
import Observability
import SyncEngine
import Testing

/// `SyncMetrics` against the exact exposition text: every series of a configured service at 0
/// before the first run, in a fixed order, then the values runs leave behind.
@Suite struct SyncMetricsTests {
    /// Guards against a series that appears only after its first increment (a dashboard or an
    /// alert would see "no data" instead of 0), and against an order that changes between
    /// processes.
    @Test func freshRegistryHasEverySeriesAtZero() {
        let metrics = SyncMetrics(services: ["ldap"], version: "1.2.3", revision: "0123456789ab", swiftVersion: "6.3.1")
        let text = String(decoding: metrics.render(includeProcess: false), as: UTF8.self)
        #expect(text == Self.freshLDAP)
    }

    /// The series of the second service follow the first's within each family.
    @Test func servicesKeepTheirConfiguredOrder() {
        let metrics = SyncMetrics(services: ["ldap", "gewisdb"], version: "1.2.3")
        let lines = String(decoding: metrics.render(includeProcess: false), as: UTF8.self)
            .split(separator: "\n").filter { $0.hasPrefix("sudosos_sync_running") }
        #expect(lines == [#"sudosos_sync_running{service="ldap"} 0.0"#, #"sudosos_sync_running{service="gewisdb"} 0.0"#])
        #expect(metrics.services == ["ldap", "gewisdb"])
    }

    /// A finished run moves exactly the series it should.
    @Test func runFinishedUpdatesOutcomeDurationAndCounts() {
        let metrics = SyncMetrics(services: ["ldap", "gewisdb"], version: "1.2.3")
        let started = Date(timeIntervalSince1970: 1_795_600_000)
        metrics.runStarted(service: "gewisdb", at: started)
        #expect(sample(metrics, #"sudosos_sync_running{service="gewisdb"}"#) == "1.0")
        #expect(sample(metrics, #"sudosos_sync_last_run_timestamp_seconds{service="gewisdb"}"#) == "1795600000.0")
        let summary = RunSummary(
            service: "gewisdb", outcome: .success, dryRun: false, startedAt: started,
            finishedAt: started.addingTimeInterval(42.5), entities: EntityCounts(passed: 100, failed: 2, skipped: 7),
            changes: ["updated": 5, "deactivated": 1, "role_added": 2], rejected: ["invalid_email": 2])
        metrics.runFinished(
            service: "gewisdb", outcome: .success, durationSeconds: 42.5, summary: summary, childCPUSeconds: 1.25,
            childMaxRSSBytes: 52_428_800)
        metrics.serviceState(
            service: "gewisdb", nextRunAt: started.addingTimeInterval(86_400), consecutiveFailures: 0, backoffSeconds: 0)
        metrics.schedule(service: "gewisdb", expectedIntervalSeconds: 86_400)
        metrics.sourceRequest(service: "gewisdb", ok: true, seconds: 0.02)
        metrics.sourceRequest(service: "gewisdb", ok: false, seconds: 10)

        let expected: [String: String] = [
            #"sudosos_sync_runs_total{service="gewisdb",outcome="success"}"#: "1",
            #"sudosos_sync_runs_total{service="gewisdb",outcome="failure"}"#: "0",
            #"sudosos_sync_runs_total{service="ldap",outcome="success"}"#: "0",
            #"sudosos_sync_last_outcome{service="gewisdb",outcome="success"}"#: "1.0",
            #"sudosos_sync_last_outcome{service="gewisdb",outcome="failure"}"#: "0.0",
            #"sudosos_sync_run_duration_seconds_bucket{service="gewisdb",le="30.0"}"#: "0",
            #"sudosos_sync_run_duration_seconds_bucket{service="gewisdb",le="60.0"}"#: "1",
            #"sudosos_sync_run_duration_seconds_bucket{service="gewisdb",le="+Inf"}"#: "1",
            #"sudosos_sync_run_duration_seconds_sum{service="gewisdb"}"#: "42.5",
            #"sudosos_sync_run_duration_seconds_count{service="gewisdb"}"#: "1",
            #"sudosos_sync_running{service="gewisdb"}"#: "0.0",
            #"sudosos_sync_last_success_timestamp_seconds{service="gewisdb"}"#: "1795600042.5",
            #"sudosos_sync_next_run_timestamp_seconds{service="gewisdb"}"#: "1795686400.0",
            #"sudosos_sync_expected_interval_seconds{service="gewisdb"}"#: "86400.0",
            #"sudosos_sync_child_cpu_seconds_total{service="gewisdb"}"#: "1.25",
            #"sudosos_sync_child_max_rss_bytes{service="gewisdb"}"#: "52428800.0",
            #"sudosos_sync_entities_total{service="gewisdb",result="passed"}"#: "100",
            #"sudosos_sync_entities_total{service="gewisdb",result="failed"}"#: "2",
            #"sudosos_sync_entities_total{service="gewisdb",result="skipped"}"#: "7",
            #"sudosos_sync_changes_total{service="gewisdb",action="updated"}"#: "5",
            #"sudosos_sync_changes_total{service="gewisdb",action="deactivated"}"#: "1",
            #"sudosos_sync_changes_total{service="gewisdb",action="role_added"}"#: "2",
            #"sudosos_sync_changes_total{service="gewisdb",action="created"}"#: "0",
            #"sudosos_sync_rejected_records_total{service="gewisdb",reason="invalid_email"}"#: "2",
            #"sudosos_sync_source_requests_total{service="gewisdb",result="ok"}"#: "1",
            #"sudosos_sync_source_requests_total{service="gewisdb",result="error"}"#: "1",
            #"sudosos_sync_source_request_duration_seconds_bucket{service="gewisdb",le="0.025"}"#: "1",
            #"sudosos_sync_source_request_duration_seconds_bucket{service="gewisdb",le="5.0"}"#: "1",
            #"sudosos_sync_source_request_duration_seconds_bucket{service="gewisdb",le="10.0"}"#: "2",
            #"sudosos_sync_source_request_duration_seconds_count{service="gewisdb"}"#: "2",
            #"sudosos_sync_entities_total{service="ldap",result="passed"}"#: "0",
        ]
        for (series, value) in expected {
            #expect(sample(metrics, series) == value, "\(series)")
        }
    }

    /// A crash (no summary) counts, keeps the last success, and flips the last outcome.
    @Test func crashWithoutSummaryAndRestart() {
        let metrics = SyncMetrics(services: ["ldap"], version: "1.2.3")
        metrics.runFinished(
            service: "ldap", outcome: .success, durationSeconds: 1, summary: nil, childCPUSeconds: 0,
            childMaxRSSBytes: 1000)
        let success = sample(metrics, #"sudosos_sync_last_success_timestamp_seconds{service="ldap"}"#)
        metrics.runFinished(
            service: "ldap", outcome: .crash, durationSeconds: 0.05, summary: nil, childCPUSeconds: 0.5,
            childMaxRSSBytes: 2000)
        metrics.childRestarted(service: "ldap")
        metrics.serviceState(service: "ldap", nextRunAt: nil, consecutiveFailures: 1, backoffSeconds: 10)
        #expect(success != "0.0")
        #expect(sample(metrics, #"sudosos_sync_last_success_timestamp_seconds{service="ldap"}"#) == success)
        #expect(sample(metrics, #"sudosos_sync_runs_total{service="ldap",outcome="crash"}"#) == "1")
        #expect(sample(metrics, #"sudosos_sync_last_outcome{service="ldap",outcome="crash"}"#) == "1.0")
        #expect(sample(metrics, #"sudosos_sync_last_outcome{service="ldap",outcome="success"}"#) == "0.0")
        #expect(sample(metrics, #"sudosos_sync_run_duration_seconds_bucket{service="ldap",le="0.1"}"#) == "1")
        #expect(sample(metrics, #"sudosos_sync_child_restarts_total{service="ldap"}"#) == "1")
        #expect(sample(metrics, #"sudosos_sync_child_max_rss_bytes{service="ldap"}"#) == "2000.0")
        #expect(sample(metrics, #"sudosos_sync_consecutive_failures{service="ldap"}"#) == "1.0")
        #expect(sample(metrics, #"sudosos_sync_backoff_seconds{service="ldap"}"#) == "10.0")
        #expect(sample(metrics, #"sudosos_sync_next_run_timestamp_seconds{service="ldap"}"#) == "0.0")
    }

    /// Without an explicit period, the expected interval is estimated from healthy
    /// transitions: the largest gap from a run's start to the next run; failures don't count,
    /// and an explicit `schedule` wins.
    @Test func expectedIntervalIsEstimatedUntilSet() {
        let metrics = SyncMetrics(services: ["ldap", "gewisdb"], version: "1.2.3")
        let t0 = Date(timeIntervalSince1970: 1_795_600_000)
        let interval = #"sudosos_sync_expected_interval_seconds{service="ldap"}"#
        metrics.serviceState(service: "ldap", nextRunAt: t0, consecutiveFailures: 0, backoffSeconds: 0)
        #expect(sample(metrics, interval) == "0.0")
        metrics.runStarted(service: "ldap", at: t0)
        metrics.serviceState(service: "ldap", nextRunAt: t0.addingTimeInterval(900), consecutiveFailures: 0, backoffSeconds: 0)
        #expect(sample(metrics, interval) == "900.0")
        // A retry after a failure, and a triggered run shortly before the next one, change nothing.
        metrics.runStarted(service: "ldap", at: t0.addingTimeInterval(900))
        metrics.serviceState(service: "ldap", nextRunAt: t0.addingTimeInterval(910), consecutiveFailures: 1, backoffSeconds: 10)
        metrics.runStarted(service: "ldap", at: t0.addingTimeInterval(1000))
        metrics.serviceState(service: "ldap", nextRunAt: t0.addingTimeInterval(1800), consecutiveFailures: 0, backoffSeconds: 0)
        #expect(sample(metrics, interval) == "900.0")
        metrics.schedule(service: "ldap", expectedIntervalSeconds: 600)
        metrics.runStarted(service: "ldap", at: t0.addingTimeInterval(2000))
        metrics.serviceState(service: "ldap", nextRunAt: t0.addingTimeInterval(5000), consecutiveFailures: 0, backoffSeconds: 0)
        #expect(sample(metrics, interval) == "600.0")
        #expect(sample(metrics, #"sudosos_sync_expected_interval_seconds{service="gewisdb"}"#) == "0.0")
    }

    /// A service the supervisor reports without configuring it first (a reload) gets all its
    /// series, not just the one touched.
    @Test func unknownServiceGetsEverySeries() {
        let metrics = SyncMetrics(services: [], version: "1.2.3")
        metrics.childRestarted(service: "new")
        #expect(sample(metrics, #"sudosos_sync_child_restarts_total{service="new"}"#) == "1")
        #expect(sample(metrics, #"sudosos_sync_runs_total{service="new",outcome="locked"}"#) == "0")
        #expect(metrics.services == ["new"])
    }

    /// The standard process metrics are read at render time and describe this process.
    @Test func processMetricsDescribeThisProcess() throws {
        let metrics = SyncMetrics(services: ["ldap"], version: "1.2.3")
        let rss = try #require(Double(sample(metrics, "process_resident_memory_bytes") ?? ""))
        #expect(rss > 1_000_000 && rss < 4_000_000_000)
        let start = try #require(Double(sample(metrics, "process_start_time_seconds") ?? ""))
        let now = Date().timeIntervalSince1970
        #expect(start <= now + 1 && start > now - 3600)
        // Computed from the clocks (the unit's private /proc hides /proc/stat), it agrees with
        // the kernel's boot time in /proc/stat, which this host shows.
        let procStat = try String(contentsOfFile: "/proc/stat", encoding: .utf8)
        let btime = try #require(procStat.split(separator: "\n").first { $0.hasPrefix("btime ") }.flatMap { Double($0.dropFirst(6)) })
        let startTicks = try #require(
            try String(contentsOfFile: "/proc/self/stat", encoding: .utf8).split(separator: ")").last?
                .split(separator: " ").dropFirst(19).first.flatMap { Double($0) })
        let fromProcStat = btime + startTicks / Double(sysconf(Int32(_SC_CLK_TCK)))
        #expect(abs(start - fromProcStat) < 2, "start \(start), from /proc/stat \(fromProcStat)")
        let open = try #require(Double(sample(metrics, "process_open_fds") ?? ""))
        let max = try #require(Double(sample(metrics, "process_max_fds") ?? ""))
        #expect(open >= 3 && open < max)
        let cpu = try #require(Double(sample(metrics, "process_cpu_seconds_total") ?? ""))
        #expect(cpu >= 0)
        let text = String(decoding: metrics.render(), as: UTF8.self)
        for name in ["process_cpu_seconds_total counter", "process_resident_memory_bytes gauge", "process_max_fds gauge"] {
            #expect(text.contains("# TYPE \(name)\n"))
        }
    }

    /// Every metric name of the interface is served (and typed as documented).
    @Test func everyInterfaceMetricIsServed() {
        let metrics = SyncMetrics(services: ["ldap"], version: "1.2.3")
        let text = String(decoding: metrics.render(), as: UTF8.self)
        let types = [
            "sudosos_sync_runs_total": "counter", "sudosos_sync_run_duration_seconds": "histogram",
            "sudosos_sync_last_run_timestamp_seconds": "gauge", "sudosos_sync_last_success_timestamp_seconds": "gauge",
            "sudosos_sync_next_run_timestamp_seconds": "gauge", "sudosos_sync_running": "gauge",
            "sudosos_sync_consecutive_failures": "gauge", "sudosos_sync_backoff_seconds": "gauge",
            "sudosos_sync_child_restarts_total": "counter", "sudosos_sync_child_cpu_seconds_total": "counter",
            "sudosos_sync_child_max_rss_bytes": "gauge", "sudosos_sync_entities_total": "counter",
            "sudosos_sync_changes_total": "counter", "sudosos_sync_rejected_records_total": "counter",
            "sudosos_sync_source_requests_total": "counter", "sudosos_sync_source_request_duration_seconds": "histogram",
            "sudosos_sync_build_info": "gauge", "process_cpu_seconds_total": "counter",
            "process_resident_memory_bytes": "gauge", "process_start_time_seconds": "gauge",
            "process_open_fds": "gauge", "process_max_fds": "gauge",
        ]
        for (name, type) in types {
            #expect(text.contains("# TYPE \(name) \(type)\n"), "\(name)")
        }
        #expect(SyncMetrics.runDurationBuckets.first == 0.1 && SyncMetrics.runDurationBuckets.last == 3600)
    }

    /// The value of one series in the rendered text (nil when absent).
    private func sample(_ metrics: SyncMetrics, _ series: String) -> String? {
        let text = String(decoding: metrics.render(), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return String(line.dropFirst(series.count + 1))
        }
        return nil
    }

    /// The whole exposition of a fresh registry with one service, `ldap`.
    static let freshLDAP = #"""
# HELP sudosos_sync_runs_total Runs finished, by outcome.
# TYPE sudosos_sync_runs_total counter
sudosos_sync_runs_total{service="ldap",outcome="success"} 0
sudosos_sync_runs_total{service="ldap",outcome="failure"} 0
sudosos_sync_runs_total{service="ldap",outcome="crash"} 0
sudosos_sync_runs_total{service="ldap",outcome="timeout"} 0
sudosos_sync_runs_total{service="ldap",outcome="refused"} 0
sudosos_sync_runs_total{service="ldap",outcome="not_ready"} 0
sudosos_sync_runs_total{service="ldap",outcome="locked"} 0
# HELP sudosos_sync_last_outcome 1 for the outcome of the service's last finished run, 0 for the others.
# TYPE sudosos_sync_last_outcome gauge
sudosos_sync_last_outcome{service="ldap",outcome="success"} 0.0
sudosos_sync_last_outcome{service="ldap",outcome="failure"} 0.0
sudosos_sync_last_outcome{service="ldap",outcome="crash"} 0.0
sudosos_sync_last_outcome{service="ldap",outcome="timeout"} 0.0
sudosos_sync_last_outcome{service="ldap",outcome="refused"} 0.0
sudosos_sync_last_outcome{service="ldap",outcome="not_ready"} 0.0
sudosos_sync_last_outcome{service="ldap",outcome="locked"} 0.0
# HELP sudosos_sync_run_duration_seconds Wall-clock duration of runs in seconds, from start to the child's exit.
# TYPE sudosos_sync_run_duration_seconds histogram
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="0.1"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="0.25"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="0.5"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="1.0"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="2.5"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="5.0"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="10.0"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="30.0"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="60.0"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="120.0"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="300.0"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="600.0"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="1200.0"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="1800.0"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="3600.0"} 0
sudosos_sync_run_duration_seconds_bucket{service="ldap",le="+Inf"} 0
sudosos_sync_run_duration_seconds_sum{service="ldap"} 0.0
sudosos_sync_run_duration_seconds_count{service="ldap"} 0
# HELP sudosos_sync_last_run_timestamp_seconds Unix time the last run started (0: none yet).
# TYPE sudosos_sync_last_run_timestamp_seconds gauge
sudosos_sync_last_run_timestamp_seconds{service="ldap"} 0.0
# HELP sudosos_sync_last_success_timestamp_seconds Unix time the last successful run finished (0: none since start-up).
# TYPE sudosos_sync_last_success_timestamp_seconds gauge
sudosos_sync_last_success_timestamp_seconds{service="ldap"} 0.0
# HELP sudosos_sync_next_run_timestamp_seconds Unix time of the next scheduled run (0: none scheduled).
# TYPE sudosos_sync_next_run_timestamp_seconds gauge
sudosos_sync_next_run_timestamp_seconds{service="ldap"} 0.0
# HELP sudosos_sync_expected_interval_seconds Seconds between two scheduled runs (0: unknown); stale after twice this.
# TYPE sudosos_sync_expected_interval_seconds gauge
sudosos_sync_expected_interval_seconds{service="ldap"} 0.0
# HELP sudosos_sync_running 1 while a run of the service is in progress.
# TYPE sudosos_sync_running gauge
sudosos_sync_running{service="ldap"} 0.0
# HELP sudosos_sync_consecutive_failures Runs that failed, crashed or timed out in a row.
# TYPE sudosos_sync_consecutive_failures gauge
sudosos_sync_consecutive_failures{service="ldap"} 0.0
# HELP sudosos_sync_backoff_seconds Current backoff delay in seconds before the next retry (0: not backing off).
# TYPE sudosos_sync_backoff_seconds gauge
sudosos_sync_backoff_seconds{service="ldap"} 0.0
# HELP sudosos_sync_child_restarts_total Failed runs started again after their backoff.
# TYPE sudosos_sync_child_restarts_total counter
sudosos_sync_child_restarts_total{service="ldap"} 0
# HELP sudosos_sync_child_cpu_seconds_total CPU seconds (user and system) used by the service's child processes.
# TYPE sudosos_sync_child_cpu_seconds_total counter
sudosos_sync_child_cpu_seconds_total{service="ldap"} 0
# HELP sudosos_sync_child_max_rss_bytes Maximum resident set size in bytes of the last run's child process.
# TYPE sudosos_sync_child_max_rss_bytes gauge
sudosos_sync_child_max_rss_bytes{service="ldap"} 0.0
# HELP sudosos_sync_entities_total Entities seen by runs: passed (in step), failed (rejected or request failed), skipped.
# TYPE sudosos_sync_entities_total counter
sudosos_sync_entities_total{service="ldap",result="passed"} 0
sudosos_sync_entities_total{service="ldap",result="failed"} 0
sudosos_sync_entities_total{service="ldap",result="skipped"} 0
# HELP sudosos_sync_changes_total Changes applied (or planned, on a dry or refused run), by action.
# TYPE sudosos_sync_changes_total counter
sudosos_sync_changes_total{service="ldap",action="created"} 0
sudosos_sync_changes_total{service="ldap",action="updated"} 0
sudosos_sync_changes_total{service="ldap",action="deactivated"} 0
sudosos_sync_changes_total{service="ldap",action="deleted"} 0
sudosos_sync_changes_total{service="ldap",action="bound"} 0
sudosos_sync_changes_total{service="ldap",action="unbound"} 0
sudosos_sync_changes_total{service="ldap",action="role_added"} 0
sudosos_sync_changes_total{service="ldap",action="role_removed"} 0
sudosos_sync_changes_total{service="ldap",action="membership_added"} 0
sudosos_sync_changes_total{service="ldap",action="membership_removed"} 0
# HELP sudosos_sync_rejected_records_total Source records rejected as invalid, by reason.
# TYPE sudosos_sync_rejected_records_total counter
sudosos_sync_rejected_records_total{service="ldap",reason="too_long"} 0
sudosos_sync_rejected_records_total{service="ldap",reason="invalid_email"} 0
sudosos_sync_rejected_records_total{service="ldap",reason="invalid_encoding"} 0
sudosos_sync_rejected_records_total{service="ldap",reason="missing_attribute"} 0
sudosos_sync_rejected_records_total{service="ldap",reason="duplicate_key"} 0
sudosos_sync_rejected_records_total{service="ldap",reason="unparsable"} 0
# HELP sudosos_sync_source_requests_total Requests to the source (GEWISDB, LDAP) made by runs, by result.
# TYPE sudosos_sync_source_requests_total counter
sudosos_sync_source_requests_total{service="ldap",result="ok"} 0
sudosos_sync_source_requests_total{service="ldap",result="error"} 0
# HELP sudosos_sync_source_request_duration_seconds Duration of requests to the source in seconds.
# TYPE sudosos_sync_source_request_duration_seconds histogram
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="0.005"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="0.01"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="0.025"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="0.05"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="0.1"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="0.25"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="0.5"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="1.0"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="2.5"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="5.0"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="10.0"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="30.0"} 0
sudosos_sync_source_request_duration_seconds_bucket{service="ldap",le="+Inf"} 0
sudosos_sync_source_request_duration_seconds_sum{service="ldap"} 0.0
sudosos_sync_source_request_duration_seconds_count{service="ldap"} 0
# HELP sudosos_sync_build_info Always 1; the labels name the running build: version, git revision, Swift version.
# TYPE sudosos_sync_build_info gauge
sudosos_sync_build_info{version="1.2.3",revision="0123456789ab",swift_version="6.3.1"} 1.0

"""#
}
