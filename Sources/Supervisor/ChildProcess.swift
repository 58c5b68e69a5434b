import CProcessSpawn
import Foundation
import SyncEngine

#if canImport(Glibc)
import Glibc
#endif

/// Spawning failed before the worker ran (told apart from "ran and failed" by the shim's
/// exec-error pipe).
public struct SpawnError: Error, CustomStringConvertible, Sendable {
    public var step: String
    public var errno: Int32
    public var description: String { "could not spawn the worker: \(step) failed: \(String(cString: strerror(errno)))" }
}

/// How a child ended, from wait4.
public struct ChildExit: Sendable, Hashable {
    /// Exit code, when it exited.
    public var code: Int32?
    /// Signal, when a signal ended it.
    public var signal: Int32?
    public var cpuSeconds: Double
    public var maxRSSBytes: UInt64
}

/// One worker process and the read ends of its pipes. Owns the descriptors: `close()` them
/// once reaped (also done in deinit).
public final class ChildProcess {
    public let pid: pid_t
    /// Readable when the process has exited.
    public private(set) var pidfd: Int32
    public private(set) var stdoutFD: Int32
    public private(set) var stderrFD: Int32
    public private(set) var resultFD: Int32
    private var exited: ChildExit?

    /// Spawns `executable` with `arguments` (argv[0] included) and exactly `environment`;
    /// `input`, when given, is readable on descriptor 4 (``SUDOSOS_CONFIG_FD``) up to its end.
    public static func spawn(
        executable: String, arguments: [String], environment: [String: String], limits: ResourceLimits,
        input: Data? = nil
    ) throws -> ChildProcess {
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1], result: [Int32] = [-1, -1], config: [Int32] = [-1, -1]
        func closeAll() { for fd in out + err + result + config where fd >= 0 { close(fd) } }
        guard sudosos_pipe(&out, 1) == 0, sudosos_pipe(&err, 1) == 0, sudosos_pipe(&result, 1) == 0 else {
            let saved = errno
            closeAll()
            throw SpawnError(step: "pipe", errno: saved)
        }
        if let input {
            // Written whole before the child exists: the pipe must hold it (1 MiB at most).
            guard sudosos_pipe(&config, 0) == 0 else {
                let saved = errno
                closeAll()
                throw SpawnError(step: "pipe", errno: saved)
            }
            _ = fcntl(config[1], 1031 /* F_SETPIPE_SZ */, 1 << 20)
            _ = fcntl(config[1], F_SETFL, fcntl(config[1], F_GETFL) | O_NONBLOCK)
            let written = input.withUnsafeBytes { write(config[1], $0.baseAddress, $0.count) }
            close(config[1])
            config[1] = -1
            guard written == input.count else {
                let saved = written < 0 ? errno : EMSGSIZE
                closeAll()
                throw SpawnError(step: "writing the configuration pipe", errno: saved)
            }
        }
        // Everything the child needs is allocated here, before fork.
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var spawnErrno: Int32 = 0
        var failedStep: UnsafePointer<CChar>?
        let pid: pid_t = executable.withCString { path in
            argv.withUnsafeBufferPointer { argvBuffer in
                envp.withUnsafeBufferPointer { envpBuffer in
                    var request = sudosos_spawn_request(
                        path: path, argv: argvBuffer.baseAddress, envp: envpBuffer.baseAddress,
                        stdout_fd: out[1], stderr_fd: err[1], result_fd: result[1], config_fd: config[0],
                        limit_address_space: limits.memoryBytes ?? 0, limit_cpu_seconds: limits.cpuSeconds ?? 0,
                        limit_open_files: limits.openFiles ?? 0, parent_pid: getpid())
                    return sudosos_spawn(&request, &spawnErrno, &failedStep)
                }
            }
        }
        close(out[1])
        close(err[1])
        close(result[1])
        if config[0] >= 0 { close(config[0]) }
        guard pid > 0 else {
            close(out[0])
            close(err[0])
            close(result[0])
            throw SpawnError(step: failedStep.map { String(cString: $0) } ?? "spawn", errno: spawnErrno)
        }
        let pidfd = sudosos_pidfd_open(pid)
        return ChildProcess(pid: pid, pidfd: pidfd, stdoutFD: out[0], stderrFD: err[0], resultFD: result[0])
    }

    private init(pid: pid_t, pidfd: Int32, stdoutFD: Int32, stderrFD: Int32, resultFD: Int32) {
        self.pid = pid
        self.pidfd = pidfd
        self.stdoutFD = stdoutFD
        self.stderrFD = stderrFD
        self.resultFD = resultFD
    }

    deinit { closeDescriptors() }

    /// Sends `signal` to the child's whole process group (its session; pgid == pid).
    public func signalGroup(_ signal: Int32) {
        if killpg(pid, signal) != 0 { kill(pid, signal) }
    }

    /// Reaps the child if it has exited (never blocks). Before reaping, anything left in its
    /// process group is killed: the zombie still holds the group id, so this cannot hit an
    /// unrelated process.
    public func reap() -> ChildExit? {
        if let exited { return exited }
        // Look without reaping, so the group id stays reserved for the killpg below.
        guard sudosos_has_exited(pid) == 1 else { return nil }
        killpg(pid, SIGKILL)
        var status: Int32 = 0, cpu: Double = 0, rss: UInt64 = 0
        guard sudosos_reap(pid, &status, &cpu, &rss) == pid else { return nil }
        let exit = ChildExit(
            code: sudosos_wifexited(status) != 0 ? sudosos_wexitstatus(status) : nil,
            signal: sudosos_wifsignaled(status) != 0 ? sudosos_wtermsig(status) : nil,
            cpuSeconds: cpu, maxRSSBytes: rss)
        exited = exit
        return exit
    }

    /// Reads what is available on `fd` (non-blocking). Returns nil at end of file.
    public static func readAvailable(_ fd: Int32) -> [UInt8]? {
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                collected += buffer[0..<n]
                if collected.count > 1 << 20 { return collected }
                continue
            }
            if n == 0 { return collected.isEmpty ? nil : collected }
            if errno == EINTR { continue }
            return collected  // EAGAIN: nothing more for now
        }
    }

    /// Closes one pipe (at its end of file).
    public func closePipe(_ fd: Int32) {
        guard fd >= 0 else { return }
        close(fd)
        if fd == stdoutFD { stdoutFD = -1 }
        if fd == stderrFD { stderrFD = -1 }
        if fd == resultFD { resultFD = -1 }
    }

    public func closeDescriptors() {
        for fd in [stdoutFD, stderrFD, resultFD] where fd >= 0 { close(fd) }
        stdoutFD = -1
        stderrFD = -1
        resultFD = -1
        if pidfd >= 0 { close(pidfd) }
        pidfd = -1
    }
}

/// Splits a byte stream into lines, keeping the unfinished tail. Lines longer than `limit`
/// are cut, so a child cannot make the supervisor buffer without bound.
public struct LineBuffer: Sendable {
    private var pending: [UInt8] = []
    public let limit: Int

    public init(limit: Int = 16 * 1024) { self.limit = limit }

    public mutating func append(_ bytes: [UInt8]) -> [String] {
        pending += bytes
        var lines: [String] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: pending[..<newline], as: UTF8.self))
            pending.removeSubrange(...newline)
        }
        while pending.count > limit {
            lines.append(String(decoding: pending[..<limit], as: UTF8.self))
            pending.removeSubrange(..<limit)
        }
        return lines
    }

    /// The unfinished last line, at end of file.
    public mutating func flush() -> String? {
        defer { pending = [] }
        return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}
