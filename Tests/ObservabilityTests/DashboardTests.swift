import Foundation
import TestKit
import Testing

/// The Grafana dashboard's structure: what an import needs, and the panels issue 6 asks for.
/// (Whether its expressions evaluate is PrometheusEndToEndTests' job.)
@Suite struct DashboardTests {
    let dashboard: [String: Any]
    let panels: [[String: Any]]

    init() throws {
        let url = TestEnvironment.repositoryRoot.appendingPathComponent("grafana/sudosos-sync.json")
        dashboard = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        func flatten(_ list: [[String: Any]]) -> [[String: Any]] {
            list.flatMap { [$0] + flatten($0["panels"] as? [[String: Any]] ?? []) }
        }
        panels = flatten(dashboard["panels"] as? [[String: Any]] ?? [])
    }

    @Test func importable() throws {
        #expect(dashboard["uid"] as? String == "sudosos-sync")
        #expect(dashboard["title"] as? String == "sudosos-sync")
        let ids = panels.compactMap { $0["id"] as? Int }
        #expect(ids.count == panels.count && Set(ids).count == ids.count, "panel ids must be unique")
        for panel in panels where panel["type"] as? String != "row" {
            let title = panel["title"] as? String ?? "?"
            let datasource = panel["datasource"] as? [String: Any]
            #expect(datasource?["uid"] as? String == "${datasource}", "\(title) must use the datasource variable")
            let targets = panel["targets"] as? [[String: Any]] ?? []
            #expect(!targets.isEmpty, "\(title) has no query")
            let grid = panel["gridPos"] as? [String: Int] ?? [:]
            #expect((grid["x"] ?? -1) >= 0 && (grid["x"] ?? 99) + (grid["w"] ?? 99) <= 24, "\(title) is off the grid")
        }
    }

    @Test func variablesForJobInstanceAndService() throws {
        let list = (dashboard["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        let byName = Dictionary(uniqueKeysWithValues: list.compactMap { v in (v["name"] as? String).map { ($0, v) } })
        #expect(byName["datasource"]?["type"] as? String == "datasource")
        for name in ["job", "instance", "service"] {
            #expect(byName[name]?["type"] as? String == "query", "variable \(name)")
        }
        #expect(byName["service"]?["multi"] as? Bool == true)
        #expect(byName["service"]?["includeAll"] as? Bool == true)
        // Every query honours the variables.
        for panel in panels {
            for target in panel["targets"] as? [[String: Any]] ?? [] {
                let expr = target["expr"] as? String ?? ""
                if expr.contains("sudosos_sync_") && !expr.contains("build_info") {
                    #expect(expr.contains(#"service=~"$service""#), "\(expr)")
                }
                if expr.contains("{") { #expect(expr.contains(#"job="$job""#), "\(expr)") }
            }
        }
    }

    /// The panels the issue lists, each backed by the metric it needs.
    @Test func requiredPanels() {
        let expressions = panels.flatMap { panel in
            (panel["targets"] as? [[String: Any]] ?? []).map {
                (panel["title"] as? String ?? "", $0["expr"] as? String ?? "")
            }
        }
        func has(_ title: String, _ metric: String) -> Bool {
            expressions.contains { $0.0.localizedCaseInsensitiveContains(title) && $0.1.contains(metric) }
        }
        #expect(has("Success rate", "sudosos_sync_runs_total"))
        #expect(has("Outcomes per service", "sudosos_sync_runs_total"))
        #expect(
            has(
                "duration percentiles",
                "histogram_quantile(0.99, sum by (service, le) (rate(sudosos_sync_run_duration_seconds_bucket"))
        #expect(has("Age of last success", "sudosos_sync_last_success_timestamp_seconds"))
        #expect(has("Age of last success", "sudosos_sync_expected_interval_seconds"))
        #expect(has("Changes per action", "sudosos_sync_changes_total"))
        #expect(has("Entities", "sudosos_sync_entities_total"))
        #expect(has("Child restarts", "sudosos_sync_child_restarts_total"))
        #expect(has("Child CPU", "sudosos_sync_child_cpu_seconds_total"))
        #expect(has("Child max RSS", "sudosos_sync_child_max_rss_bytes"))
        #expect(has("Source request latency", "sudosos_sync_source_request_duration_seconds_bucket"))
        for metric in [
            "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
        ] {
            #expect(expressions.contains { $0.1.contains(metric) }, "\(metric)")
        }
    }

    @Test func provisioningPointsAtADashboardFolder() throws {
        let root = TestEnvironment.repositoryRoot.appendingPathComponent("grafana/provisioning")
        let dashboards = try String(
            contentsOf: root.appendingPathComponent("dashboards/sudosos-sync.yaml"), encoding: .utf8)
        #expect(dashboards.contains("apiVersion: 1"))
        #expect(dashboards.contains("type: file"))
        #expect(dashboards.contains("path: /var/lib/grafana/dashboards/sudosos-sync"))
        let datasources = try String(
            contentsOf: root.appendingPathComponent("datasources/prometheus.yaml"), encoding: .utf8)
        #expect(datasources.contains("type: prometheus"))
    }
}
