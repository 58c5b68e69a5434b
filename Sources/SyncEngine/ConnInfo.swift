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

/// The SudoSOS backend's `TYPEORM_*` variables, turned into `database.url`: a `mariadb://` URL
/// when `TYPEORM_CONNECTION` is `mariadb` or `mysql` (or unset: the backend's own engine), a
/// libpq conninfo when it is `postgres`. `TYPEORM_PASSWORD` is an ordinary variable for
/// `database.password`.
struct TypeORMVariables {
    var environment: [String: String]

    /// The variables that make up the URL, in the order they are written.
    static let names = ["TYPEORM_CONNECTION", "TYPEORM_HOST", "TYPEORM_PORT", "TYPEORM_DATABASE", "TYPEORM_USERNAME",
                        "TYPEORM_SSL_ENABLED", "TYPEORM_SSL_CACERTS"]

    /// Sets `database.url` when any of them is set; returns the problems.
    func apply(to values: inout ConfigurationValues) -> [String] {
        var problems: [String] = []
        var engine = DatabaseEngine.mariadb
        if let connection = environment["TYPEORM_CONNECTION"], !connection.isEmpty {
            switch connection.lowercased() {
            case "mariadb", "mysql": engine = .mariadb
            case "postgres", "postgresql": engine = .postgres
            default:
                problems.append(
                    "database.url (from TYPEORM_CONNECTION): \"\(Masking.scrub(connection))\" is not supported; use mariadb, mysql or postgres")
            }
        }
        let present = Self.names.filter { environment[$0] != nil }
        guard present.contains(where: { $0 != "TYPEORM_CONNECTION" }) else { return problems }
        let host = environment["TYPEORM_HOST"], database = environment["TYPEORM_DATABASE"]
        let user = environment["TYPEORM_USERNAME"]
        var port: String?
        if let text = environment["TYPEORM_PORT"] {
            if let number = Int(text), (1...65535).contains(number) {
                port = text
            } else {
                problems.append("database.url (from TYPEORM_PORT): \"\(Masking.scrub(text))\" is not a port number (1 to 65535)")
            }
        }
        var tls = false, caFile: String?
        if let ssl = environment["TYPEORM_SSL_ENABLED"] {
            if let on = DatabaseURL.bool(ssl) {
                tls = on
            } else {
                problems.append(
                    "database.url (from TYPEORM_SSL_ENABLED): \"\(Masking.scrub(ssl))\" is not a boolean (use true or false)")
            }
        }
        if tls, let ca = environment["TYPEORM_SSL_CACERTS"], !ca.isEmpty {
            if ca.contains("-----BEGIN") {
                problems.append(
                    "database.url (from TYPEORM_SSL_CACERTS): holds a certificate; sudosos-sync needs the path of the CA file")
            } else {
                caFile = ca
            }
        }
        let url: String
        switch engine {
        case .mariadb:
            guard database?.isEmpty == false else {
                problems.append("database.url (from TYPEORM_*): TYPEORM_DATABASE is not set (the MariaDB database to use)")
                return problems
            }
            var query: [URLQueryItem] = []
            if tls { query.append(URLQueryItem(name: "ssl", value: "true")) }
            if let caFile { query.append(URLQueryItem(name: "sslca", value: caFile)) }
            url = DatabaseURL.mariadbURL(host: host, port: port, database: database, user: user, query: query)
        case .postgres:
            var pairs: [String] = []
            if let host { pairs.append(ConnInfo.pair("host", host)) }
            if let port { pairs.append(ConnInfo.pair("port", port)) }
            if let database { pairs.append(ConnInfo.pair("dbname", database)) }
            if let user { pairs.append(ConnInfo.pair("user", user)) }
            if tls { pairs.append(ConnInfo.pair("sslmode", "verify-full")) }
            if let caFile { pairs.append(ConnInfo.pair("sslrootcert", caFile)) }
            guard !pairs.isEmpty else { return problems }
            url = pairs.joined(separator: " ")
        }
        values.set("database.url", url, from: .variable(present.joined(separator: ", ")))
        return problems
    }
}
