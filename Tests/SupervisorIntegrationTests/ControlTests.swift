import Foundation
import Testing
import TestKit

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

extension SupervisorProcessSuites {
    /// The control surface of a running supervisor through its HTTP endpoint: the `status` and
    /// `trigger` commands, `/status`, and the metrics the supervisor feeds.
    @Suite struct ControlTests {
        func port(_ sup: SupervisorHarness) async throws -> Int {
            try await sup.waitForLog("HTTP endpoint listening on 127.0.0.1:")
            let line = try #require(sup.log.split(separator: "\n").first { $0.contains("HTTP endpoint listening on") })
            return try #require(Int(line.split(separator: ":").last ?? ""))
        }

        func get(_ url: String) async throws -> String {
            let (data, _) = try await URLSession.shared.data(from: URL(string: url)!)
            return String(decoding: data, as: UTF8.self)
        }

        /// The endpoint serves a supervisor without privileges, as under the shipped unit (a
        /// dynamic user with no capabilities): it once set SO_DEBUG on every accepted socket,
        /// which needs CAP_NET_ADMIN, and reset every connection but root's (docs/install.md).
        @Test func endpointServesAnUnprivilegedSupervisor() async throws {
            let sup = try SupervisorHarness(
                config: """
                    database:
                      url: postgresql://sudosos@127.0.0.1:1/sudosos
                    metrics:
                      listen: 127.0.0.1:0
                    services:
                      ldap:
                        enabled: true
                        server_url: ldap://127.0.0.1:1
                        base: dc=example,dc=org
                    """, yaml: true, unprivileged: true)
            let url = "http://127.0.0.1:\(try await port(sup))"
            let status = try String(contentsOfFile: "/proc/\(sup.pid)/status", encoding: .utf8)
            #expect(status.contains("\nUid:\t65534\t"), "\(status)")
            #expect(status.contains("\nCapEff:\t0000000000000000\n"), "\(status)")
            #expect(try await get("\(url)/healthz") == "ok\n", "\(sup.log)")
            #expect(try await get("\(url)/metrics").contains(#"sudosos_sync_runs_total{service="ldap",outcome="success"} 0"#))
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit() == 0)
        }

        @Test func statusAndTriggerCommands() async throws {
            let sup = try SupervisorHarness(
                config: """
                    {"backoff_initial": 60, "backoff_jitter": 0,
                     "services": {"ldap": {"runs": [[{"step": "work", "seconds": 3}, {"step": "exit", "code": 0}]]},
                                  "gewisdb": {"interval": 3600, "run_on_start": true, "runs": [[{"step": "crash"}]]}}}
                    """)
            let url = "http://127.0.0.1:\(try await port(sup))"
            let binary = TestEnvironment.executable("sudosos-sync")
            try await sup.waitForLog("gewisdb: run ended: crash")

            let status = try runProcess(binary, ["status", "--url", url])
            #expect(status.status == 0, "\(status.stderr)")
            let rows = status.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
            #expect(rows.first?.first == "SERVICE")
            let gewisdb = try #require(rows.first { $0.first == "gewisdb" })
            #expect(gewisdb.contains("backoff") && gewisdb.contains("crash"), "\(status.stdout)")
            let ldap = try #require(rows.first { $0.first == "ldap" })
            #expect(ldap.contains("idle") && ldap.contains("manual"), "\(status.stdout)")

            let triggered = try runProcess(binary, ["trigger", "ldap", "--url", url])
            #expect(triggered.status == 0 && triggered.stdout.contains("ldap: run started"), "\(triggered.stderr)")
            try await sup.waitForLog("ldap: run started (trigger")
            let again = try runProcess(binary, ["trigger", "ldap", "--url", url])
            #expect(again.status == 75, "\(again.stdout)\(again.stderr)")
            let unknown = try runProcess(binary, ["trigger", "nope", "--url", url])
            #expect(unknown.status == 64)
            let unreachable = try runProcess(binary, ["status", "--url", "http://127.0.0.1:1"])
            #expect(unreachable.status == 69)

            let json = try await get(url + "/status")
            #expect(json.contains("\"running\""))
            try await sup.waitForLog("ldap: run ended: success")
            let metrics = try await get(url + "/metrics")
            #expect(metrics.contains("sudosos_sync_runs_total{service=\"gewisdb\",outcome=\"crash\"} 1"), "\(metrics)")
            #expect(metrics.contains("sudosos_sync_runs_total{service=\"ldap\",outcome=\"success\"} 1"))
            #expect(metrics.contains("sudosos_sync_consecutive_failures{service=\"gewisdb\"} 1"))
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit() == 0)
        }
    }
}
