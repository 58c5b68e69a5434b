import Foundation
import Testing
import TestKit

#if canImport(Glibc)
import Glibc
#endif

extension SupervisorProcessSuites {
    /// `sudosos-sync run` with real child processes: the scripted worker `sudosos-sync-testchild`.
    @Suite struct SupervisorProcessTests {
        /// A SIGKILLed child is a `crash`, and runs again after the backoff delay (measured
        /// within ±20 % + 100 ms of the configured 2 s).
        @Test func killedChildIsACrashAndRerunsAfterTheBackoff() async throws {
            let sup = try SupervisorHarness(
                config: SupervisorHarness.yaml(
                    supervisor: ["shutdown_timeout: 3s", "backoff: {initial: 2s, jitter: 0}"],
                    services: ["ldap": ["interval: 1h", "run_on_start: true", "timeout: 60s"]]),
                script: """
                    {"ldap": [[{"step": "pid", "file": "$DIR/pid1"}, {"step": "work", "seconds": 60}],
                              [{"step": "pid", "file": "$DIR/pid2"}, {"step": "exit", "code": 0}]]}
                    """)
            let pid = try #require(Int32(try await sup.waitForFile("pid1").trimmingCharacters(in: .whitespacesAndNewlines)))
            kill(pid, SIGKILL)
            try await sup.waitForLog("ldap: run ended: crash (signal 9")
            try await sup.waitForLog("ldap: run started (retry", timeout: .seconds(10))
            // Measured on the supervisor's log clock: from recording the crash to the rerun.
            let crashed = try #require(sup.logTime(of: "ldap: run ended: crash"))
            let rerun = try #require(sup.logTime(of: "ldap: run started (retry"))
            let delay = rerun.timeIntervalSince(crashed)
            #expect(delay >= 2 * 0.8 - 0.1 && delay <= 2 * 1.2 + 0.1, "retry after \(delay) s")
            _ = try await sup.waitForFile("pid2")
            try await sup.waitForLog("ldap: run ended: success")
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit() == 0)
        }

