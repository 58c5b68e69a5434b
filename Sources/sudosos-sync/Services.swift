import GEWISDBSource
import LDAPSource
import SyncEngine

/// The one place that maps a service name to its implementation.
enum Services {
    /// Every service the binary knows, in the order they are listed.
    static let names = ["ldap", "gewisdb"]

    /// Builds the service `name` from `configuration`. Throws `SyncError.configuration` when the
    /// service is unknown, not configured, or disabled.
    static func make(_ name: String, from configuration: Configuration) throws -> any SyncService {
        switch name {
        case "ldap":
            guard let settings = configuration.ldap else { throw notConfigured(name, variables: "LDAP_SERVER_URL and friends") }
            guard settings.common.enabled else { throw disabled(name) }
            return LDAPSyncService(settings: settings, peers: peers(of: name, in: configuration, maxAge: settings.common.verdictMaxAge))
        case "gewisdb":
            guard let settings = configuration.gewisdb else { throw notConfigured(name, variables: "GEWISDB_API_URL and GEWISDB_API_KEY") }
            guard settings.common.enabled else { throw disabled(name) }
            return GEWISDBSyncService(
                settings: settings, peers: peers(of: name, in: configuration, maxAge: settings.common.verdictMaxAge))
        default:
            throw SyncError.configuration("\(name): unknown service (known: \(names.joined(separator: ", ")))")
        }
    }

    /// The other enabled services whose verdicts `name` consults (one verdict per user).
    private static func peers(of name: String, in configuration: Configuration, maxAge: Duration) -> [PeerRequest] {
        configuration.peers(of: name).map { PeerRequest(service: $0, maxAge: maxAge) }
    }

    private static func notConfigured(_ name: String, variables: String) -> SyncError {
        .configuration("services.\(name): not configured (add the section to the configuration file, or set \(variables))")
    }

    private static func disabled(_ name: String) -> SyncError {
        .configuration("services.\(name).enabled: the service is disabled; set it to true to run it")
    }
}
