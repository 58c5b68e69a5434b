import CMariaDB
import Foundation
import SyncEngine

/// One MariaDB/MySQL session over Connector/C. Owns its `MYSQL*` and closes it in `deinit`.
///
/// Not thread-safe: one caller at a time. `MariaDBStore` only uses it on its serial queue,
/// which is what the `@unchecked Sendable` relies on. A statement with values is always a
/// prepared statement (`MariaDBStatement`) with every value bound as a parameter; only
/// statements without values (BEGIN, COMMIT, fixed SELECTs) go through `mysql_real_query`.
///
/// The session runs with `ANSI_QUOTES` (so `"user"."firstName"` quotes identifiers as on
/// PostgreSQL and the shared statements read the same), strict mode, utf8mb4 and
/// REPEATABLE READ.
final class MariaDBConnection: SQLSession, @unchecked Sendable {
    var dialect: SQLDialect { .mariadb }

    /// The Connector/C handle; connected from `init` until `deinit`.
    private let handle: UnsafeMutablePointer<MYSQL>
    /// `HOST:PORT/DB`, for messages (no user, no password).
    let endpoint: String
    /// The server's version string (`10.11.6-MariaDB-0+deb12u1`).
    let serverVersion: String
    /// The server's id of this session (`CONNECTION_ID()`).
    let connectionId: UInt
    let counter: RoundTripCounter
    /// Set when the server went away; the store then opens a new session.
    private var broken = false

    /// Connects, failing with `SyncError.unavailable` when the server cannot be reached (or
    /// refuses us) within `connectTimeout`.
    init(target: MariaDBTarget, password: String?, connectTimeout: Duration, counter: RoundTripCounter) throws {
        guard let handle = mysql_init(nil) else {
            throw SyncError.unavailable("cannot reach the database: Connector/C could not allocate a connection")
        }
        let endpoint = "\(target.host ?? "localhost"):\(target.port)/\(target.database)"
        let seconds = max(1, UInt32((Double(connectTimeout.components.seconds)
            + Double(connectTimeout.components.attoseconds) / 1e18).rounded(.up)))
        var timeout = seconds
        mysql_options(handle, MYSQL_OPT_CONNECT_TIMEOUT, &timeout)
        // Connector/C also waits for the server's greeting at most this long, so a server that
        // accepts the TCP connection and never answers (frozen) fails the connect too.
        mysql_options(handle, MYSQL_SET_CHARSET_NAME, "utf8mb4")
        mysql_options4(handle, MYSQL_OPT_CONNECT_ATTR_ADD, "program_name", "sudosos-sync")
        if target.tls.enabled {
            var on: my_bool = 1
            mysql_options(handle, MYSQL_OPT_SSL_ENFORCE, &on)
            var verify: my_bool = target.tls.verifyServer ? 1 : 0
            mysql_options(handle, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify)
            if let ca = target.tls.caFile { mysql_options(handle, MYSQL_OPT_SSL_CA, ca) }
        }
        let flags = UInt(CLIENT_FOUND_ROWS)
        let connected = mysql_real_connect(
            handle, target.host, target.user, password, target.database, UInt32(target.port), target.socket, flags)
        guard connected != nil else {
            let reason = Self.firstLine(mysql_error(handle))
            mysql_close(handle)
            throw SyncError.unavailable("cannot reach the database at \(endpoint): \(reason)")
        }
        self.handle = handle
        self.endpoint = endpoint
        self.counter = counter
        serverVersion = String(cString: mysql_get_server_info(handle))
        connectionId = UInt(mysql_thread_id(handle))
        try execute(
            "SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'ANSI_QUOTES', 'STRICT_TRANS_TABLES')",
            what: "setting up the session")
        try execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", what: "setting up the session")
    }

    deinit {
        mysql_close(handle)
    }

    var isHealthy: Bool { !broken }

    /// Runs one statement and returns its rows: a prepared statement with `parameters` bound
    /// as text (`nil` is SQL NULL) when there are any, a plain query otherwise.
    ///
    /// Errors: the server's → `SyncError.failed` naming `what`, the error number and the
    /// SQLSTATE, never a parameter value; a lost connection → `SyncError.unavailable`.
    @discardableResult
    func query(_ sql: String, _ parameters: [String?] = [], what: String) throws -> SQLRows {
        counter.increment()
        if parameters.isEmpty { return try plainQuery(sql, what: what) }
        let statement = try MariaDBStatement(connection: self, handle: handle, sql: sql, what: what)
        return try statement.run(parameters, what: what)
    }

