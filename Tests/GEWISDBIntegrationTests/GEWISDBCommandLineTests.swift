import Foundation
import Testing
import TestKit

/// `sudosos-sync once gewisdb` (the real binary) against a real `gewisdb-fake` and PostgreSQL.
@Suite(.serialized) struct GEWISDBCommandLineTests {
    func once(_ arguments: [String], database: String, fake: FakeGEWISDB, key: String? = nil) async throws -> ProcessOutput {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gewisdb-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("config.yaml")
        let yaml = """
            database: {url: '\(database)', connect_timeout: 5s}
            services:
              gewisdb:
                enabled: true
                api_url: '\(fake.apiURL)'
                api_key: '\(key ?? fake.apiKey)'
                concurrency: 4
                request_timeout: 5s
                max_deletions: 50
                max_deletion_ratio: 1.0
            """
        try Data(yaml.utf8).write(to: config)
        let environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        // runChild waits off the cooperative pool (see TestKit).
        return try await runChild(
            TestEnvironment.executable("sudosos-sync"), ["once", "gewisdb", "--config", config.path] + arguments,
            environment: environment, timeout: .seconds(60))
    }

    @Test func syncPausedExits75AndWritesNothing() async throws {
        let fixture = try SyncFixture()
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture, "--sync-paused"])
        defer { fake.stop() }
        let versions = try fixture.versions()
        let result = try await once([], database: fixture.db.url, fake: fake)
        #expect(result.status == 75, "\(result.stdout)\(result.stderr)")
        #expect((result.stdout + result.stderr).contains("sync_paused"))
        #expect(try fixture.versions() == versions)
    }

    /// Issue 11 item 7 on the real binary: no `sync_paused` in /health is exit 75, nothing written.
    @Test func healthWithoutSyncPausedExits75AndWritesNothing() async throws {
        let fixture = try SyncFixture()
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture, "--no-sync-paused-key"])
        defer { fake.stop() }
        let versions = try fixture.versions()
        let result = try await once([], database: fixture.db.url, fake: fake)
        #expect(result.status == 75, "\(result.stdout)\(result.stderr)")
        #expect((result.stdout + result.stderr).contains("without `sync_paused`"))
        #expect(try fixture.versions() == versions)
    }

    @Test func forbiddenKeyExits69NamingThePermission() async throws {
        let fixture = try SyncFixture()
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let result = try await once([], database: fixture.db.url, fake: fake, key: "not-the-key-0042")
        #expect(result.status == 69, "\(result.stdout)\(result.stderr)")
        let output = result.stdout + result.stderr
        #expect(output.contains("HTTP 403"))
        #expect(output.contains("permission"))
        #expect(!output.contains("not-the-key-0042"), "the key is never printed")
    }

    @Test func fullRunThroughTheBinaryMasksAddresses() async throws {
        let fixture = try SyncFixture()
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let dry = try await once(["--dry-run"], database: fixture.db.url, fake: fake)
        #expect(dry.status == 0, "\(dry.stdout)\(dry.stderr)")
        #expect(!(dry.stdout + dry.stderr).contains("timo@example.org"), "addresses masked without --reveal")
        #expect(try fixture.row(8000).hasSuffix("|1"), "dry run writes nothing")
        let real = try await once([], database: fixture.db.url, fake: fake)
        #expect(real.status == 0, "\(real.stdout)\(real.stderr)")
        #expect(try fixture.row(8000) == "Timo|de Teststudent|timo@example.org|t|t|f|t|2")
        let again = try await once(["--json"], database: fixture.db.url, fake: fake)
        #expect(again.status == 0)
        #expect(try fixture.row(8000).hasSuffix("|2"), "second run changes nothing")
    }
}
