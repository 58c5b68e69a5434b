import CProcessSpawn
import Foundation
import SyncEngine

#if canImport(Glibc)
import Glibc
#endif

/// One line on the result pipe (descriptor 3 in the worker): the structured channel from a
/// worker to its supervisor, separate from the logs on stdout/stderr.
///
/// Wire format: one JSON object per line, `{"type":"heartbeat","phase":"fetch"}`; dates in
/// seconds since 1970. Types: `started`, `heartbeat`, `source_request`, `summary`.
public struct WorkerMessage: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable {
        /// The worker is up and about to work (its first line of work).
        case started
        /// The run makes progress; `phase` says where.
        case heartbeat
        /// One request to the source (`ok`, `seconds`).
        case sourceRequest = "source_request"
        /// The run's final summary.
        case summary
    }

    public var type: Kind
    public var at: Date?
    public var phase: String?
    public var ok: Bool?
    public var seconds: Double?
    public var summary: RunSummary?

    public init(
        type: Kind, at: Date? = nil, phase: String? = nil, ok: Bool? = nil, seconds: Double? = nil,
        summary: RunSummary? = nil
    ) {
        self.type = type
        self.at = at
        self.phase = phase
        self.ok = ok
        self.seconds = seconds
        self.summary = summary
    }

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return decoder
    }

    /// The line (without newline) for this message.
    public func line() -> String {
        guard let data = try? Self.encoder().encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Parses one line; nil if it is not a message.
    public static func parse(_ line: Substring) -> WorkerMessage? {
        try? decoder().decode(WorkerMessage.self, from: Data(line.utf8))
    }
}

/// The worker's end of the result pipe. Thread-safe; writes whole lines.
public final class ResultChannel: RunReporter, @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()

    /// The channel on ``SUDOSOS_RESULT_FD`` if the supervisor opened it, else nil (a worker
    /// started by hand).
    public static func inherited() -> ResultChannel? {
        let fd = Int32(SUDOSOS_RESULT_FD)
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFIFO else { return nil }
        return ResultChannel(fd: fd)
    }

    init(fd: Int32) { self.fd = fd }

    public func send(_ message: WorkerMessage) {
        let bytes = Array((message.line() + "\n").utf8)
        lock.lock()
        defer { lock.unlock() }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }

    public func heartbeat(phase: String) {
        send(WorkerMessage(type: .heartbeat, phase: phase))
    }

    public func sourceRequest(ok: Bool, seconds: Double) {
        send(WorkerMessage(type: .sourceRequest, ok: ok, seconds: seconds))
    }
}

/// The worker's end of the configuration pipe (descriptor 4).
public enum WorkerInput {
    /// Reads descriptor 4 to its end; nil when the supervisor passed none.
    public static func read() -> Data? {
        let fd = Int32(SUDOSOS_CONFIG_FD)
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFIFO else { return nil }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                data.append(contentsOf: buffer[0..<n])
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        close(fd)
        return data
    }
}

/// The environment variables of the supervisor ↔ worker protocol.
public enum WorkerEnvironment {
    /// The supervisor's pid: the worker exits at once if its parent is not this one.
    public static let supervisorPID = "SUDOSOS_SYNC_SUPERVISOR_PID"

    /// Variables passed from the supervisor's own environment to every child: the basics a
    /// process needs, never `NOTIFY_SOCKET`, `WATCHDOG_*`, `LISTEN_*` or anything with secrets.
    public static let inherited = [
        "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TZDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "SUDOSOS_SYNC_LOG_LEVEL",
    ]

    /// Checks, at the worker's start, that the supervisor that spawned it is still its parent
    /// (PR_SET_PDEATHSIG covers a later death; this closes the race before it was armed).
    /// Returns false when the worker must exit.
    public static func parentIsAlive(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let text = environment[supervisorPID], let expected = Int32(text) else { return true }
        _ = sudosos_set_parent_death_signal()
        return getppid() == expected
    }
}