    func execute(_ sql: String, what: String) throws {
        try query(sql, [], what: what)
    }

    private func plainQuery(_ sql: String, what: String) throws -> SQLRows {
        let status = sql.utf8CString.withUnsafeBufferPointer { buffer in
            mysql_real_query(handle, buffer.baseAddress, UInt(buffer.count - 1))
        }
        guard status == 0 else { throw error(what: what) }
        guard let result = mysql_store_result(handle) else {
            if mysql_field_count(handle) != 0 { throw error(what: what) }
            return SQLRows(columns: [], values: [], affected: Int(mysql_affected_rows(handle)))
        }
        defer { mysql_free_result(result) }
        let columnCount = Int(mysql_num_fields(result))
        let fields = mysql_fetch_fields(result)!
        let columns = (0..<columnCount).map { String(cString: fields[$0].name) }
        var values: [[String?]] = []
        while let row = mysql_fetch_row(result) {
            let lengths = mysql_fetch_lengths(result)!
            values.append((0..<columnCount).map { c in
                guard let cell = row[c] else { return nil }
                return String(decoding: UnsafeRawBufferPointer(start: cell, count: Int(lengths[c])), as: UTF8.self)
            })
        }
        if mysql_errno(handle) != 0 { throw error(what: what) }
        return SQLRows(columns: columns, values: values, affected: 0)
    }

    // MARK: - Errors

    /// The error of the last call on the session (or of `statement`), as a `SyncError`.
    func error(what: String, statement: UnsafeMutablePointer<MYSQL_STMT>? = nil) -> SyncError {
        let number: UInt32, sqlstate: String, message: String
        if let statement {
            number = UInt32(mysql_stmt_errno(statement))
            sqlstate = String(cString: mysql_stmt_sqlstate(statement))
            message = Self.firstLine(mysql_stmt_error(statement))
        } else {
            number = UInt32(mysql_errno(handle))
            sqlstate = String(cString: mysql_sqlstate(handle))
            message = Self.firstLine(mysql_error(handle))
        }
        // 2006 server gone, 2013 lost during query, 2055 lost at handshake/reading, 2026 TLS
        if [2006, 2013, 2055].contains(number) || (2000..<2100).contains(number) && number != 2031 {
            broken = true
            return .unavailable("lost the connection to the database at \(endpoint) while \(what): \(message)")
        }
        return .failed("\(what) failed (error \(number), SQLSTATE \(sqlstate)): \(Self.redacted(message, sqlstate: sqlstate))")
    }

    /// The first non-empty line of a Connector/C message.
    static func firstLine(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "unknown error" }
        let line = String(cString: message).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.first { !$0.isEmpty }
        return line ?? "unknown error"
    }

    /// Data and constraint errors (SQLSTATE classes 22 and 23) quote the offending value
    /// (`Duplicate entry 'x' for key ...`, `Incorrect integer value: 'x'`); blank every quoted
    /// part, it may be personal data.
    static func redacted(_ message: String, sqlstate: String) -> String {
        guard sqlstate.hasPrefix("22") || sqlstate.hasPrefix("23") else { return message }
        var out = "", quoted = false
        for ch in message {
            if ch == "'" {
                if !quoted { out += "'…'" }
                quoted.toggle()
            } else if !quoted {
                out.append(ch)
            }
        }
        return out
    }
}

/// One prepared statement. Owns its `MYSQL_STMT*` and closes it in `deinit`. Every parameter
/// is bound as a string (the server converts it to the column's type); every result column is
/// fetched as a string, long values in a second step (`mysql_stmt_fetch_column`).
final class MariaDBStatement {
    private let handle: UnsafeMutablePointer<MYSQL_STMT>
    private unowned let connection: MariaDBConnection

    init(connection: MariaDBConnection, handle mysql: UnsafeMutablePointer<MYSQL>, sql: String, what: String) throws {
        guard let statement = mysql_stmt_init(mysql) else {
            throw connection.error(what: what)
        }
        self.handle = statement
        self.connection = connection
        let status = sql.utf8CString.withUnsafeBufferPointer { buffer in
            mysql_stmt_prepare(statement, buffer.baseAddress, UInt(buffer.count - 1))
        }
        guard status == 0 else { throw connection.error(what: what, statement: statement) }
    }

    deinit {
        mysql_stmt_close(handle)
    }

