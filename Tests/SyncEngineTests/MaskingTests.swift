import Foundation
import Logging
import Synchronization
import Testing
@testable import SyncEngine

/// Masking e-mail addresses, and the log handler that must never let one (or a secret) through.
@Suite struct MaskingTests {
    @Test func masksOneAddress() {
        #expect(Masking.maskEmail("jan.jansen@example.org") == "j…@example.org")
        #expect(Masking.maskEmail("j@example.org") == "j…@example.org")
        #expect(Masking.maskEmail("") == "")
        #expect(Masking.maskEmail("not-an-address") == "…")
        #expect(Masking.maskEmail("@example.org") == "…@example.org")
    }

    @Test(arguments: [
        ("mail jan.jansen@example.org now", "mail j…@example.org now"),
        ("<piet+tag@sub.example.co.uk>", "<p…@sub.example.co.uk>"),
        ("two: a.b@x.nl, c_d@y.org.", "two: a…@x.nl, c…@y.org."),
        ("mail=jose.garcía@universidad.es", "mail=j…@universidad.es"),
        ("\"Jan\" <jan@example.org>", "\"Jan\" <j…@example.org>"),
        ("unicode ü.ber@bücher.de end", "unicode ü…@bücher.de end"),
        ("malformed bad@@example.org", "malformed b…@example.org"),
    ])
    func scrubsAddressesInText(text: String, expected: String) {
        #expect(Masking.scrub(text) == expected)
    }

    @Test(arguments: ["no address here", "user @ host", "a@ b", "trailing@", "@leading", "x@.org", "j…@example.org"])
    func leavesOtherTextAlone(text: String) {
        #expect(Masking.scrub(text) == text)
    }

    @Test func scrubbingIsIdempotent() {
        let once = Masking.scrub("a.b@c.org and d@e.nl")
        #expect(Masking.scrub(once) == once)
    }
}

/// Collects the lines a log handler writes.
final class LineSink: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    func write(_ line: String) { lines.withLock { $0.append(line) } }
}

@Suite struct MaskingLogHandlerTests {
    private func logger(journal: Bool, level: Logger.Level = .trace, redactor: LogRedactor = LogRedactor()) -> (Logger, LineSink) {
        let sink = LineSink()
        let handler = StderrLogHandler(label: "test", level: level, journal: journal, redactor: redactor) { sink.write($0) }
        return (Logger(label: "test", factory: { _ in handler }), sink)
    }

    @Test func journalLinesCarryThePriorityPrefix() {
        let (log, sink) = logger(journal: true)
        log.error("e")
        log.warning("w")
        log.notice("n")
        log.info("i")
        log.debug("d")
        log.trace("t")
        log.critical("c")
        #expect(sink.all == ["<3>e\n", "<4>w\n", "<5>n\n", "<6>i\n", "<7>d\n", "<7>t\n", "<2>c\n"])
    }

    @Test func plainLinesCarryTimeAndLevel() throws {
        let (log, sink) = logger(journal: false)
        log.warning("disk almost full", metadata: ["service": "ldap", "free": "3 GiB"])
        let line = try #require(sink.all.first)
        let regex = try Regex(#"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING disk almost full free="3 GiB" service=ldap\n$"#)
        #expect(line.wholeMatch(of: regex) != nil, "\(line)")
    }

    @Test func respectsTheLevel() {
        let (log, sink) = logger(journal: true, level: .warning)
        log.info("hidden")
        log.error("shown")
        #expect(sink.all == ["<3>shown\n"])
    }

    @Test func oneLinePerEvent() {
        let (log, sink) = logger(journal: true)
        log.info("first\nsecond", metadata: ["k": "a\nb"])
        #expect(sink.all == ["<6>first\\nsecond k=a\\nb\n"])
    }

    @Test func noAddressPasses() {
        let (log, sink) = logger(journal: true)
        log.info("created jan.jansen@example.org", metadata: ["email": "piet@example.org", "list": ["x@y.nl"]])
        let line = sink.all.joined()
        #expect(!line.contains("jan.jansen@"))
        #expect(!line.contains("piet@"))
        #expect(!line.contains("x@y.nl"))
        #expect(line.contains("j…@example.org"))
    }

    @Test func registeredSecretsAreRedacted() {
        let redactor = LogRedactor()
        redactor.register(["hunter2-password", "abc"])  // "abc" is too short to redact
        let (log, sink) = logger(journal: true, redactor: redactor)
        log.error("bind failed with hunter2-password for abc", metadata: ["pw": "hunter2-password"])
        #expect(sink.all == ["<3>bind failed with <redacted> for abc pw=<redacted>\n"])
    }

    @Test func errorsAreLoggedAsMetadata() {
        let (log, sink) = logger(journal: true)
        struct Boom: Error, CustomStringConvertible { var description: String { "boom at a@b.org" } }
        log.error("failed", error: Boom())
        #expect(sink.all == ["<3>failed error=\"boom at a…@b.org\"\n"])
    }
}
