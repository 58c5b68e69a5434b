import Foundation
import Testing
import TestKit

/// `sudosos-sync once gewisdb` (the real binary) against a real `gewisdb-fake` and each engine.
@Suite(.serialized) struct GEWISDBCommandLineTests {
    /// `extra`: more keys of `services.gewisdb`; the fixture's one garbage member (8008) is one
    /// failed request in 13, so the default ratio here is 0.1.
    func once(
        _ arguments: [String], database: String, fake: FakeGEWISDB, key: String? = nil, maxDeletions: Int = 50,
        extra: [String] = ["max_failed_ratio: 0.1"]
    ) async throws -> ProcessOutput {
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
                \(extra.contains { $0.hasPrefix("request_timeout:") } ? "" : "request_timeout: 5s")
                max_deletions: \(maxDeletions)
                max_deletion_ratio: 1.0
            """ + extra.map { "\n    \($0)" }.joined()
        try Data(yaml.utf8).write(to: config)
        let environment = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
        // runChild waits off the cooperative pool (see TestKit).
        return try await runChild(
            TestEnvironment.executable("sudosos-sync"), ["once", "gewisdb", "--config", config.path] + arguments,
            environment: environment, timeout: .seconds(60))
    }

    @Test(arguments: Engine.allCases) func syncPausedExits75AndWritesNothing(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine)
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

    @Test(arguments: Engine.allCases) func forbiddenKeyExits69NamingThePermission(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine)
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

    @Test(arguments: Engine.allCases) func fullRunThroughTheBinaryMasksAddresses(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine)
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

    /// Balances decide who is deleted (cache + newer purchase: zero; a transfer: 5.00; a cached
    /// debt), a removal over the threshold is refused (65) and another process holding the
    /// lock gives 75, both writing nothing: the real binary, on each engine.
    @Test(arguments: Engine.allCases) func refusedAndLockedRunsWriteNothing(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine)
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let versions = try fixture.versions()

        let refused = try await once([], database: fixture.db.url, fake: fake, maxDeletions: 1)
        #expect(refused.status == 65, "\(refused.stdout)\(refused.stderr)")
        #expect(refused.stdout.contains("Outcome: refused (exit 65)"), "\(refused.stdout)")
        #expect(try fixture.versions() == versions && fixture.auditCount() == 0)

        let holder = try ServiceLockHolder(fixture.db, service: "gewisdb")
        try await waitUntil("the client holds the lock") { try holder.isHeld() }
        let locked = try await once([], database: fixture.db.url, fake: fake)
        holder.release()
        #expect(locked.status == 75, "\(locked.stdout)\(locked.stderr)")
        #expect(try fixture.versions() == versions && fixture.auditCount() == 0)

        let applied = try await once([], database: fixture.db.url, fake: fake)
        #expect(applied.status == 0, "\(applied.stdout)\(applied.stderr)")
        #expect(try fixture.row(8002) == "Bram|Bakker|bram@example.org|f|t|t|f|2", "zero balance: deleted")
        #expect(try fixture.row(8003) == "Cees|Visser||f|f|f|f|2", "balance 5.00: closed, not deleted")
        #expect(try fixture.row(8010) == "Jan|Dekker|jan@example.org|f|t|f|f|2", "debt: closed, not deleted")
        #expect(try fixture.db.sql("SELECT outcome FROM \(fixture.runs) ORDER BY id") == "refused\nlocked\nsuccess")
    }

    /// A 200 whose body is not JSON, or JSON of the wrong shape, is a failed request: retried
    /// (the same members fail every time) and counted toward max_failed_ratio as a 5xx is.
    /// Above it the run fails (exit 1) and writes nothing.
    @Test(arguments: ["--garbage-ratio", "--misshapen-ratio"])
    func unusableAnswersAboveTheRatioFailTheRunAndWriteNothing(_ fault: String) async throws {
        let fixture = try SyncFixture()
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture, fault, "0.3"])
        defer { fake.stop() }
        let versions = try fixture.versions()
        let result = try await once([], database: fixture.db.url, fake: fake, extra: ["max_failed_ratio: 0.05"])
        let output = result.stdout + result.stderr
        print("once gewisdb, \(fault) 0.3: exit \(result.status): \(output.split(separator: "\n").first { $0.hasPrefix("Error: ") } ?? "")")
        #expect(result.status == 1, "\(output)")
        #expect(output.contains("member requests failed"), "\(output)")
        #expect(output.contains("more than max_failed_ratio 0.05"), "\(output)")
        #expect(output.contains("HTTP 200 with an answer that is not a member"), "\(output)")
        #expect(try fixture.versions() == versions, "nothing written")
        #expect(try fixture.auditCount() == 0)
        // Every unusable answer was asked again: more member requests than members.
        let stats = try await fake.stats()
        #expect((stats["member_requests"] ?? 0) > 13, "\(stats)")
    }

    /// `once gewisdb` with `timeout: 5s` and the default request timeout (10 s) against `fake`,
    /// frozen first when `freeze`: it must end within the 5 s with exit 69, write nothing, and
    /// say what hung (`words`).
    func expectEndsWithinTimeout(_ what: String, fakeArguments: [String], freeze: Bool, words: [String]) async throws {
        let fixture = try SyncFixture()
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture] + fakeArguments)
        defer { fake.stop() }
        let versions = try fixture.versions()
        if freeze { kill(fake.process.processIdentifier, SIGSTOP) }
        defer { if freeze { kill(fake.process.processIdentifier, SIGCONT) } }
        let clock = ContinuousClock()
        let started = clock.now
        let result = try await once([], database: fixture.db.url, fake: fake, extra: ["timeout: 5s", "request_timeout: 10s"])
        let took = clock.now - started
        let output = result.stdout + result.stderr
        let error = output.split(separator: "\n").first { $0.hasPrefix("Error: ") } ?? ""
        print("once gewisdb, \(what): exit \(result.status) after \(took): \(error)")
        #expect(result.status == 69, "\(output)")
        #expect(took < .seconds(5), "took \(took)")
        for word in words + ["no answer within", "services.gewisdb.timeout (5.0s)"] {
            #expect(error.contains(word), "\(error)")
        }
        #expect(try fixture.versions() == versions, "nothing written")
    }

    /// A GEWISDB that hangs (SIGSTOPped): the health request is the one that hung.
    @Test func onceEndsWithinItsTimeoutWhenGEWISDBHangs() async throws {
        try await expectEndsWithinTimeout("frozen GEWISDB", fakeArguments: [], freeze: true, words: ["/health"])
    }

    /// A GEWISDB whose health answers but whose member answers never come (in time): the
    /// fetch ends at the run's deadline, naming the member request.
    @Test func onceEndsWithinItsTimeoutWhenMemberAnswersHang() async throws {
        try await expectEndsWithinTimeout(
            "member answers hang", fakeArguments: ["--slow-ratio", "1", "--slow-ms", "60000"], freeze: false,
            words: ["did not answer every member within services.gewisdb.timeout (5.0s)", "member 80"])
    }
}
