import Foundation
import SyncEngine

/// The SQL engines the store speaks. Statements both stores share (the snapshot, the balance)
/// are written once as `SharedSQL` and rendered per dialect; only what really differs (bound
/// lists, casts, placeholders, transaction starts) is decided here.
///
/// Both sessions quote identifiers the same way: MariaDB sessions run with `ANSI_QUOTES`
/// (`MariaDBConnection`), so `"user"."firstName"` means the same on both engines.
enum SQLDialect: String, Sendable {
    case postgres = "PostgreSQL"
    case mariadb = "MariaDB"

    /// Starts the read-only transaction in which a snapshot sees one moment.
    var beginSnapshot: String {
        switch self {
        case .postgres: return "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        // The session's isolation level is REPEATABLE READ (set when it connects).
        case .mariadb: return "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
        }
    }

    /// Starts a read-write transaction.
    var begin: String {
        switch self {
        case .postgres: return "BEGIN"
        case .mariadb: return "START TRANSACTION"
        }
    }

    /// The schema (PostgreSQL) or database (MariaDB) SudoSOS's tables are found in. On
    /// PostgreSQL that is the first schema of the search path other than our own: a role named
    /// `sudosos_sync` has our schema first (`"$user"`), where no SudoSOS table lives.
    var currentSchema: String {
        switch self {
        case .postgres: return "(SELECT s FROM unnest(current_schemas(false)) AS s WHERE s <> 'sudosos_sync' LIMIT 1)"
        case .mariadb: return "DATABASE()"
        }
    }

    /// One service's recorded verdicts (parameter: the service) with their age in seconds on
    /// the database's clock: `user_id`, `vouches`, `run_id`, `age`.
    var peerVerdicts: String {
        switch self {
        case .postgres:
            return """
                SELECT user_id, vouches, run_id, extract(epoch FROM now() - at)::float8 AS age
                FROM sudosos_sync.verdict WHERE service = $1
                """
        // `at` is UTC (`UTC_TIMESTAMP(6)` when written), so the age is taken against UTC too.
        case .mariadb:
            return """
                SELECT user_id, vouches, run_id, TIMESTAMPDIFF(MICROSECOND, at, UTC_TIMESTAMP(6)) / 1000000 AS age
                FROM sudosos_sync_verdict WHERE service = ?
                """
        }
    }

    /// `expression` as plain text (PostgreSQL's information schema has its own string types).
    func text(_ expression: String) -> String {
        switch self {
        case .postgres: return "\(expression)::text"
        case .mariadb: return expression
        }
    }

    /// Whether every table in `names` exists (one row, boolean column `ok`).
    func tablesPresent(_ names: [String]) -> (sql: String, parameters: [String?]) {
        switch self {
        case .postgres:
            return ("SELECT bool_and(to_regclass(name) IS NOT NULL) AS ok FROM unnest($1::text[]) AS name",
                    [PGValue.textArray(names)])
        case .mariadb:
            let marks = Array(repeating: "?", count: names.count).joined(separator: ", ")
            return ("""
                SELECT count(*) = ? AS ok FROM information_schema.tables
                WHERE table_schema = DATABASE() AND table_name IN (\(marks))
                """, [String(names.count)] + names)
        }
    }
}

/// SQL text with bound values, written once for both engines. Interpolate lists with
/// `\(ints:)` / `\(texts:)` (a derived table of one column `v`: `x IN (SELECT v FROM \(ints: ids) AS l)`)
/// and wide integer casts with `\(bigint:)`; everything else is literal SQL text.
/// Values are always bound parameters: `$n` on PostgreSQL, `?` on MariaDB.
struct SharedSQL: ExpressibleByStringInterpolation, Sendable {
    enum Segment: Sendable {
        case text(String)
        case ints([Int])
        case texts([String])
        case bigint(String)
    }

    var segments: [Segment] = []

    init(stringLiteral value: String) { segments = [.text(value)] }

