import Foundation
import TestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real supervisor (`sudosos-sync run`, its real child processes and backoff) scraped by
/// the real Prometheus with the repository's configuration and rules: once with real GEWISDB
/// runs (gewisdb-fake and a throwaway SudoSOS database), once with children whose results are
/// scripted (the test-only worker `sudosos-sync-testchild`, `run --worker-executable`):
/// successes, a failure, a crash (SIGKILL), so outcomes, restarts and backoff move too.
@Suite(.serialized) struct SupervisorEndToEndTests {
    /// Real runs: `sudosos-sync run --config` syncing GEWISDB (gewisdb-fake with the
    /// repository's fixture) into a SudoSOS database every 2 s.
    @Test(.timeLimit(.minutes(3))) func realGEWISDBRunsAgainstRealPrometheus() async throws {
        let work = try TemporaryDirectory()
        defer { work.remove() }
        let database = try TemporaryDatabase.create()
        defer { database.drop() }
        // Two members of the fixture as SudoSOS users: 8000 out of date (updated by the first
        // run), 8001 in step.
        for (member, first, last) in [(8000, "Tim", "Teststudent"), (8001, "Anna", "Jansen")] {
            let id = try database.sql(
                """
                INSERT INTO "user" (version, "firstName", "lastName", type, email, active, "ofAge", "canGoIntoDebt")
                VALUES (1, '\(first)', '\(last)', 'MEMBER', '', true, true, true) RETURNING id
                """)
            try database.sql(#"INSERT INTO member_user ("userId", "memberId") VALUES (\#(id), \#(member))"#)
        }
        let members = TestEnvironment.repositoryRoot.appendingPathComponent("fixtures/gewisdb/members.json").path
        let fake = try await ServedProcess.start(
            TestEnvironment.executable("gewisdb-fake"),
            ["--port", "0", "--api-key", "e2e-key-0417", "--members", members], readyPrefix: "listening on 127.0.0.1:")
        defer { fake.stop() }
        let fakePort = try #require(Int(fake.readyLine.dropFirst("listening on 127.0.0.1:".count)))
        let port = try freeLoopbackPort()
        let config = work.url.appendingPathComponent("config.yaml")
        try """
            database: {url: '\(database.url)', connect_timeout: 5s}
            metrics: {listen: '127.0.0.1:\(port)'}
            supervisor: {shutdown_timeout: 5s}
            services:
              gewisdb:
                enabled: true
                interval: 2s
                run_on_start: true
                timeout: 60s
                api_url: 'http://127.0.0.1:\(fakePort)/api'
                concurrency: 4
                request_timeout: 5s
                max_deletion_ratio: 1.0
            """.write(to: config, atomically: true, encoding: .utf8)
        let supervisor = try await Self.startSupervisor(
            ["run", "--config", config.path], environment: ["GEWISDB_API_KEY": "e2e-key-0417"], port: port, in: work.url)
        defer { supervisor.stop() }

        try await PrometheusEndToEndTests.checkDashboardAndAlerts(
            targetPort: port, services: ["gewisdb"], in: work.url, minimumRuns: ["gewisdb": 2]
        ) { api in
            let successes = try await api.query(#"sudosos_sync_runs_total{service="gewisdb",outcome="success"} >= 1"#)
            let requests = try await api.query(#"sudosos_sync_source_requests_total{service="gewisdb",result="ok"} > 0"#)
            let entities = try await api.query(#"sum(sudosos_sync_entities_total{service="gewisdb"}) > 0"#)
            #expect(!successes.isEmpty, "no successful GEWISDB run")
            #expect(!requests.isEmpty, "no source requests reported")
            let updates = try await api.query(#"sudosos_sync_changes_total{service="gewisdb",action="updated"} >= 1"#)
            #expect(!entities.isEmpty, "no entities counted")
            #expect(!updates.isEmpty, "the out-of-date user was not updated")
        }
        supervisor.stop()
        #expect(supervisor.process.terminationStatus == 0)
    }

    /// Starts `sudosos-sync` with `arguments`, its output in `directory`, and waits until its
    /// endpoint answers on `port`.
    static func startSupervisor(
        _ arguments: [String], environment: [String: String], port: Int, in directory: URL
    ) async throws -> ServedProcess {
        let log = directory.appendingPathComponent("supervisor.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.executable("sudosos-sync"))
        process.arguments = arguments
        process.environment = ["PATH": "/usr/bin:/bin"].merging(environment) { $1 }
        process.currentDirectoryURL = directory
        process.standardInput = FileHandle.nullDevice
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let supervisor = ServedProcess.adopt(process)
        do {
            try await waitUntil("the supervisor's endpoint answers", timeout: .seconds(30)) {
                guard process.isRunning else {
                    throw TestFailure(description: "sudosos-sync exited: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
                }
                return (try? await RawHTTPClient(port: port, timeout: .seconds(1)).request("GET", "/healthz").status) == 200
            }
        } catch {
            supervisor.stop()
            throw error
        }
        return supervisor
    }

    @Test(.timeLimit(.minutes(3))) func scriptedChildrenAgainstRealPrometheus() async throws {
        let work = try TemporaryDirectory()
        defer { work.remove() }
        let port = try freeLoopbackPort()
        let success = #"[{"step":"work","seconds":0.3},{"step":"exit","code":0}]"#
        let failure = #"[{"step":"work","seconds":0.2},{"step":"exit","code":1}]"#
        let crash = #"[{"step":"work","seconds":0.1},{"step":"crash"}]"#
        // The worker plays testchild.json in its working directory (the supervisor's).
        try """
            {"ldap": [\(success), \(failure), \(crash), \(success)], "gewisdb": [\(success)]}
            """.write(to: work.url.appendingPathComponent("testchild.json"), atomically: true, encoding: .utf8)
        let configFile = work.url.appendingPathComponent("config.yaml")
        try """
            database: {url: 'postgresql://sudosos@127.0.0.1:1/sudosos'}
            metrics: {listen: '127.0.0.1:\(port)'}
            supervisor:
              shutdown_timeout: 5s
              backoff: {initial: 500ms, max: 1s, jitter: 0}
            services:
              ldap: {enabled: true, interval: 2s, run_on_start: true, timeout: 20s,
                     server_url: 'ldap://127.0.0.1:1', base: 'dc=example,dc=org'}
              gewisdb: {enabled: true, interval: 3s, run_on_start: true, timeout: 20s,
                        api_url: 'http://127.0.0.1:1/api', api_key: test-key}
            """.write(to: configFile, atomically: true, encoding: .utf8)
        let supervisor = try await Self.startSupervisor(
            ["run", "--config", configFile.path, "--worker-executable", TestEnvironment.executable("sudosos-sync-testchild")],
            environment: [:], port: port, in: work.url)
        defer { supervisor.stop() }

        try await PrometheusEndToEndTests.checkDashboardAndAlerts(
            targetPort: port, services: ["ldap", "gewisdb"], in: work.url,
            minimumRuns: ["ldap": 4, "gewisdb": 1]
        ) { api in
            // The scripted crash and failure went through the real child and backoff paths.
            let crashes = try await api.query(#"sudosos_sync_runs_total{service="ldap",outcome="crash"} >= 1"#)
            let failures = try await api.query(#"sudosos_sync_runs_total{service="ldap",outcome="failure"} >= 1"#)
            let restarts = try await api.query(#"sudosos_sync_child_restarts_total{service="ldap"} >= 1"#)
            let rss = try await api.query(#"sudosos_sync_child_max_rss_bytes > 1000000"#)
            let successes = try await api.query(#"sudosos_sync_last_success_timestamp_seconds{service="gewisdb"} > 0"#)
            #expect(!crashes.isEmpty && !failures.isEmpty && !restarts.isEmpty)
            #expect(rss.count == 2)
            #expect(!successes.isEmpty)
        }
        supervisor.stop()
        #expect(supervisor.process.terminationStatus == 0)
    }
}
