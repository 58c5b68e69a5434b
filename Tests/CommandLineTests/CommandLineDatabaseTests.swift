import Foundation
import Testing
import TestKit

/// The binary against real and unreachable databases: exit 69 without hanging, and no secret
/// or e-mail address in anything it prints.
/// Serialized: each test starts processes, and a burst of them in parallel on 2 cores upsets
/// the timing tests of other suites.
@Suite(.serialized) struct CommandLineDatabaseTests {
    @Test(arguments: Engine.allCases) func aDatabaseOnAClosedPortExits69(_ engine: Engine) async throws {
        let port = try closedPort()
        let scheme = engine == .postgres ? "postgresql" : "mariadb"
        let yaml = """
            database: {url: '\(scheme)://sudosos@127.0.0.1:\(port)/sudosos', connect_timeout: 5s}
            services:
              gewisdb: {api_url: 'http://127.0.0.1:\(port)/api', api_key: gewisdb-key-0001}
            """
        let started = ContinuousClock.now
        let check = try await SudoSOSSync.run(["check-config", "--connect"], yaml: yaml)
        #expect(check.status == 69, "\(check.stdout)\(check.stderr)")
        let lines = SudoSOSSync.lines(check.stdout)
        #expect(lines.first == "configuration OK: services gewisdb")
        #expect(lines.contains { $0.hasPrefix("database: unreachable: ") }, "\(check.stdout)")

        let once = try await SudoSOSSync.run(["once", "gewisdb"], yaml: yaml)
        #expect(once.status == 69, "\(once.stdout)\(once.stderr)")
        #expect(once.stdout.contains("Outcome: failure (exit 69)"))
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    /// A private server (stopping the shared one would stall every other test): reachable,
    /// then frozen with SIGSTOP (a hung host: the connect timeout must end the wait), then shut
    /// down (connection refused). Both unreachable states exit 69.
    @Test func aStoppedDatabaseExits69() async throws {
        let server = try await PrivateServer.start()
        let yaml = "database: {url: '\(server.url)', connect_timeout: 2s}\n"

        let running = try await SudoSOSSync.run(["check-config", "--connect"], yaml: yaml)
        #expect(running.status == 0, "\(running.stdout)\(running.stderr)")
        #expect(running.stdout.hasPrefix("configuration OK: no services enabled\ndatabase: reachable (PostgreSQL, server "))

        try await Self.frozenThenStoppedExit69(yaml: yaml, pid: try server.postmasterPID()) { await server.shutDown() }
    }

    /// SIGSTOP (a hung host: the connect timeout must end the wait), then shut down (connection
    /// refused): both exit 69 with `database: unreachable`.
    static func frozenThenStoppedExit69(yaml: String, pid: pid_t, shutDown: () async -> Void) async throws {
        #expect(kill(pid, SIGSTOP) == 0)
        let started = ContinuousClock.now
        let frozen = try await SudoSOSSync.run(["check-config", "--connect"], yaml: yaml)
        let waited = ContinuousClock.now - started
        kill(pid, SIGCONT)
        #expect(frozen.status == 69, "\(frozen.stdout)\(frozen.stderr)")
        #expect(SudoSOSSync.lines(frozen.stdout).contains { $0.hasPrefix("database: unreachable: ") })
        #expect(waited < .seconds(15), "took \(waited): the connect timeout was not honoured")

        await shutDown()
        let stopped = try await SudoSOSSync.run(["check-config", "--connect"], yaml: yaml)
        #expect(stopped.status == 69, "\(stopped.stdout)\(stopped.stderr)")
        #expect(SudoSOSSync.lines(stopped.stdout).contains { $0.hasPrefix("database: unreachable: ") })
    }

    /// The same on MariaDB: reachable, frozen with SIGSTOP (the connect timeout ends the wait:
    /// Connector/C bounds the greeting by it), stopped (connection refused): 69 both times.
    @Test func aStoppedMariaDBExits69() async throws {
        let server = try await PrivateMariaDB.start()
        let yaml = "database: {url: '\(server.url)', connect_timeout: 2s}\n"
        let running = try await SudoSOSSync.run(["check-config", "--connect"], yaml: yaml)
        #expect(running.status == 0, "\(running.stdout)\(running.stderr)")
        #expect(running.stdout.hasPrefix("configuration OK: no services enabled\ndatabase: reachable (MariaDB/MySQL, server 1"))

        try await Self.frozenThenStoppedExit69(yaml: yaml, pid: server.pid) { await server.shutDown() }
        let once = try await SudoSOSSync.run(["once", "gewisdb"], yaml: yaml + "services:\n  gewisdb: {api_url: 'http://127.0.0.1:9/api', api_key: k-0001}\n")
        #expect(once.status == 69, "\(once.stdout)\(once.stderr)")
        #expect(once.stdout.contains("Outcome: failure (exit 69)"))
    }

    /// `check-config --connect` names the engine and the server's version.
    @Test(arguments: Engine.allCases) func aReachableDatabaseChecksOK(_ engine: Engine) async throws {
        let database = try TemporaryDatabase.create(engine)
        defer { database.drop() }
        let result = try await SudoSOSSync.run(["check-config", "--connect"], yaml: "database: {url: '\(database.url)'}\n")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let name = engine == .postgres ? "PostgreSQL" : "MariaDB/MySQL"
        #expect(result.stdout.hasPrefix("configuration OK: no services enabled\ndatabase: reachable (\(name), server "), "\(result.stdout)")
    }

    /// `check-config --connect` makes the schema check every run makes: supported on the
    /// oldest and the newest fixture schema (naming the newest migration and the variant), and
    /// a schema whose transfer column is not `amountInclVat` refused with exit 78.
    @Test func checkConfigChecksTheSudoSOSSchema() async throws {
        let key = "gewisdb-key-0001"
        let fake = try await GEWISDBFake.start(apiKey: key)
        defer { fake.stop() }
        func check(_ database: TemporaryDatabase) async throws -> ProcessOutput {
            try await SudoSOSSync.run(
                ["check-config", "--connect"],
                yaml: "database: {url: '\(database.url)'}\nservices:\n  gewisdb: {api_url: '\(fake.apiURL)', api_key: \(key)}\n")
        }
        for (schema, line) in [
            (SudoSOSTestSchema.oldest, "InitialSQLMigration1743601882766; gewis_user, member_authenticator, acceptedToS"),
            (.newest, "AddProductSelfServiceToUser1785401380818; member_user, organ_membership, tosRequired"),
        ] {
            let database = try TemporaryDatabase.create(schema: schema)
            defer { database.drop() }
            let result = try await check(database)
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(SudoSOSSync.lines(result.stdout).contains("schema: supported (newest migration recorded: \(line))"), "\(result.stdout)")
        }

        let newest = try TemporaryDatabase.create(schema: .newest)
        defer { newest.drop() }
        try newest.sql(#"ALTER TABLE transfer RENAME COLUMN "amountInclVat" TO amount"#)
        let refused = try await check(newest)
        #expect(refused.status == 78, "\(refused.stdout)\(refused.stderr)")
        #expect(SudoSOSSync.lines(refused.stdout).contains {
            $0.hasPrefix("schema: SudoSOS schema not supported: table transfer has no column amountInclVat (newest migration recorded: AddProductSelfServiceToUser1785401380818")
        }, "\(refused.stdout)")
    }

    /// The secrets and addresses of the configuration and the data never reach stdout or
    /// stderr of a run, whatever its outcome, at the most talkative log level.
    @Test func aRunPrintsNoSecretOrAddress() async throws {
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
                outputs.append(try await SudoSOSSync.run(["once", service, "--log-level", "trace"] + flags, yaml: yaml))
            }
        }
        outputs.append(try await SudoSOSSync.run(["check-config", "--connect", "--log-level", "trace"], yaml: yaml))
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
