import Foundation
import TestKit
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The real Prometheus server (Debian's `prometheus`) scrapes a process serving the endpoint,
/// with the repository's scrape configuration and alert rules; then every expression of every
/// dashboard panel and every alert must evaluate (data or a valid empty result) and name only
/// metrics the exporter serves.
@Suite(.serialized) struct PrometheusEndToEndTests {
    static let prometheus = "/usr/bin/prometheus"
    static var repository: URL { TestEnvironment.repositoryRoot }

    /// The scrape target: `endpoint-demo`, the real `HTTPEndpoint` and `SyncMetrics` fed by
    /// simulated runs every second.
    @Test(.timeLimit(.minutes(3))) func dashboardAndAlertsAgainstRealPrometheus() async throws {
        let work = try TemporaryDirectory()
        defer { work.remove() }
        let target = try await ServedProcess.start(
            TestEnvironment.executable("endpoint-demo"), ["--every", "1", "--runs", "4"], readyPrefix: "listening on 127.0.0.1:")
        defer { target.stop() }
        let targetPort = try #require(Int(target.readyLine.dropFirst("listening on 127.0.0.1:".count)))

        try await Self.checkDashboardAndAlerts(targetPort: targetPort, services: ["ldap", "gewisdb"], in: work.url)
    }

    /// Starts Prometheus scraping `targetPort` with the repository's configuration and rules,
    /// waits until runs show, then evaluates every alert and dashboard expression.
    static func checkDashboardAndAlerts(
        targetPort: Int, services: Set<String>, in directory: URL, allowedEmpty: [String] = ["sudosos_sync_running"],
        minimumRuns: [String: Int] = [:], extraChecks: (PrometheusAPI) async throws -> Void = { _ in }
    ) async throws {
        let server = try await PrometheusServer.start(scraping: targetPort, in: directory)
        defer { server.stop() }
        let api = server.api

        // The target is up and its samples move between scrapes.
        try await waitUntil("Prometheus scrapes the endpoint", timeout: .seconds(60), poll: .milliseconds(250)) {
            let result = try? await api.query(#"up{job="sudosos-sync"} == 1"#)
            return result?.isEmpty == false
        }
        try await waitUntil("runs show in rate()", timeout: .seconds(60), poll: .milliseconds(250)) {
            let result = try? await api.query(#"sum(increase(sudosos_sync_runs_total{job="sudosos-sync"}[1m])) > 0"#)
            return result?.isEmpty == false
        }

        for (service, runs) in minimumRuns.sorted(by: { $0.key < $1.key }) {
            try await waitUntil("\(runs) runs of \(service) in Prometheus", timeout: .seconds(90), poll: .milliseconds(250)) {
                let result = try? await api.query(#"sum(sudosos_sync_runs_total{service="\#(service)"}) >= \#(runs)"#)
                return result?.isEmpty == false
            }
        }
        try await extraChecks(api)

        let served = try await Self.servedMetricNames(port: targetPort)
        #expect(served.contains("sudosos_sync_runs_total"))
        #expect(served.contains("process_resident_memory_bytes"))

        // Every alert rule loaded, evaluated, and healthy.
        var ruleQueries: [String: String] = [:]
        try await waitUntil("every rule evaluated without error", timeout: .seconds(30), poll: .milliseconds(250)) {
            let rules = try await api.rules()
            ruleQueries = Dictionary(rules.map { ($0.name, $0.query) }, uniquingKeysWith: { a, _ in a })
            return rules.count == 7 && rules.allSatisfy { $0.health == "ok" }
        }
        #expect(ruleQueries.count == 7)
        for (name, query) in ruleQueries.sorted(by: { $0.key < $1.key }) {
            _ = try await api.query(query)
            #expect(Self.unknownMetrics(in: query, served: served).isEmpty, "\(name) names a metric not served")
        }

        // Every dashboard expression evaluates; report the ones with no data.
        let dashboard = try DashboardExpressions(file: Self.repository.appendingPathComponent("grafana/sudosos-sync.json"))
        #expect(dashboard.panelExpressions.count >= 25)
        var empty: [String] = []
        for (panel, expression) in dashboard.panelExpressions {
            let query = DashboardExpressions.substitute(expression)
            #expect(!query.contains("$"), "unsubstituted variable in \(panel): \(query)")
            let result: [Any]
            do {
                result = try await api.query(query)
            } catch {
                Issue.record("\(panel): \(error)")
                continue
            }
            if result.isEmpty { empty.append("\(panel): \(query)") }
            let unknown = Self.unknownMetrics(in: query, served: served)
            #expect(unknown.isEmpty, "\(panel) names metrics not served: \(unknown)")
        }
        // With runs recorded, only the panels that filter for a condition the demo does not
        // show (a run in progress at that instant) may be empty.
        let allowed = empty.filter { line in allowedEmpty.contains { line.contains($0) } }
        print("dashboard: \(dashboard.panelExpressions.count) expressions, \(empty.count) without data")
        #expect(empty == allowed, "panels without data: \(empty.joined(separator: "\n"))")

        // The variables' queries (label_values(SELECTOR, label)) find their values.
        for (variable, selector, label) in dashboard.variableQueries {
            let series = try await api.query(DashboardExpressions.substitute(selector))
            let values = Set(series.compactMap { (($0 as? [String: Any])?["metric"] as? [String: String])?[label] })
            #expect(!values.isEmpty, "variable \(variable) has no values")
            if variable == "service" { #expect(values == services) }
            if variable == "job" { #expect(values == ["sudosos-sync"]) }
        }
    }

    /// Metric names in an expression that the exporter does not serve (`up` is Prometheus's).
    static func unknownMetrics(in expression: String, served: Set<String>) -> [String] {
        let regex = try! NSRegularExpression(pattern: #"\b(sudosos_sync_[a-z_]+|process_[a-z_]+)\b"#)
        let range = NSRange(expression.startIndex..., in: expression)
        return regex.matches(in: expression, range: range).compactMap { match in
            let name = String(expression[Range(match.range, in: expression)!])
            return served.contains(name) ? nil : name
        }
    }

    /// Sample names served on /metrics (histogram series with their suffixes).
    static func servedMetricNames(port: Int) async throws -> Set<String> {
        let (data, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
        var names = Set<String>()
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let end = line.firstIndex(where: { $0 == "{" || $0 == " " }) ?? line.endIndex
            names.insert(String(line[..<end]))
        }
        return names
    }
}

/// The `expr` of every target of every panel of a Grafana dashboard, and its query variables.
struct DashboardExpressions {
    var panelExpressions: [(panel: String, expr: String)] = []
    var variableQueries: [(name: String, selector: String, label: String)] = []

    init(file: URL) throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any] ?? [:]
        func walk(_ panels: [[String: Any]]) {
            for panel in panels {
                let title = panel["title"] as? String ?? "?"
                for target in panel["targets"] as? [[String: Any]] ?? [] {
                    if let expr = target["expr"] as? String { panelExpressions.append((title, expr)) }
                }
                walk(panel["panels"] as? [[String: Any]] ?? [])
            }
        }
        walk(json["panels"] as? [[String: Any]] ?? [])
        let variables = (json["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        for variable in variables where variable["type"] as? String == "query" {
            let query = (variable["query"] as? [String: Any])?["query"] as? String ?? variable["definition"] as? String ?? ""
            // label_values(SELECTOR, label)
            guard query.hasPrefix("label_values("), let comma = query.lastIndex(of: ",") else { continue }
            let selector = String(query[query.index(query.startIndex, offsetBy: "label_values(".count)..<comma])
            let label = query[query.index(after: comma)...].trimmingCharacters(in: CharacterSet(charactersIn: " )"))
            variableQueries.append((variable["name"] as? String ?? "?", selector, label))
        }
    }

    /// Grafana's variables as an operator would have them: one job, every instance and service.
    static func substitute(_ expression: String) -> String {
        expression
            .replacingOccurrences(of: "$__rate_interval", with: "1m")
            .replacingOccurrences(of: "$__range", with: "5m")
            .replacingOccurrences(of: "$job", with: "sudosos-sync")
            .replacingOccurrences(of: "$instance", with: ".*")
            .replacingOccurrences(of: "$service", with: ".*")
    }
}
