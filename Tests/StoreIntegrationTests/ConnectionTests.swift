import Foundation
import Logging
import Testing
@testable import SudoSOSStore
import SyncEngine
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// An unreachable or stopped database fails fast with `unavailable` (exit 69), never hangs,
/// and no message carries the password.
@Suite struct ConnectionTests {
    /// A loopback TCP socket that listens but never accepts: the kernel completes the handshake
    /// and then nothing answers, which is exactly what a SIGSTOPped PostgreSQL looks like.
    final class SilentListener {
        let fd: Int32
        let port: Int

        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = 0
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
            }
            guard bound == 0, listen(fd, 16) == 0 else {
                close(fd)
                throw Unexpected("cannot listen on a loopback port")
            }
            _ = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            self.fd = fd
            port = Int(UInt16(bigEndian: addr.sin_port))
        }

        deinit { close(fd) }
    }

    /// A loopback port nobody listens on.
    private func closedPort() throws -> Int {
        let listener = try SilentListener()
        return listener.port  // closed again when `listener` goes away
    }

    /// Connects synchronously and returns the error and how long libpq took. Measured without
    /// a suspension point, so a busy test process cannot stretch the figure.
    static func failedConnect(_ url: String, password: String?, timeout: Duration) -> (SyncError?, Duration) {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            _ = try PGConnection(url: url, password: password, connectTimeout: timeout, counter: RoundTripCounter())
            return (nil, clock.now - start)
        } catch {
            return (error as? SyncError, clock.now - start)
        }
    }

    @Test func aClosedPortIsUnavailableAtOnce() throws {
        let port = try closedPort()
        let (error, elapsed) = Self.failedConnect(
            "postgresql://sudosos@127.0.0.1:\(port)/sudosos", password: "s3cret-Pw!", timeout: .seconds(5))
        #expect(elapsed < .seconds(2), "a refused connection must not wait for the connect timeout")
        #expect(error?.kind == .unavailable)
        #expect(error?.exitCode.rawValue == 69)
        #expect(error?.message.hasPrefix("cannot reach the database at 127.0.0.1:\(port)/sudosos: ") == true)
        #expect(error?.message.contains("s3cret") == false)
    }

    /// Guards against the hang of the original: a server that accepts and never answers.
    @Test func aSilentServerTimesOutWithinTheConnectTimeout() throws {
        let listener = try SilentListener()
        let (error, elapsed) = Self.failedConnect(
            "host=127.0.0.1 port=\(listener.port) dbname=sudosos user=sudosos", password: "s3cret-Pw!",
            timeout: .seconds(2))
        #expect(elapsed >= .milliseconds(900))  // libpq counts whole seconds from time(): 2 s is 1–2 s
        #expect(elapsed < .seconds(4))
        #expect(error?.kind == .unavailable)
        #expect(error?.message.contains("127.0.0.1:\(listener.port)/sudosos") == true)
        #expect(error?.message.contains("timeout") == true)
        #expect(error?.message.contains("s3cret") == false)
    }

    /// The runner maps it to exit 69, and returns (the precise timing is measured above; the
    /// bound here only proves it does not hang, in a test process that may be very busy).
    @Test func theRunnerReportsUnavailableWithExit69() async throws {
        let listener = try SilentListener()
        let store = PostgresStore(url: "postgresql://127.0.0.1:\(listener.port)/sudosos", connectTimeout: .seconds(2))
        let runner = SyncRunner(database: store, threshold: DeletionThreshold(), logger: Logger(label: "test"))
        let clock = ContinuousClock()
        let start = clock.now
        let result = await runner.run(PlannedService { _ in Plan(service: "test") }, dryRun: false, reporter: SilentReporter())
        #expect(clock.now - start < .seconds(60))
        #expect(result.exitCode == .unavailable)
        #expect(result.summary.outcome == .failure)
        #expect(result.plan == nil)
    }

    @Test func thePasswordIsPassedAsItsOwnKeyword() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        // The harness database trusts loopback, so any password connects; the point is that a
        // password beside a URL is accepted and a URL with TLS options is honoured (sslmode
        // disable here; `require` against this plain server must fail).
        let ok = PostgresStore(url: f.db.url + "?sslmode=disable", password: "irrelevant")
        try await ok.ping()
        let tls = PostgresStore(url: f.db.url + "?sslmode=require", password: "s3cret-Pw!")
        let error = await #expect(throws: SyncError.self) { try await tls.ping() }
        #expect(error?.kind == .unavailable)
        #expect(error?.message.contains("SSL") == true)
        #expect(error?.message.contains("s3cret") == false)
    }

    @Test func queryErrorsNameTheSQLStateButNoValues() throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let connection = try PGConnection(url: f.db.url, password: nil, connectTimeout: .seconds(5), counter: RoundTripCounter())
        #expect {
            try connection.query("SELECT $1::int", ["jan@example.org"], what: "casting")
        } throws: { error in
            let e = error as? SyncError
            return e?.kind == .failed && e?.message.contains("SQLSTATE 22P02") == true
                && e?.message.contains("jan@example.org") == false
        }
        let rows = try connection.query(
            "SELECT $1::text AS t, $2::int AS i, $3::bool AS b, $4::text AS n",
            ["a \"quoted\", {braced} text", "42", "t", nil], what: "echo")
        let row = try #require(rows.rows.first)
        #expect(try row.string("t") == "a \"quoted\", {braced} text")
        #expect(try row.int("i") == 42)
        #expect(try row.bool("b") == true)
        #expect(try row.optionalString("n") == nil)
        let array = try connection.query(
            "SELECT x FROM unnest($1::text[]) AS x", [PGValue.textArray(["NULL", "a,b", "c\\d", "\"q\"", "", nil])],
            what: "array")
        #expect(array.values.map { $0[0] } == ["NULL", "a,b", "c\\d", "\"q\"", "", nil])
    }
}
