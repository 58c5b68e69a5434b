import Foundation
import Logging
import Observability
import Synchronization
import SyncEngine
import TestKit
import Testing

/// The endpoint over real loopback sockets: the paths of interface.md, and what it does to
/// clients that misbehave.
@Suite(.serialized) struct HTTPEndpointTests {
    /// An endpoint on a free loopback port, stopped when `body` ends.
    private func withEndpoint(
        limits: HTTPEndpoint.Limits = HTTPEndpoint.Limits(), token: String? = nil, trustLoopback: Bool = true,
        control: FakeSupervisorControl = FakeSupervisorControl(),
        _ body: (_ port: Int, _ control: FakeSupervisorControl, _ metrics: SyncMetrics) async throws -> Void
    ) async throws {
        let metrics = SyncMetrics(services: ["ldap", "gewisdb"], version: "9.9.9-test")
        let endpoint = HTTPEndpoint(
            host: "127.0.0.1", port: 0, metrics: metrics, control: control, triggerToken: token,
            logger: Logger(label: "test"), limits: limits, trustLoopback: trustLoopback)
        let port = try await endpoint.start()
        #expect(port > 0)
        do {
            try await body(port, control, metrics)
        } catch {
            await endpoint.stop()
            throw error
        }
        await endpoint.stop()
    }

    @Test func metricsServesTheExposition() async throws {
        try await withEndpoint { port, _, metrics in
            metrics.runFinished(
                service: "ldap", outcome: .refused, durationSeconds: 3, summary: nil, childCPUSeconds: 0,
                childMaxRSSBytes: 0)
            let client = try RawHTTPClient(port: port)
            let response = try await client.request("GET", "/metrics")
            #expect(response.status == 200)
            #expect(response.header("content-type") == "text/plain; version=0.0.4; charset=utf-8")
            #expect(response.body.contains(#"sudosos_sync_runs_total{service="ldap",outcome="refused"} 1"#))
            #expect(response.body.contains(#"sudosos_sync_runs_total{service="gewisdb",outcome="success"} 0"#))
            #expect(response.body.contains(#"sudosos_sync_build_info{version="9.9.9-test",revision="unknown",swift_version="unknown"} 1.0"#))
            #expect(response.body.contains("\nprocess_resident_memory_bytes "))
            // Keep-alive: a second request on the same connection.
            let again = try await client.request("GET", "/metrics")
            #expect(again.status == 200 && again.header("connection") == "keep-alive")
        }
    }

    @Test func healthzFollowsTheSupervisorLoop() async throws {
        try await withEndpoint { port, control, _ in
            let client = try RawHTTPClient(port: port)
            let alive = try await client.request("GET", "/healthz")
            #expect(alive.status == 200 && alive.body == "ok\n")
            control.state.withLock { $0.loopAlive = false }
            let stalled = try await client.request("GET", "/healthz")
            #expect(stalled.status == 503)
        }
    }

    @Test func statusIsTheJSONReport() async throws {
        try await withEndpoint { port, control, _ in
            let response = try await RawHTTPClient(port: port).request("GET", "/status")
            #expect(response.status == 200)
            #expect(response.header("content-type") == "application/json")
            let report = try StatusReport.decodeJSON(Data(response.body.utf8))
            #expect(report.services.map(\.name) == ["ldap", "gewisdb"])
            #expect(report.services[1].consecutiveFailures == 2)
            #expect(report.services[0].lastRun?.entities.passed == 120)
            #expect(response.body.contains(#""startedAt" : "2026-11-25T"#))
            _ = control
        }
    }

