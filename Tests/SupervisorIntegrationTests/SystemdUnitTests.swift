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
            // --man=no: Documentation= names the package's own pages, which a build machine has
            // not installed (ManualTests checks that the unit names the pages it generates).
            let result = try runProcess("/usr/bin/systemd-analyze", ["verify", "--man=no", path])
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

        /// The real contract: systemd v252 booted in systemd-nspawn, the Debian package installed
        /// there with `apt-get install ./sudosos-sync_*.deb`, the unit it installed (plus the
        /// documented timing drop-in) run with a real configuration file: a real ldap run
        /// against the harness's slapd, triggered over HTTP from inside the container, writes a
        /// database of its own, and `/metrics`, scraped from inside after it, counts exactly
        /// what the fixture implies. Then `apt-get remove` keeps the conffile, `purge` removes it.
        @Test(.timeLimit(.minutes(10))) func packageUnderRealSystemdInNspawn() throws {
            let deb = try TestEnvironment.require("SUDOSOS_TEST_DEB")
            // The database the run writes: the script takes only its URL, so another engine
            // is this one line.
            let db = try TemporaryDatabase.create()
            defer { db.drop() }
            // The SudoSOS roles three of the fixture's role groups name (the fourth has none).
            try db.sql(#"INSERT INTO role ("version","name") VALUES (1,'BAC PM'),(1,'SudoSOS Admin'),(1,'Empty Role')"#)

            let script = TestEnvironment.repositoryRoot.appendingPathComponent("scripts/systemd-test").path
            let began = Date().timeIntervalSince1970
            // About a minute; the first run on a machine also builds the container's root (3 min).
            let result = try runChildBlocking(script, [deb, db.url], timeout: .seconds(540))
            var values: [String: String] = [:]
            var scraped: [String: Double] = [:]
            for line in result.stdout.split(separator: "\n") {
                if line.hasPrefix("sudosos_sync_") || line.hasPrefix("process_"), let space = line.lastIndex(of: " ") {
                    scraped[String(line[..<space])] = Double(line[line.index(after: space)...])
                } else if let eq = line.firstIndex(of: "=") {
                    values[String(line[..<eq])] = String(line[line.index(after: eq)...])
                }
            }
            let context = "\(result.stdout)\n\(result.stderr)"
            // The run's counters as scraped inside the container, in the test's output.
            for line in result.stdout.split(separator: "\n")
            where line.hasPrefix("sudosos_sync_") && line.contains(#"service="ldap""#)
                && ["runs_total", "changes_total", "rejected_records_total", "entities_total"].contains(where: { line.contains("_\($0){") })
                || line.hasPrefix("process_start_time_seconds ") {
                print("scraped inside the container: \(line)")
            }
            #expect(result.status == 0, "\(context)")
            for key in [
                "apt_install_rc", "installed", "installed_version", "unit_installed", "unit_state_after_install", "credstore_mode",
                "active_state", "trigger_ldap", "metrics_code", "active_before_remove", "removed", "after_remove_state",
                "conffile_after_remove", "purged", "conffile_after_purge", "credstore_after_purge",
            ] {
                print("in the container: \(key)=\(values[key] ?? "-")")
            }

            // Installed from the package, offline (its Depends are in the root), as an operator would.
            let version = try String(contentsOf: TestEnvironment.repositoryRoot.appendingPathComponent("VERSION"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(values["apt_install_rc"] == "0" && values["installed"] == "install ok installed \(version)", "\(context)")
            #expect(values["installed_version"]?.hasPrefix("sudosos-sync \(version) (revision ") == true, "\(context)")
            #expect(values["unit_installed"] == "/lib/systemd/system/sudosos-sync.service", "\(context)")
            // A first install neither enables nor starts the service.
            #expect(values["unit_state_after_install"] == "disabled/inactive", "\(context)")
            #expect(values["credstore_mode"] == "700 root", "the tmpfiles.d entry: \(context)")
            #expect(values["man_pages"] == "2", "\(context)")
            #expect(values["binary_links_swift_runtime"] == "0" && values["toolchain_present"] == "no",
                    "the static runtime, as shipped: \(context)")

            // Started through READY=1; the endpoint answers from the first request on.
            #expect(values["start_rc"] == "0" && values["active_state"] == "active", "\(context)")
            #expect(values["status_text"]?.contains("ldap: ") == true, "STATUS= in systemctl show: \(context)")
            #expect(values["healthz_first"] == "ok", "GET /healthz inside the container: \(context)")

            // One run, the triggered one, against the real slapd and database.
            #expect(values["ldap_runs_before"] == "0", "\(context)")
            #expect(values["trigger_ldap"] == "202 started ldap", "POST /trigger/ldap: \(context)")
            #expect(values["ldap_run_ended"] == "0" && values["metrics_code"] == "200", "\(context)")
            func metric(_ name: String, _ labels: String) -> Double? { scraped["sudosos_sync_\(name){service=\"ldap\",\(labels)}"] }
            #expect(metric("runs_total", #"outcome="success""#) == 1, "\(context)")
            for outcome in ["failure", "crash", "timeout", "refused", "not_ready", "locked"] {
                #expect(metric("runs_total", "outcome=\"\(outcome)\"") == 0, "\(outcome): \(context)")
            }
            #expect(metric("last_outcome", #"outcome="success""#) == 1)
            // What fixtures/ldap/organisation.yaml implies for an empty database with those
            // roles (LDAPFixtureRunTests checks the same in process): 22 accounts (14 people,
            // 6 organs, 2 service accounts), each bound; 15 organ memberships; 8 role
            // assignments; the 7 broken entries rejected with their reasons, and one bad
            // address dropped (its person gets an account without it: invalid_email).
            let changes = [
                "created": 22.0, "updated": 0, "deactivated": 0, "deleted": 0, "bound": 22, "unbound": 0,
                "role_added": 8, "role_removed": 0, "membership_added": 15, "membership_removed": 0,
            ]
            for (action, count) in changes {
                #expect(metric("changes_total", "action=\"\(action)\"") == count, "\(action): \(context)")
            }
            let rejected = [
                "too_long": 2.0, "invalid_email": 1, "invalid_encoding": 0, "missing_attribute": 2, "duplicate_key": 2,
                "unparsable": 1,
            ]
            for (reason, count) in rejected {
                #expect(metric("rejected_records_total", "reason=\"\(reason)\"") == count, "\(reason): \(context)")
            }
            #expect(metric("entities_total", #"result="failed""#) == 7, "the entries rejected whole: \(context)")
            #expect(metric("source_requests_total", #"result="error""#) == 0, "\(context)")
            #expect((metric("source_requests_total", #"result="ok""#) ?? 0) > 0, "\(context)")
            // The process metrics under the private /proc (ProcSubset=pid hides /proc/stat).
            let started = scraped["process_start_time_seconds"] ?? 0
            #expect(started >= began - 5 && started <= Date().timeIntervalSince1970 + 5, "process_start_time_seconds \(started)")
            #expect((scraped["process_resident_memory_bytes"] ?? 0) > 0 && (scraped["process_open_fds"] ?? 0) > 0)
            // The rows are in the database the URL named.
            #expect(try db.sql(#"SELECT string_agg(type || '=' || n, ',' ORDER BY type) FROM (SELECT type, count(*) n FROM "user" GROUP BY type) t"#)
                == "INTEGRATION=2,MEMBER=14,ORGAN=6")

            // The bind password came only through LoadCredential=: not in the file, not in the
            // environment, never logged; the run's successful bind used it.
            #expect(values["config_has_secret"] == "0" && values["environ_has_secret"] == "0", "\(context)")
            #expect(values["environ_has_credentials_directory"] == "1", "\(context)")
            #expect(values["journal_has_secret"] == "0", "\(context)")

            // `systemctl stop` during a run (gewisdb, hung on a GEWISDB that never answers).
            #expect(values["trigger_gewisdb"] == "202" && values["gewisdb_request_hanging"] == "0", "\(context)")
            #expect(values["worker_running"] == "yes" && values["children_of_main"] == "1", "\(context)")
            #expect(values["stop_result"] == "success" && values["after_stop_state"] == "inactive", "\(context)")
            #expect(values["worker_left"] == "no" && values["stop_clean_exit"] == "yes", "\(context)")
            #expect(values["systemd_killed"] == "0", "systemd had to kill something at stop: \(context)")

            // The watchdog: a frozen supervisor is killed and restarted, and serves again.
            #expect(values["watchdog_result"] == "1", "Result=watchdog: \(context)")
            #expect(Int(values["n_restarts"] ?? "") ?? 0 >= 1, "\(context)")
            #expect(values["after_restart_state"] == "active" && values["new_main_pid_differs"] == "yes", "\(context)")
            #expect(values["healthz_after_restart"] == "ok", "\(context)")

            // The hardening is in effect.
            #expect(values["no_new_privs"] == "1" && values["seccomp"] == "2", "hardening in effect: \(context)")
            #expect(values["cap_bounding"] == "0000000000000000", "\(context)")
            #expect(Int(values["uid"] ?? "") ?? 0 >= 61184, "a dynamic user: \(context)")

            // `apt-get remove` stops the running service and keeps the edited conffile; `purge`
            // removes it and its folder, and leaves the operator's /etc/credstore.
            #expect(values["active_before_remove"] == "active" && values["apt_remove_rc"] == "0", "\(context)")
            #expect(values["after_remove_state"] != "active", "\(context)")
            #expect(values["removed"] == "deinstall ok config-files" && values["binary_after_remove"] == "absent", "\(context)")
            #expect(values["conffile_after_remove"] == "1", "the edited conffile survives remove: \(context)")
            #expect(values["apt_purge_rc"] == "0" && values["purged"]?.contains("not-installed") == true, "\(context)")
            #expect(values["conffile_after_purge"] == "absent" && values["config_folder_after_purge"] == "absent", "\(context)")
            #expect(values["credstore_after_purge"] == "present", "\(context)")
        }
    }
}
