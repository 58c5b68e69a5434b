import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the integration tests find their services: `scripts/test` starts them and exports
/// their endpoints (`SUDOSOS_TEST_*`, see docs/testing.md).
public enum TestEnvironment {
    public struct Missing: Error, CustomStringConvertible {
        public var key: String
        public var description: String {
            "\(key) is not set: run the integration tests through scripts/test, which starts the services they use"
        }
    }

    /// The value of `key`; throws (failing the test) when the harness did not set it.
    public static func require(_ key: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[key], !value.isEmpty else { throw Missing(key: key) }
        return value
    }

    /// The folder holding the built products (`sudosos-sync`, `gewisdb-fake`).
    public static var productsDirectory: URL {
        // The test bundle lives in the products folder: .build/<triple>/debug/<name>.xctest
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = bundle.deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("sudosos-sync").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL
    }

    /// Path of a built executable of this package.
    public static func executable(_ name: String) -> String {
        productsDirectory.appendingPathComponent(name).path
    }

    /// The repository's root (for fixtures and scripts).
    public static var repositoryRoot: URL {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }
}

/// Waits until `condition` holds, polling; throws when `timeout` passes first.
/// Use this instead of sleeping for a guessed time.
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(10), poll: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while true {
        if try await condition() { return }
        if clock.now >= deadline { throw TimedOut(what: what, timeout: timeout) }
        try await Task.sleep(for: poll)
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public var what: String
    public var timeout: Duration
    public var description: String { "timed out after \(timeout) waiting for \(what)" }
}

/// The result of a finished child process.
public struct ProcessOutput: Sendable {
    public var status: Int32
    /// True when the process was ended by a signal (`status` is then the signal number).
    public var signalled: Bool
    public var stdout: String
    public var stderr: String
}

/// Runs an executable to completion and collects its output.
///
/// Spawned with `posix_spawn` and reaped with `waitpid` here, not with Foundation's `Process`,
/// whose `waitUntilExit` was seen to hang forever on an already-exited child on Linux. The
/// child starts with every signal unblocked and at its default action.
public func runProcess(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil
) throws -> ProcessOutput {
    func pipePair() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnFailed(executable: executable, errno: errno) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return (fds[0], fds[1])
    }
    let input = try pipePair(), output = try pipePair(), errors = try pipePair()

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, input.read, 0)
    posix_spawn_file_actions_adddup2(&actions, output.write, 1)
    posix_spawn_file_actions_adddup2(&actions, errors.write, 2)

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t(), allSignals = sigset_t()
    sigemptyset(&noSignals)
    sigfillset(&allSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setsigdefault(&attributes, &allSignals)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    close(input.read)
    close(output.write)
    close(errors.write)
    guard spawned == 0 else {
        close(input.write)
        close(output.read)
        close(errors.read)
        throw SpawnFailed(executable: executable, errno: spawned)
    }

    // Feed stdin, then read stdout and stderr together until both end.
    if let stdin {
        signal(SIGPIPE, SIG_IGN)
        var bytes = Array(stdin.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(input.write, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue } else { break } }
            bytes = bytes.dropFirst(n)
        }
    }
    close(input.write)
    var collected: [Int32: [UInt8]] = [output.read: [], errors.read: []]
    var open: [Int32] = [output.read, errors.read]
    var buffer = [UInt8](repeating: 0, count: 65536)
    while !open.isEmpty {
        var polled = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        if poll(&polled, nfds_t(polled.count), -1) < 0 {
            if errno == EINTR { continue }
            break
        }
        for entry in polled where entry.revents != 0 {
            let n = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
            if n > 0 {
                collected[entry.fd]!.append(contentsOf: buffer[..<n])
            } else if n == 0 || errno != EINTR {
                close(entry.fd)
                open.removeAll { $0 == entry.fd }
            }
        }
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let signalled = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f
    return ProcessOutput(
        status: signalled ? status & 0x7f : (status >> 8) & 0xff, signalled: signalled,
        stdout: String(decoding: collected[output.read]!, as: UTF8.self),
        stderr: String(decoding: collected[errors.read]!, as: UTF8.self))
}

public struct SpawnFailed: Error, CustomStringConvertible {
    public var executable: String
    public var errno: Int32
    public var description: String { "cannot start \(executable): \(String(cString: strerror(errno)))" }
}

/// A database of its own for one test, cloned from the template the harness loaded with the
/// SudoSOS tables. Drop it when done (`drop()`); leftovers vanish with the throwaway server.
public struct TemporaryDatabase: Sendable {
    /// libpq URI of the new database (superuser, trust auth on loopback).
    public let url: String
    public let name: String
    private let serverURL: String

    public static func create() throws -> TemporaryDatabase {
        let server = try TestEnvironment.require("SUDOSOS_TEST_PG_URL")
        let template = try TestEnvironment.require("SUDOSOS_TEST_PG_TEMPLATE")
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        try psql(server, "CREATE DATABASE \(name) TEMPLATE \(template)")
        guard let slash = server.lastIndex(of: "/") else { throw TestEnvironment.Missing(key: "SUDOSOS_TEST_PG_URL") }
        return TemporaryDatabase(url: server[..<slash] + "/" + name, name: String(name), serverURL: server)
    }

    /// Runs SQL against this database through `psql` and returns its unaligned output
    /// (`|`-separated columns, one row a line).
    @discardableResult
    public func sql(_ statement: String) throws -> String {
        try psql(url, statement)
    }

    public func drop() {
        _ = try? psql(serverURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }
}

@discardableResult
func psql(_ url: String, _ statement: String) throws -> String {
    let result = try runProcess("/usr/bin/psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", statement])
    guard result.status == 0 else {
        throw PSQLFailed(statement: statement, stderr: result.stderr)
    }
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

public struct PSQLFailed: Error, CustomStringConvertible {
    public var statement: String
    public var stderr: String
    public var description: String { "psql failed: \(stderr) (statement: \(statement))" }
}