    func run(_ parameters: [String?], what: String) throws -> SQLRows {
        let expected = Int(mysql_stmt_param_count(handle))
        guard expected == parameters.count else {
            throw SyncError.failed("\(what) failed: the statement takes \(expected) values, \(parameters.count) given")
        }
        // Parameter buffers live until the statement has been executed.
        let copies: [UnsafeMutablePointer<CChar>?] = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { copies.forEach { free($0) } }
        var lengths: [UInt] = parameters.map { UInt($0?.utf8.count ?? 0) }
        var nulls: [my_bool] = parameters.map { $0 == nil ? 1 : 0 }
        var binds = [MYSQL_BIND](repeating: MYSQL_BIND(), count: parameters.count)
        let executed: Int32 = lengths.withUnsafeMutableBufferPointer { lengthPointer in
            nulls.withUnsafeMutableBufferPointer { nullPointer in
                for i in binds.indices {
                    binds[i].buffer_type = MYSQL_TYPE_STRING
                    binds[i].buffer = UnsafeMutableRawPointer(copies[i])
                    binds[i].buffer_length = lengthPointer[i]
                    binds[i].length = lengthPointer.baseAddress! + i
                    binds[i].is_null = nullPointer.baseAddress! + i
                }
                return binds.withUnsafeMutableBufferPointer { bindPointer in
                    if !bindPointer.isEmpty, mysql_stmt_bind_param(handle, bindPointer.baseAddress) != 0 { return -1 }
                    return mysql_stmt_execute(handle)
                }
            }
        }
        guard executed == 0 else { throw connection.error(what: what, statement: handle) }
        return try fetch(what: what)
    }

    private func fetch(what: String) throws -> SQLRows {
        guard let metadata = mysql_stmt_result_metadata(handle) else {
            return SQLRows(columns: [], values: [], affected: Int(mysql_stmt_affected_rows(handle)))
        }
        defer { mysql_free_result(metadata) }
        let columnCount = Int(mysql_num_fields(metadata))
        let fields = mysql_fetch_fields(metadata)!
        let columns = (0..<columnCount).map { String(cString: fields[$0].name) }
        let capacity: UInt = 256
        let buffers = (0..<columnCount).map { _ in UnsafeMutablePointer<CChar>.allocate(capacity: Int(capacity)) }
        defer { buffers.forEach { $0.deallocate() } }
        let lengths = UnsafeMutablePointer<UInt>.allocate(capacity: max(1, columnCount))
        let nulls = UnsafeMutablePointer<my_bool>.allocate(capacity: max(1, columnCount))
        let errors = UnsafeMutablePointer<my_bool>.allocate(capacity: max(1, columnCount))
        defer { lengths.deallocate(); nulls.deallocate(); errors.deallocate() }
        var binds = [MYSQL_BIND](repeating: MYSQL_BIND(), count: columnCount)
        for c in 0..<columnCount {
            binds[c].buffer_type = MYSQL_TYPE_STRING
            binds[c].buffer = UnsafeMutableRawPointer(buffers[c])
            binds[c].buffer_length = capacity
            binds[c].length = lengths + c
            binds[c].is_null = nulls + c
            binds[c].error = errors + c
        }
        var values: [[String?]] = []
        try binds.withUnsafeMutableBufferPointer { bindPointer in
            guard mysql_stmt_bind_result(handle, bindPointer.baseAddress) == 0,
                mysql_stmt_store_result(handle) == 0
            else { throw connection.error(what: what, statement: handle) }
            while true {
                let status = mysql_stmt_fetch(handle)
                if status == MYSQL_NO_DATA { break }
                guard status == 0 || status == MYSQL_DATA_TRUNCATED else {
                    throw connection.error(what: what, statement: handle)
                }
                var row: [String?] = []
                row.reserveCapacity(columnCount)
                for c in 0..<columnCount {
                    if nulls[c] != 0 { row.append(nil); continue }
                    let length = Int(lengths[c])
                    if length <= Int(capacity) {
                        row.append(String(decoding: UnsafeRawBufferPointer(start: buffers[c], count: length), as: UTF8.self))
                        continue
                    }
                    // Longer than the buffer: fetch the whole value into one of its size.
                    let long = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 1)
                    defer { long.deallocate() }
                    var column = bindPointer[c]
                    column.buffer = long
                    column.buffer_length = UInt(length)
                    guard mysql_stmt_fetch_column(handle, &column, UInt32(c), 0) == 0 else {
                        throw connection.error(what: what, statement: handle)
                    }
                    row.append(String(decoding: UnsafeRawBufferPointer(start: long, count: length), as: UTF8.self))
                }
                values.append(row)
            }
        }
        return SQLRows(columns: columns, values: values, affected: Int(mysql_stmt_affected_rows(handle)))
    }
}
