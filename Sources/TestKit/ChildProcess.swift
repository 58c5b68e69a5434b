import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs an executable to completion without Foundation's `Process`, and collects its output.
///
/// Why: under the test runner, `Process` (as `runProcess` uses it) was seen to hang for good
/// when the child left a daemon behind (`pg_ctl start`, directly or through `runuser`/`bash`):
/// the child stayed a zombie and its reader threads waited forever. This spawns with
/// `posix_spawn`, sends stdout and stderr to files (so no pipe has to reach end-of-file, whoever
/// inherits it), closes every other descriptor in the child, and reaps the child itself with
/// `waitpid`, giving up after `timeout` (the child is then killed and `TimedOut` thrown).
///
/// The waiting happens on a thread of its own, not on the cooperative pool: on a 2-core machine
/// that pool has 2 threads, and tests blocking them starve every other async test of the run.
///
/// - Parameters:
///   - environment: the child's whole environment; `nil` inherits this process's.
///   - stdin: text for the child's standard input (empty input when `nil`).
public func runChild(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil,
    timeout: Duration = .seconds(120)
) async throws -> ProcessOutput {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result {
                try runChildBlocking(executable, arguments, environment: environment, stdin: stdin, timeout: timeout)
            })
        }
    }
}

/// `runChild`, blocking the calling thread (for `deinit` and other synchronous code; never on
/// the cooperative pool).
public func runChildBlocking(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil,
    timeout: Duration = .seconds(120)
) throws -> ProcessOutput {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let input = dir.appendingPathComponent("stdin").path
    let output = dir.appendingPathComponent("stdout").path
    let errors = dir.appendingPathComponent("stderr").path
    try Data((stdin ?? "").utf8).write(to: URL(fileURLWithPath: input))

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, input, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    // Close everything else this process has open (glibc ignores descriptors closed meanwhile).
    let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    for fd in open.compactMap(Int32.init) where fd > 2 {
        posix_spawn_file_actions_addclose(&actions, fd)
    }

    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { env in env.map { strdup("\($0.key)=\($0.value)") } + [nil] }
    defer {
        for pointer in argv { free(pointer) }
        for pointer in envp ?? [] { free(pointer) }
    }
    var pid = pid_t()
    let spawned: Int32
    if let envp {
        spawned = envp.withUnsafeBufferPointer { posix_spawn(&pid, executable, &actions, nil, argv, $0.baseAddress) }
    } else {
        spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    }
    guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EINVAL) }

    let status = try reap(pid, timeout: timeout, what: executable)
    let signal = status & 0x7f
    return ProcessOutput(
        status: signal == 0 ? (status >> 8) & 0xff : signal, signalled: signal != 0,
        stdout: (try? String(contentsOfFile: output, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: errors, encoding: .utf8)) ?? "")
}

/// Waits for `pid` to end (the raw wait status); kills it and throws after `timeout`.
private func reap(_ pid: pid_t, timeout: Duration, what: String) throws -> Int32 {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var status: Int32 = 0
    var pause = Duration.milliseconds(1)
    while true {
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { return status }
        if result < 0 && errno != EINTR { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECHILD) }
        if clock.now >= deadline {
            kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
            throw TimedOut(what: "\(what) to exit", timeout: timeout)
        }
        // Most children end within milliseconds; poll quickly at first, then every 20 ms.
        Thread.sleep(forTimeInterval: Double(pause.components.attoseconds) / 1e18 + Double(pause.components.seconds))
        pause = min(pause * 2, .milliseconds(20))
    }
}
