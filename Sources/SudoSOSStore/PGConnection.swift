import CLibPQ
import Foundation
import SyncEngine

/// One PostgreSQL session over libpq. Owns its `PGconn*` and finishes it in `deinit`.
///
/// Not thread-safe: one caller at a time. `PostgresStore` only uses it on its serial queue,
/// which is what the `@unchecked Sendable` relies on. Every statement goes through `PQexecParams` with text parameters, so every value is
/// a bound parameter and never part of the SQL text.
final class PGConnection: SQLSession, @unchecked Sendable {
    var dialect: SQLDialect { .postgres }

    /// The libpq handle; valid (and `CONNECTION_OK` at creation) until `deinit`.
    private let handle: OpaquePointer
    /// `HOST:PORT/DB` as libpq resolved it, for messages (no user, no password).
    let endpoint: String
    /// Counts the round trips of this connection, shared with the store.
    let counter: RoundTripCounter

    /// Connects, failing fast with `SyncError.unavailable` when the server cannot be reached
    /// within `connectTimeout` or refuses us.
    ///
    /// - Parameters:
    ///   - url: a libpq URI (`postgresql://...`) or conninfo (`host=... dbname=...`); TLS options
    ///     in it (`sslmode`, `sslrootcert`, ...) are honoured as given.
    ///   - password: passed to libpq as its own keyword, never part of any message.
    ///   - connectTimeout: libpq's `connect_timeout` (whole seconds, at least 2, per address).
    init(url: String, password: String?, connectTimeout: Duration, counter: RoundTripCounter) throws {
        let seconds = max(2, Int((Double(connectTimeout.components.seconds)
            + Double(connectTimeout.components.attoseconds) / 1e18).rounded(.up)))
        // `dbname` first with expand_dbname = 1: libpq expands a URI or conninfo found there,
        // and the keywords after it override what the string says.
        var keywords = ["dbname", "connect_timeout", "application_name"]
        var values = [url, String(seconds), "sudosos-sync"]
        if let password {
            keywords.append("password")
            values.append(password)
        }
        let conn: OpaquePointer? = withCStringArray(keywords) { kw in
            withCStringArray(values) { vals in PQconnectdbParams(kw, vals, 1) }
        }
        guard let conn else {
            throw SyncError.unavailable("cannot reach the database: libpq could not allocate a connection")
        }
        let endpoint = Self.describe(conn)
        guard PQstatus(conn) == CONNECTION_OK else {
            let reason = Self.firstLine(PQerrorMessage(conn))
            PQfinish(conn)
            throw SyncError.unavailable("cannot reach the database at \(endpoint): \(reason)")
        }
        // Notices (e.g. "relation already exists, skipping") would go to stderr otherwise.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        self.handle = conn
        self.endpoint = endpoint
        self.counter = counter
    }

    deinit {
        PQfinish(handle)
    }

    /// Runs one statement with text parameters (`nil` is SQL NULL) and returns its rows.
    ///
    /// Errors: the server's → `SyncError.failed` naming `what` and the SQLSTATE, never a
    /// parameter value; a lost connection → `SyncError.unavailable`.
    @discardableResult
    func query(_ sql: String, _ parameters: [String?] = [], what: String) throws -> PGRows {
        if parameters.contains(where: { $0?.unicodeScalars.contains("\u{0}") == true }) {
            throw SyncError.failed("\(what) failed: a value contains a NUL character, which PostgreSQL cannot store")
        }
        counter.increment()
        let result: OpaquePointer? = withOptionalCStringArray(parameters) { params in
            PQexecParams(handle, sql, Int32(parameters.count), nil, params, nil, nil, 0)
        }
        guard let result else {
            throw lostOrFailed(what: what, detail: Self.firstLine(PQerrorMessage(handle)))
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK:
            return PGRows(result)
        default:
            let sqlstate = PQresultErrorField(result, fieldCode("C")).map { String(cString: $0) }
            guard let sqlstate else {
                throw lostOrFailed(what: what, detail: Self.firstLine(PQerrorMessage(handle)))
            }
            let primary = PQresultErrorField(result, fieldCode("M")).map { String(cString: $0) } ?? "error"
            throw PGQueryError(what: what, sqlstate: sqlstate, message: Self.redacted(primary, sqlstate: sqlstate))
                .syncError
        }
    }

    /// Runs `sql` without parameters and ignores its rows (BEGIN, COMMIT, ...).
    func execute(_ sql: String, what: String) throws {
        try query(sql, [], what: what)
    }

    /// True while libpq considers the session usable.
    var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    // MARK: - Helpers

    private func lostOrFailed(what: String, detail: String) -> SyncError {
        if PQstatus(handle) != CONNECTION_OK {
            return .unavailable("lost the connection to the database at \(endpoint) while \(what): \(detail)")
        }
        return .failed("\(what) failed: \(detail)")
    }

    /// `HOST:PORT/DB` of a (possibly failed) connection.
    private static func describe(_ conn: OpaquePointer) -> String {
        func text(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
        let host = text(PQhost(conn)), port = text(PQport(conn)), db = text(PQdb(conn))
        return "\(host.isEmpty ? "localhost" : host):\(port.isEmpty ? "5432" : port)/\(db)"
    }

    /// The first non-empty line of a libpq message, without the `FATAL:`/`ERROR:` noise.
    static func firstLine(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "unknown error" }
        let lines = String(cString: message).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return lines.first ?? "unknown error"
    }

    /// Data exceptions (class 22) quote the offending input after a colon
    /// (`invalid input syntax for type integer: "..."`); drop it, it may be personal data.
    static func redacted(_ message: String, sqlstate: String) -> String {
        guard sqlstate.hasPrefix("22"), let colon = message.firstIndex(of: ":") else { return message }
        return String(message[..<colon])
    }

    private func fieldCode(_ letter: Unicode.Scalar) -> Int32 { Int32(UInt8(ascii: letter)) }
}

/// A statement the server refused.
struct PGQueryError: Error {
    var what: String
    var sqlstate: String
    var message: String

    var syncError: SyncError { .failed("\(what) failed (SQLSTATE \(sqlstate)): \(message)") }
}

/// A thread-safe counter of statements sent to the server (one `PQexecParams` = one round
/// trip). Tests assert on it; the store exposes it as `PostgresStore.roundTrips`.
public final class RoundTripCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    public init() {}

    public var value: Int { lock.withLock { count } }

    func increment() { lock.withLock { count += 1 } }
}

/// Calls `body` with a NULL-terminated array of C strings that live for the call.
private func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    var pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
    pointers.append(nil)
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Calls `body` with an array of C strings (NULL for `nil`) that live for the call.
private func withOptionalCStringArray<R>(
    _ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R
) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0) } ?? nil }
    defer { copies.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
}
