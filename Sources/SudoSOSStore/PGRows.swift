import CLibPQ
import Foundation
import SyncEngine

typealias PGRows = SQLRows
typealias PGRow = SQLRow

extension SQLRows {
    /// Copies a libpq result (`PQcmdTuples` for the affected rows).
    init(_ result: OpaquePointer) {
        let rowCount = Int(PQntuples(result)), columnCount = Int(PQnfields(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
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
        self.init(columns: columns, values: values, affected: Int(String(cString: PQcmdTuples(result))) ?? 0)
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
