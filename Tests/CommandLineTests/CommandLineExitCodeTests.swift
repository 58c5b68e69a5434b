import Foundation
import Testing
import TestKit

/// The binary's exit codes and messages for bad configurations and bad command lines.
/// Serialized: each test starts processes, and a burst of them in parallel on 2 cores upsets
/// the timing tests of other suites.
@Suite(.serialized) struct CommandLineExitCodeTests {
    /// The database part of a configuration that is otherwise fine.
    static let database = "database:\n  url: postgresql://sudosos@127.0.0.1:1/sudosos\n"

    /// A bad configuration, and the key path the one-line message must start with.
    @Test(arguments: [
        (database + "services:\n  ldap:\n    interval: 15x\n    server_url: ldap://h\n    base: dc=x",
         #"services.ldap.interval: "15x" is not a duration (use 500ms, 30s, 15m, 2h)"#),
        (database + "services:\n  ldap:\n    server_url: ldap://h\n    base: dc=x\n    colour: blue",
         "services.ldap.colour: unknown key"),
        (database + "services:\n  ldap:\n    server_url: ldap://h\n    base: dc=x\n    schedule: '*/5 * * * *'\n    interval: 5m",
         "services.ldap: has both schedule and interval"),
        (database + "services:\n  ldap:\n    base: dc=x",
         "services.ldap.server_url: missing"),
        (database + "services:\n  ldap:\n    server_url: ldap://h\n    base: dc=x\n    max_deletion_ratio: 2",
         #"services.ldap.max_deletion_ratio: "2" must be between 0.0 and 1.0"#),
        (database + "services:\n  ldap:\n    server_url: ldap://h\n    base: dc=x\n    bind_user: cn=a\n",
         "services.ldap.bind_pw: missing"),
        ("services:\n  ldap:\n    server_url: ldap://h\n    base: dc=x",
         "database.url: missing"),
        (database + "services:\n  ldap: {server_url: ldap://h, base: dc=x, bind_user: cn=a, bind_pw: [hunter2-in-list]}",
         "services.ldap.bind_pw: must be a single value"),
        ("services: [\n", "config.yaml: line"),
    ])
    func aBadConfigurationExits78WithOneLine(yaml: String, expected: String) async throws {
        let once = try await SudoSOSSync.run(["once", "ldap"], yaml: yaml)
        #expect(once.status == 78, "stderr: \(once.stderr)")
        let lines = SudoSOSSync.lines(once.stderr)
        #expect(lines.count == 1, "stderr: \(once.stderr)")
        #expect(lines.first?.contains(" ERROR ") == true)
        #expect(lines.first?.contains(expected) == true, "got: \(once.stderr)")
        #expect(once.stdout.isEmpty)
        #expect(!once.stderr.contains("hunter2"))

        let check = try await SudoSOSSync.run(["check-config"], yaml: yaml)
        #expect(check.status == 78)
        #expect(SudoSOSSync.lines(check.stdout).contains { $0.contains(expected) }, "got: \(check.stdout)")
        #expect(!check.stdout.contains("hunter2"))
    }

    @Test func aBadVariableIsNamedWithItsKey() async throws {
        let result = try await SudoSOSSync.run(
            ["once", "gewisdb"], environment: [
                "SUDOSOS_SYNC_DATABASE_URL": "postgresql:///x", "GEWISDB_API_URL": "ftp://gewisdb.example.org",
                "GEWISDB_API_KEY": "k-secret-123",
            ])
        #expect(result.status == 78)
        #expect(result.stderr.contains(#"services.gewisdb.api_url (from GEWISDB_API_URL): "ftp://gewisdb.example.org" is not a URL"#))
        #expect(!result.stderr.contains("k-secret-123"))
    }

    @Test func aMissingFileIsAConfigurationError() async throws {
        let result = try await SudoSOSSync.run(["check-config", "--config", "/nonexistent/sudosos-sync.yaml"])
        #expect(result.status == 78)
        #expect(result.stdout == "/nonexistent/sudosos-sync.yaml: no such file\n")
    }

    @Test func underSystemdLinesCarryThePriority() async throws {
        let result = try await SudoSOSSync.run(
            ["once", "ldap"], yaml: Self.database + "services:\n  ldap:\n    interval: soon",
            environment: ["JOURNAL_STREAM": "8:12345"])
        #expect(result.status == 78)
        #expect(result.stderr.hasPrefix("<3>services.ldap.interval: \"soon\" is not a duration"), "\(result.stderr)")
    }

    @Test func aBadLogLevelVariableIsAConfigurationError() async throws {
        let result = try await SudoSOSSync.run(["check-config"], yaml: "", environment: ["SUDOSOS_SYNC_LOG_LEVEL": "loud"])
        #expect(result.status == 78)
        #expect(result.stderr.contains("SUDOSOS_SYNC_LOG_LEVEL: \"loud\" is not a log level"))
    }

    @Test func aDisabledOrUnconfiguredServiceCannotRunOnce() async throws {
        let disabled = try await SudoSOSSync.run(["once", "ldap"], yaml: Self.database + "services:\n  ldap:\n    enabled: false")
        #expect(disabled.status == 78)
        #expect(disabled.stderr.contains("services.ldap.enabled: the service is disabled"))
        let missing = try await SudoSOSSync.run(["once", "gewisdb"], yaml: Self.database)
        #expect(missing.status == 78)
        #expect(missing.stderr.contains("services.gewisdb: not configured"))
    }

    @Test func aGoodConfigurationChecksOK() async throws {
        let yaml = Self.database + """
            services:
              ldap: {interval: 15m, server_url: 'ldap://127.0.0.1:1', base: 'dc=example,dc=org'}
              gewisdb: {schedule: '41 1 * * *', api_url: 'http://127.0.0.1:1/api', api_key: key-1234}
            """
        let result = try await SudoSOSSync.run(["check-config"], yaml: yaml)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout == "configuration OK: services gewisdb, ldap\n")
    }

    /// examples/config.yaml stays valid (keys renamed in the loader but not in the example
    /// would fail here); its secrets come from the environment, as the example says.
    @Test func theExampleConfigurationIsValid() async throws {
        let example = TestEnvironment.repositoryRoot.appendingPathComponent("examples/config.yaml").path
        let without = try await SudoSOSSync.run(["check-config", "--config", example])
        #expect(without.status == 78)
        #expect(SudoSOSSync.lines(without.stdout).count == 2)
        let result = try await SudoSOSSync.run(
            ["check-config", "--config", example], environment: ["LDAP_BIND_PW": "pw-1234", "GEWISDB_API_KEY": "key-1234"])
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stdout == "configuration OK: services gewisdb, ldap\n")
    }

    @Test(arguments: [
        ["once"], ["once", "ftp"], ["frobnicate"], ["once", "ldap", "--bogus"], ["once", "ldap", "extra"],
        ["check-config", "--log-level", "loud"], ["check-config", "--config"],
    ])
    func aBadCommandLineExits64(arguments: [String]) async throws {
        let result = try await SudoSOSSync.run(arguments)
        #expect(result.status == 64, "\(arguments): \(result.stderr)")
        #expect(result.stderr.contains("Error:") || result.stderr.contains("Usage:"))
    }
}