        /// A hung child that ignores SIGTERM is killed at its timeout (SIGTERM, then SIGKILL
        /// after the grace period) and recorded as `timeout`.
        @Test func hungChildIsKilledAtItsTimeout() async throws {
            let sup = try SupervisorHarness(
                config: SupervisorHarness.yaml(
                    supervisor: ["shutdown_timeout: 1s", "backoff: {initial: 1m}"],
                    services: ["ldap": ["interval: 1h", "run_on_start: true", "timeout: 1500ms"]]),
                script: """
                    {"ldap": [[{"step": "pid", "file": "$DIR/pid"}, {"step": "ignore_term"}, {"step": "silent", "seconds": 60}]]}
                    """)
            let pid = try #require(Int32(try await sup.waitForFile("pid").trimmingCharacters(in: .whitespacesAndNewlines)))
            try await sup.waitForLog("ldap: ran past its timeout of 1.5s", timeout: .seconds(10))
            let started = try #require(sup.logTime(of: "ldap: run started"))
            let timedOut = try #require(sup.logTime(of: "ldap: ran past its timeout")).timeIntervalSince(started)
            #expect(timedOut >= 1.45 && timedOut < 1.5 * 1.2 + 0.1, "terminated after \(timedOut) s")
            try await sup.waitForLog("still running after SIGTERM: killing", timeout: .seconds(10))
            let killedAfter = try #require(sup.logTime(of: "still running after SIGTERM")).timeIntervalSince(started)
            #expect(killedAfter >= 2.5 && killedAfter < 2.5 * 1.2 + 0.1, "killed after \(killedAfter) s (1 s grace)")
            try await sup.waitForLog("ldap: run ended: timeout (signal 9")
            #expect(!isAlive(pid))
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit() == 0)
        }

        /// A run that stops reporting heartbeats is killed after `heartbeat_timeout`.
        @Test func silentChildIsKilledAtItsHeartbeatTimeout() async throws {
            let sup = try SupervisorHarness(
                config: SupervisorHarness.yaml(
                    supervisor: ["shutdown_timeout: 1s", "backoff: {initial: 1m}"],
                    services: ["gewisdb": ["interval: 1h", "run_on_start: true", "timeout: 60s", "heartbeat_timeout: 1s"]]),
                script: """
                    {"gewisdb": [[{"step": "work", "seconds": 1.5}, {"step": "silent", "seconds": 60}]]}
                    """)
            try await sup.waitForLog("gewisdb: silent for 1s (heartbeat timeout)", timeout: .seconds(6))
            try await sup.waitForLog("gewisdb: run ended: timeout (signal 15")
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit() == 0)
        }

        /// SIGKILL to the supervisor: its children die within a second (PR_SET_PDEATHSIG).
        @Test func childrenDieWithTheSupervisor() async throws {
            let sup = try SupervisorHarness(
                config: SupervisorHarness.yaml(services: ["ldap": ["interval: 1h", "run_on_start: true"]]),
                script: """
                    {"ldap": [[{"step": "pid", "file": "$DIR/pid"}, {"step": "work", "seconds": 60}]]}
                    """)
            let pid = try #require(Int32(try await sup.waitForFile("pid").trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(isAlive(pid))
            sup.signal(SIGKILL)
            try await waitUntil("the child to die with its supervisor", timeout: .seconds(1), poll: .milliseconds(10)) { !isAlive(pid) }
        }

        /// The worker receives its own settings and secrets only, on descriptor 4: not another
        /// service's secret; its environment holds no secret at all, not NOTIFY_SOCKET /
        /// WATCHDOG_*, nothing else of the supervisor's. Its stdout is re-logged with the service
        /// name; the result pipe is descriptor 3; stdin is /dev/null; it runs in a session of its own.
        @Test func childIsIsolated() async throws {
            let sup = try SupervisorHarness(
                config: SupervisorHarness.yaml(services: [
                    "ldap": [
                        "interval: 1h", "run_on_start: true", "bind_user: cn=sync,dc=example,dc=org",
                        "bind_pw: ldap-secret-1",
                    ],
                    "gewisdb": ["interval: 1h", "api_key: gewisdb-secret-2"],
                ]),
                script: """
                    {"ldap": [[{"step": "env", "file": "$DIR/env"}, {"step": "config", "file": "$DIR/config"},
                               {"step": "pid", "file": "$DIR/pid"},
                               {"step": "log", "text": "hello from the worker"}, {"step": "work", "seconds": 30}]]}
                    """,
                environment: [
                    "NOTIFY_SOCKET": "$DIR/none.sock", "WATCHDOG_USEC": "60000000", "TYPEORM_PASSWORD": "db-secret",
                ])
            let env = try await sup.waitForFile("env")
            let config = try await sup.waitForFile("config")
            let pid = try #require(Int32(try await sup.waitForFile("pid").trimmingCharacters(in: .whitespacesAndNewlines)))
            #expect(config.contains("ldap-secret-1"), "its own secret on descriptor 4: \(config)")
            #expect(!config.contains("gewisdb-secret-2"), "another service's secret on descriptor 4: \(config)")
            for forbidden in ["ldap-secret-1", "gewisdb-secret-2", "NOTIFY_SOCKET", "WATCHDOG_", "TYPEORM_PASSWORD", "db-secret"] {
                #expect(!env.contains(forbidden), "\(forbidden) leaked into the child's environment: \(env)")
            }
            try await sup.waitForLog("ldap: hello from the worker")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/3").hasPrefix("pipe:"))
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/0") == "/dev/null")
            let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
            let fields = stat[stat.index(stat.lastIndex(of: ")")!, offsetBy: 2)...].split(separator: " ")
            #expect(Int32(fields[2]) == pid && Int32(fields[3]) == pid, "own process group and session")
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit() == 0)
            #expect(!isAlive(pid))
        }

        /// SIGTERM to the supervisor during a run: the child is terminated, its transaction is
        /// rolled back (nothing half-written), no process of its group is left, and the
        /// supervisor exits 0.
        @Test func sigtermDuringARunLeavesNoChildAndNoPartialWrites() async throws {
            let db = try TemporaryDatabase.create()
            defer { db.drop() }
            try db.sql("CREATE TABLE sup_probe (x int)")
            // client_connection_check_interval: the server notices the killed client during
            // pg_sleep (and rolls back) instead of after it.
            let sup = try SupervisorHarness(
                config: SupervisorHarness.yaml(
                    supervisor: ["shutdown_timeout: 5s"], services: ["ldap": ["interval: 1h", "run_on_start: true"]]),
                script: """
                    {"ldap": [[{"step": "pid", "file": "$DIR/pid"},
                               {"step": "psql", "url": "\(db.url)",
                                "sql": "SET client_connection_check_interval = 100; BEGIN; INSERT INTO sup_probe VALUES (1); INSERT INTO sup_probe VALUES (2); SELECT pg_sleep(120); COMMIT;"}]]}
                    """)
            let pid = try #require(Int32(try await sup.waitForFile("pid").trimmingCharacters(in: .whitespacesAndNewlines)))
            try await waitUntil("the worker's transaction to be open", timeout: .seconds(10)) {
                try db.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()") == "1"
            }
            #expect(processes(inGroup: pid).count >= 2, "worker and psql in the run's process group")
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit(timeout: .seconds(10)) == 0)
            #expect(processes(inGroup: pid).isEmpty)
            try await waitUntil("the server to notice the closed connection", timeout: .seconds(10)) {
                try db.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()") == "0"
            }
            #expect(try db.sql("SELECT count(*) FROM sup_probe") == "0")
            #expect(sup.log.contains("ldap: run ended: failure (signal 15"))
            #expect(sup.log.contains("supervisor stopped; no child left"))
        }

        /// A child still running at `shutdown_timeout` is killed, and the supervisor still exits 0.
        @Test func shutdownKillsChildrenThatIgnoreSigterm() async throws {
            let sup = try SupervisorHarness(
                config: SupervisorHarness.yaml(
                    supervisor: ["shutdown_timeout: 1s"], services: ["ldap": ["interval: 1h", "run_on_start: true"]]),
                script: """
                    {"ldap": [[{"step": "ignore_term"}, {"step": "pid", "file": "$DIR/pid"}, {"step": "work", "seconds": 60}]]}
                    """)
            let pid = try #require(Int32(try await sup.waitForFile("pid").trimmingCharacters(in: .whitespacesAndNewlines)))
            let stopAt = Date()
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit() == 0)
            let took = Date().timeIntervalSince(stopAt)
            #expect(took >= 0.9 && took < 3, "stopped after \(took) s")
            #expect(!isAlive(pid))
            #expect(sup.log.contains("still running at the shutdown timeout: killing"))
        }
    }
}
