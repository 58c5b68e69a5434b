import Foundation
import Testing
import TestKit

extension SupervisorProcessSuites {
    /// The repository's unit file, systemd/sudosos-sync.service: static checks with
    /// systemd-analyze, and the real thing under systemd in systemd-nspawn (scripts/systemd-test).
    @Suite struct SystemdUnitTests {
        var unitPath: String { TestEnvironment.repositoryRoot.appendingPathComponent("systemd/sudosos-sync.service").path }

        /// The unit with ExecStart pointing at the built binary (verify checks it exists).
        func unitForVerify() throws -> (String, URL) {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unit-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let text = try String(contentsOfFile: unitPath, encoding: .utf8)
                .replacingOccurrences(of: "/usr/bin/sudosos-sync", with: TestEnvironment.executable("sudosos-sync"))
            let path = dir.appendingPathComponent("sudosos-sync.service").path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return (path, dir)
        }

        @Test func unitHasTheRequiredSettings() throws {
            let lines = Set(try String(contentsOfFile: unitPath, encoding: .utf8).split(separator: "\n").map(String.init))
            for required in [
                "Type=notify", "NotifyAccess=main", "WatchdogSec=30s", "KillMode=mixed", "Restart=on-failure",
                "RestartPreventExitStatus=78", "ExecStart=/usr/bin/sudosos-sync run --config /etc/sudosos-sync/config.yaml",
                "DynamicUser=yes", "LoadCredential=LDAP_BIND_PW", "LoadCredential=GEWISDB_API_KEY",
                "LoadCredential=TYPEORM_PASSWORD",
            ] {
                #expect(lines.contains(required), "missing \(required)")
            }
            // TimeoutStopSec longer than the default shutdown_timeout (30 s) plus a margin.
            let stop = try #require(lines.first { $0.hasPrefix("TimeoutStopSec=") })
            #expect(Int(stop.dropFirst("TimeoutStopSec=".count).dropLast()) ?? 0 >= 40)
            #expect(!lines.contains { $0.hasPrefix("LoadCredential=") && $0.contains(":") }, "credentials without a path")
        }

        @Test func systemdAnalyzeVerifyPasses() throws {
            let (path, dir) = try unitForVerify()
            defer { try? FileManager.default.removeItem(at: dir) }
            let result = try runProcess("/usr/bin/systemd-analyze", ["verify", path])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stderr.contains("sudosos-sync.service:"), "warnings: \(result.stderr)")
        }

        @Test func exposureIsAtMostOnePointFive() throws {
            let (path, dir) = try unitForVerify()
            defer { try? FileManager.default.removeItem(at: dir) }
            let result = try runProcess("/usr/bin/systemd-analyze", ["security", "--offline=true", "--no-pager", path])
            let line = try #require(result.stdout.split(separator: "\n").first { $0.contains("Overall exposure level") })
            let score = try #require(
                line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }, "\(line)")
            #expect(score <= 1.5, "\(line)")
        }

        /// The example configuration shipped next to the unit is valid (secrets as credentials
        /// would provide them).
        @Test func exampleConfigurationIsValid() throws {
            let example = TestEnvironment.repositoryRoot.appendingPathComponent("systemd/config.example.yaml").path
            let result = try runProcess(
                TestEnvironment.executable("sudosos-sync"), ["check-config", "--config", example],
                environment: ["PATH": "/usr/bin:/bin", "TYPEORM_PASSWORD": "x", "LDAP_BIND_PW": "y", "GEWISDB_API_KEY": "z"])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        }

        /// The real contract: systemd v252 booted in systemd-nspawn runs the repository's unit.
        @Test(.timeLimit(.minutes(10))) func realSystemdInNspawn() throws {
            let script = TestEnvironment.repositoryRoot.appendingPathComponent("scripts/systemd-test").path
            let result = try runProcess(script, [TestEnvironment.executable("sudosos-sync")])
            var values: [String: String] = [:]
            for line in result.stdout.split(separator: "\n") {
                if let eq = line.firstIndex(of: "=") { values[String(line[..<eq])] = String(line[line.index(after: eq)...]) }
            }
            let context = "\(result.stdout)\n\(result.stderr)"
            #expect(result.status == 0, "\(context)")
            // The real configuration: active only because the bind password came as a credential
            // (the other two credential files are missing and skipped); the worker ran the real path.
            #expect(values["real_start_rc"] == "0" && values["real_active_state"] == "active", "\(context)")
            #expect(values["real_run_failed_unavailable"] == "0", "\(context)")
            #expect(values["real_stop_result"] == "success", "\(context)")
            #expect(values["start_rc"] == "0" && values["active_state"] == "active", "\(context)")
            #expect(values["status_text"]?.hasPrefix("ldap: ") == true, "STATUS= in systemctl show: \(context)")
            #expect(values["secret_check"] == "secret matches", "LoadCredential: \(context)")
            #expect(values["worker_running"] == "yes" && values["children_of_main"] == "1", "\(context)")
            #expect(values["stop_result"] == "success" && values["after_stop_state"] == "inactive", "\(context)")
            #expect(values["worker_left"] == "no" && values["stop_clean_exit"] == "yes", "\(context)")
            #expect(values["systemd_killed"] == "0", "systemd had to kill something at stop: \(context)")
            #expect(values["watchdog_result"] == "1", "Result=watchdog: \(context)")
            #expect(Int(values["n_restarts"] ?? "") ?? 0 >= 1, "\(context)")
            #expect(values["after_restart_state"] == "active" && values["new_main_pid_differs"] == "yes", "\(context)")
            #expect(values["no_new_privs"] == "1" && values["seccomp"] == "2", "hardening in effect: \(context)")
            #expect(values["cap_bounding"] == "0000000000000000", "\(context)")
            #expect(Int(values["uid"] ?? "") ?? 0 >= 61184, "a dynamic user: \(context)")
        }
    }
}
