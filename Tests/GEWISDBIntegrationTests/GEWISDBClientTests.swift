import Foundation
import Logging
import Testing

@testable import GEWISDBSource
import SyncEngine
import TestKit

/// Counts what a run reports (source requests, heartbeats).
final class CountingReporter: RunReporter, @unchecked Sendable {
    private let lock = NSLock()
    private var ok = 0
    private var errors = 0
    func heartbeat(phase: String) {}
    func sourceRequest(ok: Bool, seconds: Double) {
        lock.withLock { if ok { self.ok += 1 } else { self.errors += 1 } }
    }
    var counts: (ok: Int, errors: Int) { lock.withLock { (ok, errors) } }
}

func settings(
    _ fake: FakeGEWISDB, key: String? = nil, concurrency: Int = 8, timeout: Duration = .seconds(5),
    maxFailedRatio: Double = 0.05, attempts: Int = 3
) -> GEWISDBSettings {
    GEWISDBSettings(
        apiURL: fake.apiURL, apiKey: key ?? fake.apiKey, concurrency: concurrency, requestTimeout: timeout,
        maxFailedRatio: maxFailedRatio, maxAttempts: attempts)
}

func context(_ reporter: any RunReporter = SilentReporter()) -> RunContext {
    RunContext(logger: Logger(label: "test"), reporter: reporter, dryRun: false)
}

/// The HTTP client against a real `gewisdb-fake` process.
@Suite(.serialized) struct GEWISDBClientTests {
    @Test func healthyServerPasses() async throws {
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let reporter = CountingReporter()
        try await GEWISDBClient(settings: settings(fake)).checkHealth(reporter: reporter)
        #expect(reporter.counts.ok == 1)
    }

