import Foundation
import TestKit

/// Running the real `sudosos-sync` binary with a configuration file and a clean environment.
enum SudoSOSSync {
    /// Runs `sudosos-sync arguments`, with `yaml` (if given) written to a file passed as
    /// `--config`, and only `environment` (plus PATH) set, so the developer's variables cannot
    /// leak in.
    static func run(_ arguments: [String], yaml: String? = nil, environment: [String: String] = [:]) async throws -> ProcessOutput {
        var arguments = arguments
        var cleanup: URL?
        if let yaml {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let file = dir.appendingPathComponent("config.yaml")
            try Data(yaml.utf8).write(to: file)
            arguments += ["--config", file.path]
            cleanup = dir
        }
        defer { if let cleanup { try? FileManager.default.removeItem(at: cleanup) } }
        var env = environment
        env["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return try await runChild(TestEnvironment.executable("sudosos-sync"), arguments, environment: env, timeout: .seconds(60))
    }

    /// The non-empty lines of some output.
    static func lines(_ text: String) -> [String] {
        text.split(separator: "\n").map(String.init)
    }
}

/// A loopback TCP port that nothing listens on: bound once to get a free number, then closed.
func closedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A throwaway PostgreSQL cluster of one test's own, started with the harness's binaries
/// (`SUDOSOS_TEST_PG_BIN`), so a test can stop or freeze it without touching the shared one.
final class PrivateServer: Sendable {
    let directory: String
    let port: Int
    private let bin: String

    private init(directory: String, port: Int, bin: String) {
        self.directory = directory
        self.port = port
        self.bin = bin
    }

    /// Creates the cluster and starts it on a free loopback port.
    static func start() async throws -> PrivateServer {
        let bin = try TestEnvironment.require("SUDOSOS_TEST_PG_BIN")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cli-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
        let server = PrivateServer(directory: directory, port: try closedPort(), bin: bin)
        try await server.control("/bin/chown", ["postgres:", directory])
        try await server.control("/usr/sbin/runuser", [
            "-u", "postgres", "--", "\(bin)/initdb", "-D", "\(directory)/data", "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8",
        ])
        try await server.control("/usr/sbin/runuser", [
            "-u", "postgres", "--", "\(bin)/pg_ctl", "-D", "\(directory)/data", "-l", "\(directory)/server.log", "-w",
            "-t", "60", "-o", "-c listen_addresses=127.0.0.1 -p \(server.port) -k \(directory) -c fsync=off", "start",
        ])
        return server
    }

    var url: String { "postgresql://postgres@127.0.0.1:\(port)/postgres" }

    /// The postmaster's pid (first line of postmaster.pid).
    func postmasterPID() throws -> pid_t {
        let text = try String(contentsOfFile: "\(directory)/data/postmaster.pid", encoding: .utf8)
        guard let first = text.split(separator: "\n").first, let pid = pid_t(first) else {
            throw POSIXError(.ESRCH)
        }
        return pid
    }

    /// Stops the server (immediately) and removes its files; safe to call twice.
    func shutDown() async {
        guard FileManager.default.fileExists(atPath: "\(directory)/data/postmaster.pid") else { return }
        if let pid = try? postmasterPID() { kill(pid, SIGCONT) }
        _ = try? await runChild("/usr/sbin/runuser", stopArguments, timeout: .seconds(90))
        try? FileManager.default.removeItem(atPath: directory)
    }

    private var stopArguments: [String] {
        ["-u", "postgres", "--", "\(bin)/pg_ctl", "-D", "\(directory)/data", "-m", "immediate", "-w", "stop"]
    }

