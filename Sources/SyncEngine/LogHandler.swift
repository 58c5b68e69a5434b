import Foundation
import Logging
import Synchronization

/// The log lines of sudosos-sync: one line per event on stderr.
///
/// Under systemd (`JOURNAL_STREAM` set) a line starts with the journald priority prefix
/// (`<3>` error, `<4>` warning, `<5>` notice, `<6>` info, `<7>` debug and trace, `<2>` critical)
/// and carries no time stamp, as the journal adds one. Otherwise it starts with an ISO 8601 time
/// and the level in capitals. Metadata follows the message as `key=value` (values with blanks
/// or quotes in double quotes), sorted by key.
///
/// As a safety net every line is scrubbed: anything that looks like an e-mail address is masked
/// and every secret registered with the `LogRedactor` is replaced by `<redacted>`.
public struct StderrLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// Write journald priority prefixes instead of time stamps and level names.
    public let journal: Bool
    private let label: String
    private let redactor: LogRedactor
    private let write: @Sendable (String) -> Void

    /// - Parameters:
    ///   - journal: `nil`: decide by `JOURNAL_STREAM` in the environment.
    ///   - write: where a finished line (with its newline) goes; stderr by default.
    public init(
        label: String, level: Logger.Level = .info, journal: Bool? = nil, redactor: LogRedactor = .shared,
        metadataProvider: Logger.MetadataProvider? = nil,
        write: @escaping @Sendable (String) -> Void = StderrLogHandler.writeToStderr
    ) {
        self.label = label
        self.logLevel = level
        self.journal = journal ?? (ProcessInfo.processInfo.environment["JOURNAL_STREAM"]?.isEmpty == false)
        self.redactor = redactor
        self.metadataProvider = metadataProvider
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        if let error = event.error { merged["error"] = .string("\(error)") }
        write(format(level: event.level, message: event.message.description, metadata: merged))
    }

    /// The finished line, newline included.
    func format(level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        var line = journal ? "<\(Self.priority(level))>" : "\(Self.timestamp()) \(Self.levelName(level)) "
        line += Self.oneLine(message)
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            line += " \(key)=\(Self.quote(Self.render(value)))"
        }
        return redactor.redact(line) + "\n"
    }

    /// The journald / syslog priority of a level.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace: return "TRACE"
        case .debug: return "DEBUG"
        case .info: return "INFO"
        case .notice: return "NOTICE"
        case .warning: return "WARNING"
        case .error: return "ERROR"
        case .critical: return "CRITICAL"
        }
    }

    private static func timestamp() -> String {
        Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    private static func render(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let values): return "[" + values.map(render).joined(separator: ",") + "]"
        case .dictionary(let dict):
            return "{" + dict.sorted { $0.key < $1.key }.map { "\($0.key)=\(render($0.value))" }.joined(separator: ",") + "}"
        }
    }

    /// Newlines and other control characters escaped, so an event stays one line.
    static func oneLine(_ text: String) -> String {
        guard text.contains(where: { $0.isNewline || ($0.asciiValue.map { $0 < 0x20 } ?? false) }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar == "\u{2028}" || scalar == "\u{2029}" {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    static func quote(_ value: String) -> String {
        let flat = oneLine(value)
        guard flat.isEmpty || flat.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) else { return flat }
        return "\"" + flat.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// Writes `line` to stderr in one `write(2)`, so lines of concurrent events do not interleave.
    @Sendable public static func writeToStderr(_ line: String) {
        var bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                Foundation.write(2, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }

    /// Installs the handler for every logger of the process at `level`.
    public static func bootstrap(level: Logger.Level, journal: Bool? = nil) {
        LoggingSystem.bootstrap { label in
            StderrLogHandler(label: label, level: level, journal: journal)
        }
    }
}

/// Secrets the log handler must never print, and the e-mail scrubber. The command line
/// registers the configuration's secrets once it has read them.
public final class LogRedactor: Sendable {
    /// The redactor of the process's log handlers.
    public static let shared = LogRedactor()

    private let secrets = Mutex<[String]>([])

    public init() {}

    /// Adds secrets to redact; values shorter than 4 characters are ignored (they would mangle
    /// ordinary text and are no secret worth the name).
    public func register(_ values: [String]) {
        let useful = values.filter { $0.count >= 4 }
        guard !useful.isEmpty else { return }
        secrets.withLock { list in
            for value in useful where !list.contains(value) { list.append(value) }
            list.sort { $0.count > $1.count }  // longest first, so a secret containing another goes whole
        }
    }

    /// `text` with every registered secret replaced and e-mail addresses masked.
    public func redact(_ text: String) -> String {
        var out = text
        let list = secrets.withLock { $0 }
        for secret in list where out.contains(secret) {
            out = out.replacingOccurrences(of: secret, with: "<redacted>")
        }
        return Masking.scrub(out)
    }
}