    @Test func syncPausedAndUnhealthyAreNotReady() async throws {
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture, "--sync-paused"])
        defer { fake.stop() }
        let client = try GEWISDBClient(settings: settings(fake))
        let paused = await #expect(throws: SyncError.self) { try await client.checkHealth(reporter: SilentReporter()) }
        #expect(paused?.kind == .notReady)
        #expect(paused?.message.contains("sync_paused") == true)
        // Flipped at run time through the admin path.
        try await fake.set("sync_paused=false&healthy=false")
        let unhealthy = await #expect(throws: SyncError.self) { try await client.checkHealth(reporter: SilentReporter()) }
        #expect(unhealthy?.kind == .notReady)
        try await fake.set("healthy=true")
        try await client.checkHealth(reporter: SilentReporter())
    }

    /// Issue 11 item 7: as the original, an answer without `sync_paused` is not ready.
    @Test func healthWithoutSyncPausedIsNotReady() async throws {
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture, "--no-sync-paused-key"])
        defer { fake.stop() }
        let client = try GEWISDBClient(settings: settings(fake))
        let error = await #expect(throws: SyncError.self) { try await client.checkHealth(reporter: SilentReporter()) }
        #expect(error?.kind == .notReady)
        #expect(error?.exitCode.rawValue == 75)
        #expect(error?.message.contains("without `sync_paused`") == true)
        try await fake.set("sync_paused=false")
        try await client.checkHealth(reporter: SilentReporter())
    }

    @Test func wrongKeyNamesThePermissionProblem() async throws {
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let client = try GEWISDBClient(settings: settings(fake, key: "wrong-key"))
        let error = await #expect(throws: SyncError.self) { try await client.checkHealth(reporter: SilentReporter()) }
        #expect(error?.kind == .unavailable)
        #expect(error?.exitCode == .unavailable)
        #expect(error?.message.contains("HTTP 403") == true)
        #expect(error?.message.contains("HealthR") == true)
        #expect(error?.message.contains("wrong-key") == false, "the key is never in a message")
        let members = await #expect(throws: SyncError.self) {
            _ = try await client.fetchMembers([8000, 8001], concurrency: 2, maxFailedRatio: 0.05, context: context())
        }
        #expect(members?.kind == .unavailable)
        #expect(members?.message.contains("MembersR") == true)
    }

    @Test func unreachableServerIsUnavailable() async throws {
        let fake = try await FakeGEWISDB.start([])
        let s = settings(fake, timeout: .seconds(2), attempts: 2)
        fake.stop()
        let error = await #expect(throws: SyncError.self) {
            try await GEWISDBClient(settings: s, backoffBase: .milliseconds(10)).checkHealth(reporter: SilentReporter())
        }
        #expect(error?.kind == .unavailable)
    }

    @Test func answersOfTheFixture() async throws {
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let reporter = CountingReporter()
        let client = try GEWISDBClient(settings: settings(fake), backoffBase: .milliseconds(10))
        let answers = try await client.fetchMembers(
            [8000, 8001, 8008, 8009, 9999], concurrency: 4, maxFailedRatio: 0.5, context: context(reporter))
        guard case .found(let timo) = answers[8000] else {
            Issue.record("8000: \(String(describing: answers[8000]))")
            return
        }
        #expect(timo.middleName == .value("de"))
        guard case .found(let anna) = answers[8001] else {
            Issue.record("8001: \(String(describing: answers[8001]))")
            return
        }
        #expect(anna.email == .null)
        guard case .unparsable = answers[8008] else {
            Issue.record("8008 (garbage): \(String(describing: answers[8008]))")
            return
        }
        guard case .found = answers[8009] else {
            Issue.record("8009 (flaky, retried): \(String(describing: answers[8009]))")
            return
        }
        #expect(answers[9999] == .notFound)
        // One retry for the flaky member; the garbage 200 is a failed attempt each of its three
        // times (like a 5xx): eight requests, four of them errors.
        #expect(reporter.counts.ok == 4)
        #expect(reporter.counts.errors == 4)
    }

    /// JSON of the wrong shape in a 200 (gewisdb-fake `--misshapen-ratio`): each such member is
    /// asked `max_attempts` times, every attempt an error, and ends `unparsable`; they count
    /// toward max_failed_ratio, so over it the fetch fails.
    @Test func misshapenAnswersAreFailedRequestsRetriedAndCounted() async throws {
        let fake = try await FakeGEWISDB.start(["--generate", "40", "--misshapen-ratio", "0.3"])
        defer { fake.stop() }
        let reporter = CountingReporter()
        let client = try GEWISDBClient(settings: settings(fake), backoffBase: .milliseconds(10))
        let members = Array(1...40)
        let answers = try await client.fetchMembers(members, concurrency: 4, maxFailedRatio: 1, context: context(reporter))
        let misshapen = members.filter { if case .unparsable = answers[$0] { return true } else { return false } }
        #expect(!misshapen.isEmpty && misshapen.count < 40, "\(misshapen.count) misshapen")
        for lidnr in misshapen {
            guard case .unparsable(let detail) = answers[lidnr] else { continue }
            #expect(detail == "HTTP 200 with an answer that is not a member: the answer has no data object", "\(detail)")
        }
        #expect(reporter.counts.errors == misshapen.count * 3, "three attempts each")
        #expect(reporter.counts.ok == 40 - misshapen.count)
        await #expect(throws: SyncError.self) {
            _ = try await client.fetchMembers(members, concurrency: 4, maxFailedRatio: 0.05, context: context())
        }
    }

    @Test func slowAndDroppedAnswersFailAfterTheirAttempts() async throws {
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture, "--slow-ms", "3000"])
        defer { fake.stop() }
        let reporter = CountingReporter()
        let client = try GEWISDBClient(
            settings: settings(fake, timeout: .milliseconds(500), attempts: 2), backoffBase: .milliseconds(10))
        let clock = ContinuousClock()
        let started = clock.now
        let answers = try await client.fetchMembers([8012, 8013], concurrency: 2, maxFailedRatio: 1, context: context(reporter))
        guard case .failed(let slow) = answers[8013], case .failed(let dropped) = answers[8012] else {
            Issue.record("expected two failures, got \(answers)")
            return
        }
        #expect(slow.contains("no answer within 0.5s"), "\(slow)")
        #expect(!dropped.isEmpty)
        let elapsed = clock.now - started
        // Two attempts of 0.5 s; URLSession's own backstop (2 s per attempt) would take 4 s.
        #expect(elapsed < .seconds(3.5), "two attempts of 0.5 s (took \(elapsed))")
        #expect(elapsed >= .milliseconds(950), "each attempt waits its full 0.5 s (took \(elapsed))")
        #expect(reporter.counts.ok == 0)
        #expect(reporter.counts.errors == 4, "every attempt is reported")
    }

    @Test func basicCredentialsWhenNoKey() async throws {
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture, "--basic", "sudosos:pw-0001"])
        defer { fake.stop() }
        let basic = GEWISDBSettings(apiURL: fake.apiURL, basicUser: "sudosos", basicPassword: "pw-0001")
        try await GEWISDBClient(settings: basic).checkHealth(reporter: SilentReporter())
        let wrong = GEWISDBSettings(apiURL: fake.apiURL, basicUser: "sudosos", basicPassword: "nope")
        let error = await #expect(throws: SyncError.self) {
            try await GEWISDBClient(settings: wrong).checkHealth(reporter: SilentReporter())
        }
        #expect(error?.kind == .unavailable)
    }

    @Test func latencyFlippedAtRunTimeTripsTheTimeout() async throws {
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let client = try GEWISDBClient(settings: settings(fake, timeout: .milliseconds(500), attempts: 1))
        _ = try await client.fetchMembers([8000], concurrency: 1, maxFailedRatio: 0, context: context())
        try await fake.set("latency_ms=2000")
        let answers = try await client.fetchMembers([8000], concurrency: 1, maxFailedRatio: 1, context: context())
        guard case .failed = answers[8000] else {
            Issue.record("expected a timeout, got \(String(describing: answers[8000]))")
            return
        }
    }

    @Test func failuresAboveTheRatioFailTheFetch() async throws {
        let fake = try await FakeGEWISDB.start(["--generate", "200", "--fail-ratio", "0.2"])
        defer { fake.stop() }
        let client = try GEWISDBClient(settings: settings(fake, attempts: 2), backoffBase: .milliseconds(5))
        let error = await #expect(throws: SyncError.self) {
            _ = try await client.fetchMembers(Array(1...200), concurrency: 8, maxFailedRatio: 0.05, context: context())
        }
        #expect(error?.kind == .failed)
        #expect(error?.message.contains("max_failed_ratio") == true)
        // Below the ratio the fetch completes and the failures are answers.
        try await fake.set("fail_ratio=0.02")
        let answers = try await client.fetchMembers(Array(1...200), concurrency: 8, maxFailedRatio: 0.05, context: context())
        let failed = answers.values.filter { if case .failed = $0 { return true } else { return false } }.count
        #expect(failed > 0 && failed <= 10)
    }

    @Test func concurrentRequestsReuseConnections() async throws {
        let fake = try await FakeGEWISDB.start(["--generate", "400", "--latency-ms", "10"])
        defer { fake.stop() }
        let client = try GEWISDBClient(settings: settings(fake, concurrency: 8))
        let answers = try await client.fetchMembers(Array(1...400), concurrency: 8, maxFailedRatio: 0, context: context())
        #expect(answers.count == 400)
        #expect(answers.values.allSatisfy { if case .found = $0 { return true } else { return false } })
        let stats = try await fake.stats()
        // The server saw up to 8 requests at once (10 ms each keeps them overlapping even on a
        // loaded machine), never more.
        #expect((stats["max_in_flight"] ?? 0) >= 4, "requests run concurrently: \(stats)")
        #expect((stats["max_in_flight"] ?? 99) <= 8, "at most `concurrency` requests in flight: \(stats)")
        // libcurl replaces a connection now and then (about one per ten requests seen here), but
        // most requests reuse a kept-alive one.
        #expect((stats["connections"] ?? 999) < 200, "connections are kept alive and reused: \(stats)")
    }
}