    init(stringInterpolation: Interpolation) { segments = stringInterpolation.segments }

    struct Interpolation: StringInterpolationProtocol {
        var segments: [Segment] = []
        init(literalCapacity: Int, interpolationCount: Int) {}
        mutating func appendLiteral(_ literal: String) { segments.append(.text(literal)) }
        /// A bound list of integers as a one-column derived table `v`.
        mutating func appendInterpolation(ints: [Int]) { segments.append(.ints(ints)) }
        /// A bound list of texts as a one-column derived table `v`.
        mutating func appendInterpolation(texts: [String]) { segments.append(.texts(texts)) }
        /// Literal SQL text decided by the dialect (`SQLDialect.text`, `currentSchema`).
        mutating func appendInterpolation(raw text: String) { segments.append(.text(text)) }
        /// `expression` as a 64-bit signed integer.
        mutating func appendInterpolation(bigint expression: String) { segments.append(.bigint(expression)) }
    }

    /// The statement's text and parameters for `dialect`. A list used twice is bound twice.
    func render(_ dialect: SQLDialect) -> (sql: String, parameters: [String?]) {
        var sql = "", parameters: [String?] = []
        for segment in segments {
            switch (segment, dialect) {
            case (.text(let text), _):
                sql += text
            case (.bigint(let expression), .postgres):
                sql += "CAST(\(expression) AS bigint)"
            case (.bigint(let expression), .mariadb):
                sql += "CAST(\(expression) AS SIGNED)"
            case (.ints(let values), .postgres):
                parameters.append(PGValue.intArray(values))
                sql += "(SELECT unnest($\(parameters.count)::int[]) AS v)"
            case (.texts(let values), .postgres):
                parameters.append(PGValue.textArray(values))
                sql += "(SELECT unnest($\(parameters.count)::text[]) AS v)"
            case (.ints(let values), .mariadb):
                parameters.append("[" + values.map(String.init).joined(separator: ",") + "]")
                sql += "(SELECT v FROM JSON_TABLE(?, '$[*]' COLUMNS (v INT PATH '$')) AS jt)"
            case (.texts(let values), .mariadb):
                // One placeholder per value: a bound string takes the column's collation, where
                // a JSON_TABLE column could clash with it. Used for short lists only (user types).
                parameters.append(contentsOf: values.map(Optional.some))
                sql += "(SELECT " + (values.isEmpty ? "NULL AS v FROM DUAL WHERE FALSE"
                    : values.indices.map { $0 == 0 ? "? AS v" : "UNION ALL SELECT ?" }.joined(separator: " ")) + ")"
            }
        }
        return (sql, parameters)
    }
}

/// A database session as the shared readers use it: one statement at a time, text results.
/// `PGConnection` and `MariaDBConnection` implement it. Not thread-safe; each store calls it
/// on its own serial queue only.
protocol SQLSession: AnyObject {
    var dialect: SQLDialect { get }
    /// True while the session is usable (a lost connection makes it false).
    var isHealthy: Bool { get }
    /// Runs one statement with text parameters (`nil` is SQL NULL) and returns its rows.
    func query(_ sql: String, _ parameters: [String?], what: String) throws -> SQLRows
}

extension SQLSession {
    @discardableResult
    func query(_ statement: SharedSQL, what: String) throws -> SQLRows {
        let (sql, parameters) = statement.render(dialect)
        return try query(sql, parameters, what: what)
    }

    /// Runs `body` in a transaction started by `begin` (the dialect's read-write start by
    /// default): COMMIT when it returns, ROLLBACK when it throws.
    func inTransaction<T>(begin: String? = nil, _ body: () throws -> T) throws -> T {
        _ = try query(begin ?? dialect.begin, [], what: "starting a transaction")
        do {
            let value = try body()
            _ = try query("COMMIT", [], what: "committing")
            return value
        } catch {
            if isHealthy { _ = try? query("ROLLBACK", [], what: "rolling back") }
            throw error
        }
    }
}
