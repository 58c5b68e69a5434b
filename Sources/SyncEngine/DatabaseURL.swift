import Foundation

/// The database engines the store speaks.
public enum DatabaseEngine: String, Sendable, CaseIterable {
    /// MariaDB or MySQL, as the real SudoSOS runs (`mariadb://`, `mysql://`).
    case mariadb
    /// PostgreSQL (`postgresql://`, `postgres://` or a libpq conninfo).
    case postgres

    /// How messages and `check-config --connect` name it.
    public var displayName: String {
        switch self {
        case .mariadb: return "MariaDB/MySQL"
        case .postgres: return "PostgreSQL"
        }
    }
}

/// Where a MariaDB/MySQL server is and how to reach it, from a `mariadb://` or `mysql://` URL:
/// `mariadb://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?ssl=true&sslca=/path&sslverify=false&socket=/path]`.
public struct MariaDBTarget: Sendable, Hashable {
    public var host: String?
    public var port: Int
    public var user: String?
    /// From the URL; `database.password` wins over it.
    public var password: String?
    public var database: String
    /// A Unix socket instead of TCP (`socket=` option).
    public var socket: String?
    public var tls: TLS

    public struct TLS: Sendable, Hashable {
        /// Require TLS (`ssl=true`, or `sslca` given).
        public var enabled = false
        /// Check the server's certificate and name (default when TLS is on; `sslverify=false` turns it off).
        public var verifyServer = true
        /// CA file for the check (`sslca=`); the system's CAs otherwise.
        public var caFile: String?
        public init() {}
    }

    public init(host: String?, port: Int = 3306, user: String?, password: String? = nil, database: String,
                socket: String? = nil, tls: TLS = TLS()) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.socket = socket
        self.tls = tls
    }
}

/// `database.url`: which engine it names, and the MariaDB form's parts.
public enum DatabaseURL {
    /// The engine of `url`: `mariadb://` / `mysql://` → MariaDB; `postgresql://` / `postgres://`
    /// or a libpq conninfo (`host=... dbname=...`) → PostgreSQL; `nil` for anything else.
    public static func engine(of url: String) -> DatabaseEngine? {
        let lower = url.trimmingCharacters(in: .whitespaces).lowercased()
        if lower.hasPrefix("mariadb://") || lower.hasPrefix("mysql://") { return .mariadb }
        if lower.hasPrefix("postgresql://") || lower.hasPrefix("postgres://") { return .postgres }
        if lower.contains("://") { return nil }
        return ConnInfo.parse(url) != nil ? .postgres : nil
    }

    /// The scheme of a URL we do not know (for the message), `nil` when there is none.
    public static func scheme(of url: String) -> String? {
        guard let range = url.range(of: "://") else { return nil }
        return String(url[..<range.lowerBound])
    }

    /// The options a `mariadb://` URL may carry.
    public static let mariadbOptions: Set<String> = ["ssl", "sslca", "sslverify", "socket"]

    /// Parses a `mariadb://` / `mysql://` URL; the error names what is wrong (never the password).
    public static func mariadb(_ url: String) throws(Problem) -> MariaDBTarget {
        guard let components = URLComponents(string: url.trimmingCharacters(in: .whitespaces)) else {
            throw Problem("is not a valid URL")
        }
        let database = components.percentEncodedPath.hasPrefix("/")
            ? String(components.percentEncodedPath.dropFirst()).removingPercentEncoding ?? "" : ""
        guard !database.isEmpty, !database.contains("/") else {
            throw Problem("names no database (mariadb://USER@HOST:PORT/DATABASE)")
        }
        var target = MariaDBTarget(
            host: components.host.flatMap { $0.isEmpty ? nil : $0.removingPercentEncoding },
            port: components.port ?? 3306, user: components.percentEncodedUser?.removingPercentEncoding,
            password: components.percentEncodedPassword?.removingPercentEncoding, database: database)
        guard (1...65535).contains(target.port) else { throw Problem("has a port outside 1 to 65535") }
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name.lowercased() {
            case "ssl":
                guard let on = Self.bool(value) else { throw Problem("option ssl is not a boolean (use true or false)") }
                target.tls.enabled = on
            case "sslverify":
                guard let on = Self.bool(value) else { throw Problem("option sslverify is not a boolean (use true or false)") }
                target.tls.verifyServer = on
            case "sslca":
                guard !value.isEmpty else { throw Problem("option sslca is empty (the path of a CA file)") }
                target.tls.caFile = value
                target.tls.enabled = true
            case "socket":
                target.socket = value
            default:
                throw Problem("has an unknown option \(item.name) (known: \(mariadbOptions.sorted().joined(separator: ", ")))")
            }
        }
        return target
    }

    /// `true`/`false` and their usual spellings.
    static func bool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off", "": return false
        default: return nil
        }
    }

    /// A `mariadb://` URL from its parts, each part percent-encoded (for `TYPEORM_*`).
    static func mariadbURL(host: String?, port: String?, database: String?, user: String?, query: [URLQueryItem]) -> String {
        var components = URLComponents()
        components.scheme = "mariadb"
        components.user = user
        components.host = host ?? "localhost"
        if let port, let number = Int(port) { components.port = number }
        components.path = "/" + (database ?? "")
        if !query.isEmpty { components.queryItems = query }
        return components.string ?? "mariadb://"
    }

    /// What is wrong with a URL (for the `database.url` configuration problem).
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
