import Foundation
import Logging
import Testing
import SudoSOSStore
import SyncEngine
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL frozen with SIGSTOP (a hung host, a stuck VM): the run must end with
/// `unavailable` (exit 69) within the connect timeout instead of hanging. Uses a private
/// server of its own, since freezing the shared one would stall every other test.
@Suite struct StoppedServerTests {
    /// A throwaway PostgreSQL cluster started with the harness's binaries.
    final class PrivateServer {
        let directory: String
        let port: Int
        let bin: String

        init() throws {
            bin = try TestEnvironment.require("SUDOSOS_TEST_PG_BIN")
            var template = Array("/tmp/sudosos-stopped-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw Unexpected("mkdtemp failed") }
            directory = String(cString: made)
            chmod(directory, 0o755)
            port = try ConnectionTests.SilentListener().port  // free now; the listener closes again
            try spawnAndWait("/bin/chown", ["postgres:", directory])
            try spawnAndWait("/usr/sbin/runuser", [
                "-u", "postgres", "--", "\(bin)/initdb", "-D", "\(directory)/data", "-U", "postgres", "--auth=trust",
                "-E", "UTF8", "--locale=C.UTF-8",
            ])
            try spawnAndWait("/usr/sbin/runuser", [
                "-u", "postgres", "--", "\(bin)/pg_ctl", "-D", "\(directory)/data", "-l", "\(directory)/server.log", "-w",
                "-t", "60", "-o", "-c listen_addresses=127.0.0.1 -p \(port) -k \(directory) -c fsync=off", "start",
            ])
        }

        var url: String { "postgresql://postgres@127.0.0.1:\(port)/postgres" }

        /// The postmaster's pid (first line of postmaster.pid).
        func postmasterPID() throws -> pid_t {
            let text = try String(contentsOfFile: "\(directory)/data/postmaster.pid", encoding: .utf8)
            guard let first = text.split(separator: "\n").first, let pid = pid_t(first) else {
                throw Unexpected("no pid in postmaster.pid")
            }
            return pid
        }

        deinit {
            if let pid = try? postmasterPID() { kill(pid, SIGCONT) }
            try? spawnAndWait("/usr/sbin/runuser", [
                "-u", "postgres", "--", "\(bin)/pg_ctl", "-D", "\(directory)/data", "-m", "immediate", "-w", "stop",
            ])
            try? FileManager.default.removeItem(atPath: directory)
        }

    }

    @Test func aSIGSTOPpedServerGivesUnavailableWithinTheConnectTimeout() async throws {
        let server = try PrivateServer()
        // It is a working server first.
        try await PostgresStore(url: server.url, connectTimeout: .seconds(2)).ping()

        let pid = try server.postmasterPID()
        #expect(kill(pid, SIGSTOP) == 0)
        defer { kill(pid, SIGCONT) }

        // libpq alone: at most the connect timeout (measured without suspension points).
        let (error, elapsed) = ConnectionTests.failedConnect(server.url, password: "pw-s3cret", timeout: .seconds(2))
        #expect(elapsed >= .milliseconds(900))  // libpq counts whole seconds from time(): 2 s is 1–2 s
        #expect(elapsed < .seconds(4), "took \(elapsed): the connect timeout was not honoured")
        #expect(error?.kind == .unavailable)
        #expect(error?.message.hasPrefix("cannot reach the database at 127.0.0.1:\(server.port)/postgres: ") == true)
        #expect(error?.message.contains("s3cret") == false)

        // A whole run: exit 69, and it returns.
        let store = PostgresStore(url: server.url, password: "pw-s3cret", connectTimeout: .seconds(2))
        let runner = SyncRunner(database: store, threshold: DeletionThreshold(), logger: Logger(label: "test"))
        let result = await runner.run(PlannedService { _ in Plan(service: "test") }, dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .unavailable)
        #expect(result.exitCode.rawValue == 69)
        #expect(result.summary.error?.hasPrefix("cannot reach the database at 127.0.0.1:\(server.port)/postgres: ") == true)
        #expect(result.summary.error?.contains("s3cret") == false)
    }
}

/// Runs a program to completion (TestKit's spawn, which also copes with pg_ctl leaving a
/// daemon behind), throwing when it fails.
func spawnAndWait(_ executable: String, _ arguments: [String]) throws {
    let result = try runChildBlocking(executable, arguments, timeout: .seconds(120))
    guard result.status == 0, !result.signalled else {
        throw Unexpected("\(executable) \(arguments.first ?? "") failed: \(result.stderr)")
    }
}
