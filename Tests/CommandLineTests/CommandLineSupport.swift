import Foundation
import TestKit

/// Running the real `sudosos-sync` binary with a configuration file and a clean environment.
enum SudoSOSSync {
    /// Runs `sudosos-sync arguments`, with `yaml` (if given) written to a file passed as
    /// `--config`, and only `environment` (plus PATH) set, so the developer's variables cannot
    /// leak in.
    static func run(_ arguments: [String], yaml: String? = nil, environment: [String: String] = [:]) throws -> ProcessOutput {
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
        return try runProcess(TestEnvironment.executable("sudosos-sync"), arguments, environment: env)
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
final class PrivateServer {
    let directory: String
    let port: Int
    private let bin: String

    init() throws {
        bin = try TestEnvironment.require("SUDOSOS_TEST_PG_BIN")
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("cli-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory)
        port = try closedPort()
        try control("/bin/chown", ["postgres:", directory])
        try control("/usr/sbin/runuser", [
            "-u", "postgres", "--", "\(bin)/initdb", "-D", "\(directory)/data", "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8",
        ])
        try control("/usr/sbin/runuser", [
            "-u", "postgres", "--", "\(bin)/pg_ctl", "-D", "\(directory)/data", "-l", "\(directory)/server.log", "-w",
            "-t", "60", "-o", "-c listen_addresses=127.0.0.1 -p \(port) -k \(directory) -c fsync=off", "start",
        ])
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
    func shutDown() {
        guard FileManager.default.fileExists(atPath: "\(directory)/data/postmaster.pid") else { return }
        if let pid = try? postmasterPID() { kill(pid, SIGCONT) }
        _ = try? spawnAndWait("/usr/sbin/runuser", [
            "-u", "postgres", "--", "\(bin)/pg_ctl", "-D", "\(directory)/data", "-m", "immediate", "-w", "stop",
        ], output: "/dev/null")
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { shutDown() }

    /// Runs a server-control command to completion. Not through Foundation's `Process`: a
    /// child that leaves a daemon behind (pg_ctl start) was never seen to exit there (the
    /// child stayed a zombie and `runProcess` hung), so this spawns and reaps it itself, with
    /// output to the server's folder and no inherited descriptors.
    private func control(_ executable: String, _ arguments: [String]) throws {
        let status = try spawnAndWait(executable, arguments, output: "\(directory)/control.log")
        guard status == 0 else {
            let log = (try? String(contentsOfFile: "\(directory)/control.log", encoding: .utf8)) ?? ""
            throw ControlFailed(command: ([executable] + arguments).joined(separator: " "), log: log)
        }
    }
}

struct ControlFailed: Error, CustomStringConvertible {
    var command: String
    var log: String
    var description: String { "\(command) failed: \(log)" }
}

/// Spawns `executable` with stdin from /dev/null, stdout and stderr appended to `output`, and
/// no other descriptor of this process; waits for it and returns its exit status (128 + the
/// signal number when a signal ended it).
func spawnAndWait(_ executable: String, _ arguments: [String], output: String) throws -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    // Close every other descriptor this process has open (the test runner's pipes and sockets).
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for fd in open.compactMap(Int32.init) where fd > 2 {
        posix_spawn_file_actions_addclose(&actions, fd)
    }
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid = pid_t()
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EINVAL) }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECHILD) }
    }
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
}