    @Test func statusPageShowsEveryService() async throws {
        try await withEndpoint { port, _, _ in
            let response = try await RawHTTPClient(port: port).request("GET", "/")
            #expect(response.status == 200)
            #expect(response.header("content-type") == "text/html; charset=utf-8")
            let html = response.body
            #expect(html.contains(#"<h2 id="service-ldap">ldap</h2>"#))
            #expect(html.contains(#"<h2 id="service-gewisdb">gewisdb</h2>"#))
            #expect(html.contains("1m 1s ago") || html.contains("1m 2s ago"))
            #expect(html.contains("<code>*/15 * * * *</code>"))
            // The error text is escaped, not markup.
            #expect(html.contains("502 &lt;Bad Gateway&gt;"))
            #expect(!html.contains("<Bad Gateway>"))
            #expect(html.contains(#"<a href="/metrics">"#))
        }
    }

    @Test func triggerFromLoopback() async throws {
        try await withEndpoint { port, control, _ in
            let client = try RawHTTPClient(port: port)
            let started = try await client.request("POST", "/trigger/ldap?dry_run=1")
            #expect(started.status == 202)
            let again = try await client.request("POST", "/trigger/ldap")
            #expect(again.status == 409)
            let unknown = try await client.request("POST", "/trigger/nope")
            #expect(unknown.status == 404)
            let wrongMethod = try await client.request("GET", "/trigger/ldap")
            #expect(wrongMethod.status == 405 && wrongMethod.header("allow") == "POST")
            #expect(control.triggers.map(\.service) == ["ldap"])
            #expect(control.triggers.map(\.dryRun) == [true])
        }
    }

    /// Without loopback trust the bearer token decides; a wrong or missing one is refused.
    @Test func triggerFromElsewhereNeedsTheToken() async throws {
        try await withEndpoint(token: "s3cret-token", trustLoopback: false) { port, control, _ in
            let client = try RawHTTPClient(port: port)
            #expect(try await client.request("POST", "/trigger/ldap").status == 403)
            #expect(try await client.request("POST", "/trigger/ldap", headers: ["Authorization": "Bearer s3cret-tokem"]).status == 403)
            #expect(try await client.request("POST", "/trigger/ldap", headers: ["Authorization": "Bearer s3cret"]).status == 403)
            #expect(try await client.request("POST", "/trigger/ldap", headers: ["Authorization": "Basic s3cret-token"]).status == 403)
            #expect(control.triggers.isEmpty)
            let ok = try await client.request("POST", "/trigger/gewisdb", headers: ["Authorization": "Bearer s3cret-token"])
            #expect(ok.status == 202)
            #expect(control.triggers.map(\.service) == ["gewisdb"])
        }
        // No token configured: nobody but loopback.
        try await withEndpoint(token: nil, trustLoopback: false) { port, control, _ in
            let response = try await RawHTTPClient(port: port).request(
                "POST", "/trigger/ldap", headers: ["Authorization": "Bearer "])
            #expect(response.status == 403)
            #expect(control.triggers.isEmpty)
        }
    }

    @Test func unknownPathsAndWrongMethods() async throws {
        try await withEndpoint { port, _, _ in
            let client = try RawHTTPClient(port: port)
            #expect(try await client.request("GET", "/nope").status == 404)
            #expect(try await client.request("GET", "/metrics/extra").status == 404)
            let post = try await client.request("POST", "/metrics")
            #expect(post.status == 405 && post.header("allow") == "GET")
            #expect(try await client.request("DELETE", "/status").status == 405)
            // Still usable afterwards.
            #expect(try await client.request("GET", "/healthz").status == 200)
        }
    }

    @Test func garbageGets400AndIsClosed() async throws {
        try await withEndpoint { port, _, _ in
            for garbage in ["\u{16}\u{03}\u{01}\u{02}\u{00}\u{01}\u{00}\r\n\r\n", "HELLO THERE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET /\u{01} HTTP/1.1\r\n\r\n"] {
                let client = try RawHTTPClient(port: port)
                client.send(garbage)
                let response = try await client.readResponse()
                #expect(response.status == 400, "\(garbage.debugDescription)")
                #expect(await client.waitForClose())
            }
            // The server is unharmed.
            #expect(try await RawHTTPClient(port: port).request("GET", "/healthz").status == 200)
        }
    }

