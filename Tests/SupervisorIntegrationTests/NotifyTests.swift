import Foundation
import Testing
import TestKit

#if canImport(Glibc)
import Glibc
#endif

extension SupervisorProcessSuites {
    /// Plays systemd: a NOTIFY_SOCKET and WATCHDOG_USEC for `sudosos-sync run`.
    @Suite struct NotifyTests {
        static let config = SupervisorHarness.yaml(
            supervisor: ["shutdown_timeout: 2s"],
            services: ["ldap": ["interval: 1h", "run_on_start: true"], "gewisdb": ["schedule: 41 1 * * *"]])
        static let script = """
            {"ldap": [[{"step": "work", "seconds": 0.3}, {"step": "exit", "code": 0}]]}
            """

        /// READY once configured and listening; STATUS naming every service and following their
        /// state; WATCHDOG=1 every half of WATCHDOG_USEC; STOPPING on SIGTERM.
        @Test func readyStatusWatchdogAndStopping() async throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let socket = try FakeNotifySocket(directory: dir)
            defer { socket.stop() }
            let sup = try SupervisorHarness(
                config: Self.config, script: Self.script, environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "1000000"])
            try await waitUntil("READY=1") { !socket.with("READY=1").isEmpty }
            let ready = try #require(socket.with("READY=1").first)
            #expect(ready.1.contains("STATUS=gewisdb: next "))
            try await waitUntil("STATUS with ldap's success", timeout: .seconds(10)) {
                socket.with("STATUS=").contains { $0.1.contains("ldap: success, next") }
            }
            // Watchdog rhythm: pings every 0.5 s.
            try await waitUntil("8 watchdog pings", timeout: .seconds(8)) { socket.with("WATCHDOG=1").count >= 8 }
            let pings = socket.with("WATCHDOG=1").map(\.0)
            let gaps = zip(pings.dropFirst(), pings).map { $0.timeIntervalSince($1) }.sorted()
            let median = gaps[gaps.count / 2]
            #expect(median > 0.4 && median < 0.65, "median gap \(median) s of \(gaps)")
            #expect(gaps.last! < 1.0, "largest gap \(gaps.last!) s (WATCHDOG_USEC is 1 s)")
            // The first message of all is READY (nothing before the configuration is loaded).
            #expect(socket.messages.first.map { $0.1.contains("READY=1") } == true)
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit() == 0)
            try await waitUntil("STOPPING=1") { !socket.with("STOPPING=1").isEmpty }
        }

        /// SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1; a bad new configuration is
        /// reported and the old one kept.
        @Test func reloadGoodAndBad() async throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let socket = try FakeNotifySocket(directory: dir)
            defer { socket.stop() }
            let sup = try SupervisorHarness(config: Self.config, script: Self.script, environment: ["NOTIFY_SOCKET": socket.path])
            try await waitUntil("READY=1") { !socket.with("READY=1").isEmpty }
            try SupervisorHarness.yaml(services: ["ldap": ["interval: 1m"], "gewisdb": ["schedule: '*/5 * * * *'"]])
                .write(to: sup.configURL, atomically: true, encoding: .utf8)
            sup.signal(SIGHUP)
            try await waitUntil("second READY=1") { socket.with("READY=1").count >= 2 }
            let reloading = try #require(socket.with("RELOADING=1").first)
            #expect(reloading.1.contains("MONOTONIC_USEC="))
            #expect(reloading.0 <= socket.with("READY=1")[1].0)
            try await sup.waitForLog("configuration reloaded")
            try "services: [ not yaml".write(to: sup.configURL, atomically: true, encoding: .utf8)
            sup.signal(SIGHUP)
            try await waitUntil("third READY=1") { socket.with("READY=1").count >= 3 }
            try await sup.waitForLog("reload failed, keeping the previous configuration")
            #expect(sup.process.isRunning)
            #expect(socket.with("STATUS=").last.map { $0.1.contains("gewisdb: next") } == true)
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit() == 0)
        }

        /// SIGSTOP freezes every thread, so it cannot tell a progress-gated watchdog from a timer
        /// that pings regardless. This stalls only the supervisor's loop: its output goes to a
        /// pipe the test stops reading while a child chatters, so the loop blocks writing the
        /// child's lines (as under a stuck journal) while the endpoint's threads run on. The pings
        /// must stop while the process is otherwise alive, and come back when the loop does.
        @Test func watchdogPingsStopWhenOnlyTheLoopStalls() async throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let socket = try FakeNotifySocket(directory: dir)
            defer { socket.stop() }
            let sup = try SupervisorHarness(
                config: Self.config,
                script: #"{"ldap": [[{"step": "chatter", "seconds": 60}]]}"#,
                environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "400000"], gatedOutput: true)
            try await waitUntil("pings") { socket.with("WATCHDOG=1").count >= 3 }
            try await sup.waitForLog("ldap: run started")
            sup.outputGate.set(false)
            // The pipe fills within about a second; then no ping for 1.5 s (7 intervals).
            try await waitUntil("the pings to stop", timeout: .seconds(10)) {
                guard let last = socket.with("WATCHDOG=1").last?.0 else { return false }
                return Date().timeIntervalSince(last) > 1.5
            }
            #expect(isAlive(sup.pid), "the process itself is alive")
            let before = socket.with("WATCHDOG=1").count
            sup.outputGate.set(true)
            try await waitUntil("pings to resume", timeout: .seconds(5)) { socket.with("WATCHDOG=1").count >= before + 2 }
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit() == 0)
        }
    }
}
