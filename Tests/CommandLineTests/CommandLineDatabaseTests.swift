import Foundation
import Testing
import TestKit

/// The binary against real and unreachable databases: exit 69 without hanging, and no secret
/// or e-mail address in anything it prints.
@Suite struct CommandLineDatabaseTests {
    @Test func aDatabaseOnAClosedPortExits69() throws {
        let port = try closedPort()
        let yaml = """
            database: {url: 'postgresql://sudosos@127.0.0.1:\(port)/sudosos', connect_timeout: 5s}
            services:
              gewisdb: {api_url: 'http://127.0.0.1:\(port)/api', api_key: gewisdb-key-0001}
            """
        let started = ContinuousClock.now
        let check = try SudoSOSSync.run(["check-config", "--connect"], yaml: yaml)
        #expect(check.status == 69, "\(check.stdout)\(check.stderr)")
        let lines = SudoSOSSync.lines(check.stdout)
        #expect(lines.first == "configuration OK: services gewisdb")
        #expect(lines.contains { $0.hasPrefix("database: unreachable: ") }, "\(check.stdout)")

        let once = try SudoSOSSync.run(["once", "gewisdb"], yaml: yaml)
        #expect(once.status == 69, "\(once.stdout)\(once.stderr)")
        #expect(once.stdout.contains("Outcome: failure (exit 69)"))
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test func aStoppedDatabaseExits69() throws {
        let pgbin = try TestEnvironment.require("SUDOSOS_TEST_PG_BIN")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-pg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
        let script = TestEnvironment.repositoryRoot.appendingPathComponent("scripts/lib/postgres.sh").path
        let environment = ["PG_BIN": pgbin, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        defer { _ = try? runProcess("/bin/bash", [script, "stop", dir.path + "/pg"], environment: environment) }
        let start = try runProcess("/bin/bash", [script, "start", dir.path + "/pg"], environment: environment)
        try #require(start.status == 0, "starting PostgreSQL: \(start.stderr)")
        let url = try #require(
            SudoSOSSync.lines(start.stdout).first { $0.hasPrefix("SUDOSOS_TEST_PG_URL=") }?.dropFirst("SUDOSOS_TEST_PG_URL=".count))
        let yaml = "database: {url: '\(url)', connect_timeout: 5s}\n"

        let running = try SudoSOSSync.run(["check-config", "--connect"], yaml: yaml)
        #expect(running.status == 0, "\(running.stdout)\(running.stderr)")
        #expect(running.stdout == "configuration OK: no services enabled\ndatabase: reachable\n")

        let stop = try runProcess("/bin/bash", [script, "stop", dir.path + "/pg"], environment: environment)
        try #require(stop.status == 0, "stopping PostgreSQL: \(stop.stderr)")
        let stopped = try SudoSOSSync.run(["check-config", "--connect"], yaml: yaml)
        #expect(stopped.status == 69, "\(stopped.stdout)\(stopped.stderr)")
        #expect(SudoSOSSync.lines(stopped.stdout).contains { $0.hasPrefix("database: unreachable: ") })
    }

    @Test func aReachableDatabaseChecksOK() throws {
        let database = try TemporaryDatabase.create()
        defer { database.drop() }
        let result = try SudoSOSSync.run(["check-config", "--connect"], yaml: "database: {url: '\(database.url)'}\n")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout == "configuration OK: no services enabled\ndatabase: reachable\n")
    }

    /// The secrets and addresses of the configuration and the data never reach stdout or
    /// stderr of a run, whatever its outcome, at the most talkative log level.
    @Test func aRunPrintsNoSecretOrAddress() throws {
        let database = try TemporaryDatabase.create()
        defer { database.drop() }
        try database.sql("""
            INSERT INTO "user" ("version", "firstName", "lastName", "email", "type", "active")
              VALUES (1, 'Jan', 'Jansen', 'jan.jansen@example.org', 'MEMBER', true),
                     (1, 'Piet', 'Pietersen', 'piet.pietersen@example.net', 'MEMBER', true),
                     (1, 'BAC', '', 'bac-board@example.org', 'ORGAN', true);
            INSERT INTO "member_user" ("userId", "memberId") SELECT "id", 1000 + "id" FROM "user" WHERE "type" = 'MEMBER';
            """)
        let port = try closedPort()
        let secrets = ["Db-Pa55word-7781", "Ldap-Bind-Secret-4421", "GewisDB-Api-Key-9932", "Trigger-Token-1187"]
        let addresses = ["jan.jansen@", "piet.pietersen@", "bac-board@", "sync.account@"]
        let yaml = """
            database:
              url: '\(database.url)'
              password: \(secrets[0])
            metrics: {trigger_token: \(secrets[3])}
            services:
              ldap:
                server_url: 'ldap://127.0.0.1:\(port)'
                base: 'dc=example,dc=org'
                bind_user: sync.account@example.org
                bind_pw: \(secrets[1])
              gewisdb:
                api_url: 'http://127.0.0.1:\(port)/api'
                api_key: \(secrets[2])
            """
        var outputs: [ProcessOutput] = []
        for service in ["gewisdb", "ldap"] {
            for flags in [["--dry-run"], ["--dry-run", "--json"], []] {
                outputs.append(try SudoSOSSync.run(["once", service, "--log-level", "trace"] + flags, yaml: yaml))
            }
        }
        outputs.append(try SudoSOSSync.run(["check-config", "--connect", "--log-level", "trace"], yaml: yaml))
        for output in outputs {
            #expect(!output.stdout.isEmpty || !output.stderr.isEmpty)
            for needle in secrets + addresses {
                #expect(!output.stdout.contains(needle), "\(needle) in stdout: \(output.stdout)")
                #expect(!output.stderr.contains(needle), "\(needle) in stderr: \(output.stderr)")
            }
        }
        // --json prints one JSON document whose exit code is the process's.
        let json = outputs[1]
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["exit_code"] as? Int == Int(json.status))
        #expect(object["service"] as? String == "gewisdb")
    }
}
