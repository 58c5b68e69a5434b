import Foundation

/// libpq connection strings: building a `key=value` conninfo and checking that a
/// `database.url` is a URI or a conninfo libpq can read.
public enum ConnInfo {
    /// One `key=value` pair, the value single-quoted when libpq needs it (empty, blanks,
    /// quotes or backslashes), with `'` and `\` escaped by a backslash.
    public static func pair(_ key: String, _ value: String) -> String {
        let plain = !value.isEmpty && !value.contains { $0 == " " || $0 == "'" || $0 == "\\" || $0.isWhitespace }
        if plain { return "\(key)=\(value)" }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
        return "\(key)='\(escaped)'"
    }

    /// The pairs of a conninfo string, or `nil` when it is not one.
    public static func parse(_ text: String) -> [(key: String, value: String)]? {
        var pairs: [(String, String)] = []
        var chars = Substring(text)
        func skipBlanks() { chars = chars.drop { $0.isWhitespace } }
        skipBlanks()
        while !chars.isEmpty {
            let key = chars.prefix { $0.isLetter || $0 == "_" }
            guard !key.isEmpty else { return nil }
            chars = chars.dropFirst(key.count)
            skipBlanks()
            guard chars.first == "=" else { return nil }
            chars = chars.dropFirst()
            skipBlanks()
            var value = ""
            if chars.first == "'" {
                chars = chars.dropFirst()
                var closed = false
                while let c = chars.first {
                    chars = chars.dropFirst()
                    if c == "\\", let next = chars.first {
                        value.append(next)
                        chars = chars.dropFirst()
                    } else if c == "'" {
                        closed = true
                        break
                    } else {
                        value.append(c)
                    }
                }
                guard closed else { return nil }
            } else {
                let raw = chars.prefix { !$0.isWhitespace }
                chars = chars.dropFirst(raw.count)
                value = String(raw)
            }
            pairs.append((String(key), value))
            skipBlanks()
        }
        return pairs.isEmpty ? nil : pairs
    }

    /// True for a `postgresql://` / `postgres://` URI or a non-empty conninfo.
    public static func isValid(_ text: String) -> Bool {
        let lower = text.lowercased()
        if lower.hasPrefix("postgresql://") || lower.hasPrefix("postgres://") {
            return URLComponents(string: text) != nil
        }
        return parse(text) != nil
    }
}

/// The SudoSOS backend's `TYPEORM_*` variables, turned into `database.url` (a conninfo);
/// `TYPEORM_PASSWORD` is an ordinary variable for `database.password`.
struct TypeORMVariables {
    var environment: [String: String]

    /// The variables that make up the conninfo, in the order they are written.
    static let names = ["TYPEORM_HOST", "TYPEORM_PORT", "TYPEORM_DATABASE", "TYPEORM_USERNAME",
                        "TYPEORM_SSL_ENABLED", "TYPEORM_SSL_CACERTS"]

    /// Sets `database.url` when any of them is set; returns the problems.
    func apply(to values: inout ConfigurationValues) -> [String] {
        var problems: [String] = []
        if let connection = environment["TYPEORM_CONNECTION"],
            !["postgres", "postgresql"].contains(connection.lowercased())
        {
            problems.append(
                "database.url (from TYPEORM_CONNECTION): \"\(Masking.scrub(connection))\" is not supported; sudosos-sync speaks PostgreSQL only (use postgres)")
        }
        let present = Self.names.filter { environment[$0] != nil }
        guard !present.isEmpty else { return problems }
        var pairs: [String] = []
        if let host = environment["TYPEORM_HOST"] { pairs.append(ConnInfo.pair("host", host)) }
        if let port = environment["TYPEORM_PORT"] {
            if let number = Int(port), (1...65535).contains(number) {
                pairs.append(ConnInfo.pair("port", port))
            } else {
                problems.append("database.url (from TYPEORM_PORT): \"\(Masking.scrub(port))\" is not a port number (1 to 65535)")
            }
        }
        if let database = environment["TYPEORM_DATABASE"] { pairs.append(ConnInfo.pair("dbname", database)) }
        if let user = environment["TYPEORM_USERNAME"] { pairs.append(ConnInfo.pair("user", user)) }
        if let ssl = environment["TYPEORM_SSL_ENABLED"] {
            switch ssl.lowercased() {
            case "true", "1", "yes", "on":
                pairs.append(ConnInfo.pair("sslmode", "verify-full"))
                if let ca = environment["TYPEORM_SSL_CACERTS"], !ca.isEmpty {
                    if ca.contains("-----BEGIN") {
                        problems.append(
                            "database.url (from TYPEORM_SSL_CACERTS): holds a certificate; sudosos-sync needs the path of the CA file")
                    } else {
                        pairs.append(ConnInfo.pair("sslrootcert", ca))
                    }
                }
            case "false", "0", "no", "off", "":
                break
            default:
                problems.append(
                    "database.url (from TYPEORM_SSL_ENABLED): \"\(Masking.scrub(ssl))\" is not a boolean (use true or false)")
            }
        }
        guard !pairs.isEmpty else { return problems }
        values.set("database.url", pairs.joined(separator: " "), from: .variable(present.joined(separator: ", ")))
        return problems
    }
}
