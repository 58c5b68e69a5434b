import SyncEngine

/// The rows of one result, copied out of the engine's result (a libpq `PGresult`, a MariaDB
/// statement's buffers) as text, with typed access. Engine-independent: both stores' readers
/// decode through it.
struct SQLRows: Sendable {
    /// Column names in order.
    let columns: [String]
    /// Values by row, then column; `nil` is SQL NULL.
    let values: [[String?]]
    /// Rows affected, for INSERT/UPDATE/DELETE; 0 otherwise.
    let affected: Int

    init(columns: [String], values: [[String?]], affected: Int) {
        self.columns = columns
        self.values = values
        self.affected = affected
    }

    var count: Int { values.count }

    /// Each row with typed accessors.
    var rows: [PGRow] {
        let index = Dictionary(columns.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        return values.map { SQLRow(columns: index, values: $0) }
    }
}

/// One row of a result: values by column name, decoded from the engines' text forms
/// (booleans are `t`/`f` on PostgreSQL, `1`/`0` on MariaDB).
/// A value that does not decode is a `SyncError.failed` naming the column (not the value).
struct SQLRow: Sendable {
    let columns: [String: Int]
    let values: [String?]

    func optionalString(_ column: String) throws -> String? {
        guard let i = columns[column] else { throw SyncError.failed("the database answer has no column \(column)") }
        return values[i]
    }

    func string(_ column: String) throws -> String {
        guard let value = try optionalString(column) else { throw null(column) }
        return value
    }

    func int(_ column: String) throws -> Int {
        guard let value = Int(try string(column)) else { throw undecodable(column, "an integer") }
        return value
    }

    func optionalInt(_ column: String) throws -> Int? {
        guard let text = try optionalString(column) else { return nil }
        guard let value = Int(text) else { throw undecodable(column, "an integer") }
        return value
    }

    func int64(_ column: String) throws -> Int64 {
        guard let value = Int64(try string(column)) else { throw undecodable(column, "an integer") }
        return value
    }

    func double(_ column: String) throws -> Double {
        guard let value = Double(try string(column)) else { throw undecodable(column, "a number") }
        return value
    }

    func bool(_ column: String) throws -> Bool {
        switch try string(column) {
        case "t", "1": return true
        case "f", "0": return false
        default: throw undecodable(column, "a boolean")
        }
    }

    /// A text column holding one of `T`'s raw values.
    func enumeration<T: RawRepresentable>(_ column: String, as: T.Type) throws -> T where T.RawValue == String {
        guard let value = T(rawValue: try string(column)) else { throw undecodable(column, "a known \(T.self)") }
        return value
    }

    private func null(_ column: String) -> SyncError { .failed("column \(column) is unexpectedly NULL") }

    private func undecodable(_ column: String, _ expected: String) -> SyncError {
        .failed("column \(column) does not hold \(expected)")
    }
}

