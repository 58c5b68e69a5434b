import Foundation

/// Handing a run's configuration to a child process: the supervisor restricts the resolved
/// configuration to one service and sends it as JSON; the child decodes exactly that, without
/// reading the file, the environment or credential files again.
///
/// The JSON holds that service's secrets and the database password: send it over a pipe
/// (stdin), never in argv or the environment, and never log it.
extension Configuration {
    /// The configuration a child running `service` needs: the database, that service alone,
    /// the supervisor settings (time zone), and no HTTP trigger token. `nil` when `service` is
    /// not configured.
    public func restricted(to service: String) -> Configuration? {
        var child = Configuration(database: database, supervisor: supervisor)
        child.peerServices = peers(of: service)
        child.metrics = MetricsSettings(listenHost: metrics.listenHost, listenPort: metrics.listenPort, triggerToken: nil)
        switch service {
        case "ldap":
            guard let ldap else { return nil }
            child.ldap = ldap
        case "gewisdb":
            guard let gewisdb else { return nil }
            child.gewisdb = gewisdb
        default:
            return nil
        }
        return child
    }

    /// The resolved configuration as JSON (secrets included). Decode with
    /// `Configuration(childJSON:)`.
    public func childJSON() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }

    /// Decodes what `childJSON()` wrote; throws `SyncError.configuration` on anything else.
    public init(childJSON data: Data) throws {
        do {
            self = try JSONDecoder().decode(Configuration.self, from: data)
        } catch {
            throw SyncError.configuration("the configuration handed to the child is not valid: \(type(of: error))")
        }
    }

    /// Every secret value in this configuration (passwords, keys, the trigger token), for the
    /// log handler to redact should one ever reach a log line.
    public var secrets: [String] {
        [
            database.password, metrics.triggerToken, ldap?.bindPassword, gewisdb?.apiKey, gewisdb?.basicPassword,
            database.url.flatMap(Self.passwordInURL),
        ].compactMap { $0 }.filter { !$0.isEmpty }
    }

    /// A password written into a `mariadb://` / `postgresql://user:password@host` URL or a `password=` pair.
    static func passwordInURL(_ url: String) -> String? {
        if let components = URLComponents(string: url), components.scheme != nil, DatabaseURL.engine(of: url) != nil {
            return components.password
        }
        return ConnInfo.parse(url)?.first { $0.key == "password" }?.value
    }
}
