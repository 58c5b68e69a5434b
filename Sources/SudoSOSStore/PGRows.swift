import CLibPQ
import Foundation
import SyncEngine

/// The rows of one result, copied out of the `PGresult` (which is cleared right after), with
/// typed access to the text-format values.
struct PGRows: Sendable {
    /// Column names in order.
    let columns: [String]
    /// Values by row, then column; `nil` is SQL NULL.
    let values: [[String?]]
    /// Rows affected, for INSERT/UPDATE/DELETE (`PQcmdTuples`); 0 otherwise.
    let affected: Int

    init(_ result: OpaquePointer) {
        let rowCount = Int(PQntuples(result)), columnCount = Int(PQnfields(result))
        columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var values: [[String?]] = []
        values.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var row: [String?] = []
            row.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                    row.append(nil)
                } else {
                    row.append(String(cString: PQgetvalue(result, Int32(r), Int32(c))))
                }
            }
            values.append(row)
        }
        self.values = values
        affected = Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    var count: Int { values.count }

    /// Each row with typed accessors.
    var rows: [PGRow] {
        let index = Dictionary(columns.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        return values.map { PGRow(columns: index, values: $0) }
    }
}

/// One row of a result: values by column name, decoded from PostgreSQL's text format.
/// A value that does not decode is a `SyncError.failed` naming the column (not the value).
struct PGRow: Sendable {
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
        case "t": return true
        case "f": return false
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

/// Text-format encodings of parameter values, including PostgreSQL array literals for the
/// bulk statements (`unnest($1::int[], ...)`).
enum PGValue {
    static func bool(_ value: Bool) -> String { value ? "t" : "f" }

    /// `{1,2,NULL}`
    static func intArray(_ values: [Int?]) -> String {
        "{" + values.map { $0.map(String.init) ?? "NULL" }.joined(separator: ",") + "}"
    }

    static func intArray(_ values: [Int]) -> String { intArray(values.map(Optional.some)) }

    /// `{t,f}`
    static func boolArray(_ values: [Bool]) -> String {
        "{" + values.map(bool).joined(separator: ",") + "}"
    }

    /// `{"a","b \"q\"",NULL}`: every element quoted, `"` and `\` escaped, so any text
    /// (commas, braces, spaces, the word NULL) round-trips. Also for jsonb[] elements.
    static func textArray(_ values: [String?]) -> String {
        "{" + values.map { value -> String in
            guard let value else { return "NULL" }
            var quoted = "\""
            for ch in value.unicodeScalars {
                if ch == "\"" || ch == "\\" { quoted.unicodeScalars.append("\\") }
                quoted.unicodeScalars.append(ch)
            }
            return quoted + "\""
        }.joined(separator: ",") + "}"
    }

    static func textArray(_ values: [String]) -> String { textArray(values.map(Optional.some)) }

    /// A JSON text for a jsonb parameter.
    static func json(_ object: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(object)
        return String(decoding: data, as: UTF8.self)
    }
}
