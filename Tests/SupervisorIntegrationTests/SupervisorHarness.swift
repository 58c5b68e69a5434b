import Foundation
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// A `sudosos-sync run` process under test: configured by a test JSON file
/// (`SUDOSOS_SYNC_TEST_CONFIG`, a debug-build hook), its stderr collected in a file.
final class SupervisorHarness: @unchecked Sendable {
    let directory: URL
    let process = Process()
    let logURL: URL
    let configURL: URL

    /// `config`: the test JSON (`SUDOSOS_SYNC_TEST_CONFIG`), or with `yaml: true` a real
    /// YAML configuration passed with `--config`. `unprivileged`: run it as `nobody` without
    /// capabilities (through setpriv, which execs it: the pid stays the supervisor's).
    init(config: String, yaml: Bool = false, environment extra: [String: String] = [:], unprivileged: Bool = false) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sup-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        configURL = directory.appendingPathComponent(yaml ? "config.yaml" : "config.json")
        logURL = directory.appendingPathComponent("stderr.log")
        try config.replacingOccurrences(of: "$DIR", with: directory.path).write(to: configURL, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        var binary = TestEnvironment.executable("sudosos-sync")
        let arguments = yaml ? ["run", "--config", configURL.path] : ["run"]
        if unprivileged {
            // A copy in this folder: the checkout may sit where `nobody` cannot go (/root).
            let copy = directory.appendingPathComponent("sudosos-sync").path
            try FileManager.default.copyItem(atPath: binary, toPath: copy)
            binary = copy
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: configURL.path)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments =
                ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", binary]
                + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        }
        var environment = ["PATH": "/usr/bin:/bin"]
        if !yaml { environment["SUDOSOS_SYNC_TEST_CONFIG"] = configURL.path }
        for (k, v) in extra { environment[k] = v.replacingOccurrences(of: "$DIR", with: directory.path) }
        process.environment = environment
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        let log = try FileHandle(forWritingTo: logURL)
        process.standardError = log
        process.standardOutput = log
        try process.run()
    }

    var pid: pid_t { process.processIdentifier }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Waits for a log line containing `text`; returns the number of such lines.
    @discardableResult
    func waitForLog(_ text: String, count: Int = 1, timeout: Duration = .seconds(10)) async throws -> Int {
        var seen = 0
        try await waitUntil("log line '\(text)' ×\(count)\n--- log:\n\(log)", timeout: timeout) {
            seen = self.log.components(separatedBy: "\n").filter { $0.contains(text) }.count
            return seen >= count
        }
        return seen
    }

    /// The time stamp of the first log line containing `text` (the supervisor's own clock, so
    /// a busy test machine's polling delay does not count).
    func logTime(of text: String) -> Date? {
        guard let line = log.split(separator: "\n").first(where: { $0.contains(text) }),
            let stamp = line.split(separator: " ").first
        else { return nil }
        return try? Date(String(stamp), strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Waits for a file a test worker writes (`pid`, `env` steps) and returns its content.
    func waitForFile(_ name: String, timeout: Duration = .seconds(10)) async throws -> String {
        let p = path(name)
        var content = ""
        try await waitUntil("file \(name)\n--- log:\n\(log)", timeout: timeout) {
            content = (try? String(contentsOfFile: p, encoding: .utf8)) ?? ""
            return content.hasSuffix("\n")
        }
        return content
    }

    func signal(_ sig: Int32) { kill(pid, sig) }

    /// Waits for the supervisor to exit; returns its status.
    func waitForExit(timeout: Duration = .seconds(15)) async throws -> Int32 {
        try await waitUntil("supervisor exit\n--- log:\n\(log)", timeout: timeout) { !self.process.isRunning }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}

/// True while `pid` exists and is not a zombie.
func isAlive(_ pid: pid_t) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state != "Z" && state != "X"
}

/// Every live process whose process group is `pgid`.
func processes(inGroup pgid: pid_t) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        // fields: state ppid pgrp ...
        return fields.count > 2 && Int32(fields[2]) == pgid && fields[0] != "Z"
    }
}

/// A datagram socket playing systemd's notify socket: collects every message with the
/// instant it arrived.
final class FakeNotifySocket: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [(Date, String)] = []
    private var thread: Thread?
    private var stopped = false

    init(directory: URL) throws {
        path = directory.appendingPathComponent("notify.sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (i, byte) in path.utf8.enumerated() where i < buffer.count - 1 { buffer[i] = byte }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [unowned self] in self.receive() }
        self.thread = thread
        thread.start()
    }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !lock.withLock({ stopped }) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                let text = String(decoding: buffer[0..<n], as: UTF8.self)
                lock.withLock { received.append((Date(), text)) }
            }
        }
    }

    var messages: [(Date, String)] { lock.withLock { received } }

    /// Messages containing the line `KEY=...` (or exactly `line`).
    func with(_ line: String) -> [(Date, String)] {
        messages.filter { $0.1.split(separator: "\n").contains { $0 == line || $0.hasPrefix(line) } }
    }

    func stop() {
        lock.withLock { stopped = true }
        while thread?.isFinished == false { usleep(10_000) }
        close(fd)
    }
}