    /// The last resort when a test ended without `shutDown()`.
    deinit {
        guard FileManager.default.fileExists(atPath: "\(directory)/data/postmaster.pid") else { return }
        if let pid = try? postmasterPID() { kill(pid, SIGCONT) }
        _ = try? runChildBlocking("/usr/sbin/runuser", stopArguments, timeout: .seconds(90))
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs a server-control command to completion (through `runChild`: `pg_ctl start` leaves
    /// a daemon behind, which `runProcess` does not survive).
    private func control(_ executable: String, _ arguments: [String]) async throws {
        let result = try await runChild(executable, arguments, timeout: .seconds(90))
        guard result.status == 0 else {
            throw ControlFailed(command: ([executable] + arguments).joined(separator: " "), log: result.stdout + result.stderr)
        }
    }
}

/// A throwaway MariaDB server of one test's own (`scripts/lib/mariadb.sh start DIR --bare`), so a
/// test can stop or freeze it without touching the shared one.
final class PrivateMariaDB: Sendable {
    let directory: String
    let url: String
    let pid: pid_t

    private init(directory: String, url: String, pid: pid_t) {
        self.directory = directory
        self.url = url
        self.pid = pid
    }

    static func start() async throws -> PrivateMariaDB {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cli-mariadb-\(UUID().uuidString)").path
        let script = TestEnvironment.repositoryRoot.appendingPathComponent("scripts/lib/mariadb.sh").path
        let result = try await runChild("/bin/bash", [script, "start", directory, "--bare"], timeout: .seconds(120))
        guard result.status == 0 else { throw ControlFailed(command: "mariadb.sh start", log: result.stdout + result.stderr) }
        var values: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        guard let url = values["SUDOSOS_TEST_MARIADB_URL"], let pid = values["SUDOSOS_TEST_MARIADB_PID"].flatMap({ pid_t($0) }) else {
            throw ControlFailed(command: "mariadb.sh start", log: result.stdout)
        }
        return PrivateMariaDB(directory: directory, url: url, pid: pid)
    }

    /// Stops the server and removes its files; safe to call twice.
    func shutDown() async {
        kill(pid, SIGCONT)
        let script = TestEnvironment.repositoryRoot.appendingPathComponent("scripts/lib/mariadb.sh").path
        _ = try? await runChild("/bin/bash", [script, "stop", directory], timeout: .seconds(90))
    }

    deinit {
        kill(pid, SIGCONT)
        let script = TestEnvironment.repositoryRoot.appendingPathComponent("scripts/lib/mariadb.sh").path
        _ = try? runChildBlocking("/bin/bash", [script, "stop", directory], timeout: .seconds(90))
    }
}

struct ControlFailed: Error, CustomStringConvertible {
    var command: String
    var log: String
    var description: String { "\(command) failed: \(log)" }
}

/// A running `gewisdb-fake` serving `fixtures/gewisdb/members.json` on a free loopback port.
final class GEWISDBFake: @unchecked Sendable {
    private let process: Process
    private let directory: URL
    let port: Int

    var apiURL: String { "http://127.0.0.1:\(port)/api" }

    private init(process: Process, directory: URL, port: Int) {
        self.process = process
        self.directory = directory
        self.port = port
    }

    /// Starts the fake demanding `apiKey`, and waits until it has written its port.
    static func start(apiKey: String) async throws -> GEWISDBFake {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cli-fake-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("port")
        let members = TestEnvironment.repositoryRoot.appendingPathComponent("fixtures/gewisdb/members.json").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.executable("gewisdb-fake"))
        process.arguments = ["--port", "0", "--port-file", portFile.path, "--api-key", apiKey, "--members", members]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        do {
            try await waitUntil("gewisdb-fake to write its port", timeout: .seconds(20)) {
                guard process.isRunning else { throw ControlFailed(command: "gewisdb-fake", log: "exited early") }
                return ((try? String(contentsOf: portFile, encoding: .utf8)) ?? "").hasSuffix("\n")
            }
            let text = try String(contentsOf: portFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let port = Int(text) else { throw ControlFailed(command: "gewisdb-fake", log: "port file: \(text)") }
            return GEWISDBFake(process: process, directory: directory, port: port)
        } catch {
            if process.isRunning { process.terminate() }
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    func stop() {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}