    @Test func oversizedHeadersGet431() async throws {
        try await withEndpoint { port, _, _ in
            let client = try RawHTTPClient(port: port)
            client.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 20_000))\r\n\r\n")
            let response = try await client.readResponse()
            #expect(response.status == 431)
            #expect(await client.waitForClose())
            // Many small headers add up too.
            let many = try RawHTTPClient(port: port)
            var text = "GET / HTTP/1.1\r\n"
            for i in 0..<400 { text += "X-H\(i): \(String(repeating: "b", count: 30))\r\n" }
            many.send(text + "\r\n")
            #expect(try await many.readResponse().status == 431)
            // A very long URL as well.
            let long = try RawHTTPClient(port: port)
            long.send("GET /\(String(repeating: "u", count: 50_000)) HTTP/1.1\r\n\r\n")
            #expect(try await long.readResponse().status == 431)
        }
    }

    /// Slowloris: a head trickled in byte by byte never completes; the deadline closes it,
    /// measured from the connection's start, not from its last byte.
    @Test func slowHeadersAreCutOffAtTheDeadline() async throws {
        var limits = HTTPEndpoint.Limits()
        limits.requestTimeout = .milliseconds(600)
        try await withEndpoint(limits: limits) { port, _, _ in
            let client = try RawHTTPClient(port: port, timeout: .milliseconds(100))
            let clock = ContinuousClock()
            let start = clock.now
            var closedAt: ContinuousClock.Instant?
            for byte in "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8 {
                guard client.send([byte]) else { closedAt = clock.now; break }
                if await client.waitForClose() { closedAt = clock.now; break }
                if clock.now - start > .seconds(5) { break }
            }
            let closed = try #require(closedAt, "the server kept a trickling client open")
            #expect(closed - start >= .milliseconds(550))
            #expect(closed - start < .seconds(3))
        }
    }

    /// An idle keep-alive connection is closed after the deadline too.
    @Test func idleConnectionsAreClosed() async throws {
        var limits = HTTPEndpoint.Limits()
        limits.requestTimeout = .milliseconds(300)
        try await withEndpoint(limits: limits) { port, _, _ in
            let client = try RawHTTPClient(port: port, timeout: .seconds(3))
            #expect(try await client.request("GET", "/healthz").status == 200)
            let clock = ContinuousClock()
            let start = clock.now
            #expect(await client.waitForClose())
            #expect(clock.now - start < .seconds(2))
            // A connection that never sends anything at all.
            let silent = try RawHTTPClient(port: port, timeout: .seconds(3))
            #expect(await silent.waitForClose())
        }
    }

    /// A client that asks and never reads cannot hold its connection (and a slot of the cap):
    /// once its answers fill the socket buffers, the write deadline closes it.
    @Test func clientsThatDoNotReadAreClosed() async throws {
        var limits = HTTPEndpoint.Limits()
        limits.requestTimeout = .milliseconds(500)
        let endpoint = HTTPEndpoint(
            host: "127.0.0.1", port: 0, metrics: SyncMetrics(services: (1...200).map { "s\($0)" }, version: "1"),
            control: FakeSupervisorControl(), triggerToken: nil, logger: Logger(label: "test"), limits: limits)
        let port = try await endpoint.start()
        defer { Task { await endpoint.stop() } }
        let client = try RawHTTPClient(port: port, receiveBuffer: 4096)
        // 16 pipelined scrapes of ~1.4 MB each: far more than the socket buffers hold.
        client.send(String(repeating: "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", count: 16))
        try await waitUntil("the server holds the connection", timeout: .seconds(5)) { endpoint.openConnections == 1 }
        let clock = ContinuousClock()
        let start = clock.now
        try await waitUntil("the server drops the non-reading client", timeout: .seconds(10)) {
            endpoint.openConnections == 0
        }
        #expect(clock.now - start >= .milliseconds(300))
        _ = client
    }

    /// Connections over the cap are answered 503 and closed; the ones within it still work,
    /// and once they close there is room again.
    @Test func connectionsOverTheCapAreRefused() async throws {
        var limits = HTTPEndpoint.Limits()
        limits.maxConnections = 8
        try await withEndpoint(limits: limits) { port, _, _ in
            var held: [RawHTTPClient] = []
            for _ in 0..<8 {
                let client = try RawHTTPClient(port: port)
                #expect(try await client.request("GET", "/healthz").status == 200)
                held.append(client)
            }
            for _ in 0..<20 {
                let extra = try RawHTTPClient(port: port)
                let response = try await extra.readResponse()
                #expect(response.status == 503)
                #expect(await extra.waitForClose())
            }
            #expect(try await held[3].request("GET", "/metrics").status == 200)
            held.removeAll()
            try await waitUntil("a free connection slot") {
                let client = try RawHTTPClient(port: port)
                return (try? await client.request("GET", "/healthz").status) == 200
            }
        }
    }

    /// A supervisor that does not answer costs `/status` a 503 after the control timeout,
    /// and never blocks `/metrics` or `/healthz`.
    @Test func stuckSupervisorNeverBlocksAScrape() async throws {
        var limits = HTTPEndpoint.Limits()
        limits.controlTimeout = .milliseconds(400)
        try await withEndpoint(limits: limits) { port, control, _ in
            control.state.withLock { $0.stuck = true }
            defer { control.state.withLock { $0.stuck = false } }
            let statusClient = try RawHTTPClient(port: port)
            statusClient.send("GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            let scrape = try RawHTTPClient(port: port)
            let clock = ContinuousClock()
            let start = clock.now
            #expect(try await scrape.request("GET", "/metrics").status == 200)
            #expect(clock.now - start < .milliseconds(300))
            let status = try await statusClient.readResponse()
            #expect(status.status == 503)
            #expect(clock.now - start >= .milliseconds(350))
        }
    }

    /// Pipelined requests are answered in order.
    @Test func pipelinedRequestsAnswerInOrder() async throws {
        try await withEndpoint { port, _, _ in
            let client = try RawHTTPClient(port: port)
            client.send(
                "GET /status HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            let first = try await client.readResponse()
            let second = try await client.readResponse()
            let third = try await client.readResponse()
            #expect(first.header("content-type") == "application/json")
            #expect(second.body == "ok\n")
            #expect(third.status == 404)
        }
    }

    /// A request body beyond the cap gets 413.
    @Test func oversizedBodyGets413() async throws {
        try await withEndpoint { port, control, _ in
            let client = try RawHTTPClient(port: port)
            client.send("POST /trigger/ldap HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n" + String(repeating: "z", count: 10_000))
            #expect(try await client.readResponse().status == 413)
            #expect(control.triggers.isEmpty)
        }
    }

    /// Many concurrent scrapes, all answered correctly (bounded: 16 clients × 25 requests).
    @Test func concurrentScrapes() async throws {
        try await withEndpoint { port, _, _ in
            let ok = await withTaskGroup(of: Int.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        guard let client = try? RawHTTPClient(port: port) else { return 0 }
                        var answered = 0
                        for _ in 0..<25 {
                            if let response = try? await client.request("GET", "/metrics"), response.status == 200,
                                response.body.hasSuffix("\n"), response.body.contains("process_max_fds")
                            {
                                answered += 1
                            }
                        }
                        return answered
                    }
                }
                return await group.reduce(0, +)
            }
            #expect(ok == 400)
        }
    }

    /// The constant-time comparison behind the token check.
    @Test func tokenComparison() {
        #expect(HTTPEndpoint.tokensMatch("abc", "abc"))
        #expect(!HTTPEndpoint.tokensMatch("abc", "abd"))
        #expect(!HTTPEndpoint.tokensMatch("abc", "abcd"))
        #expect(!HTTPEndpoint.tokensMatch("", "a"))
    }
}
