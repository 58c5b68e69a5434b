import Foundation

/// The keys of the configuration file and the environment variables that set them: what
/// `ConfigurationLoader` accepts. Anything else in the file is an unknown key (exit 78).
/// The operator's reference is docs/configuration.md; keep the two in step. Each key also needs
/// its text in `ConfigurationReference` (sudosos-sync.yaml(5)); ManualTests fail without it.
enum ConfigurationSchema {
    /// How a leaf value may appear in messages.
    enum Display {
        /// Shown (quoted, e-mail addresses masked) in error messages.
        case plain
        /// Never shown: passwords, keys, tokens, and URLs that may embed a password.
        case hidden
    }

    /// The names of the services, in the order they are listed.
    static let serviceNames = ["ldap", "gewisdb"]

    /// Keys every service has.
    static let commonServiceLeaves: [String: Display] = [
        "enabled": .plain, "schedule": .plain, "interval": .plain, "run_on_start": .plain,
        "timeout": .plain, "heartbeat_timeout": .plain, "dry_run": .plain,
        "max_deletions": .plain, "max_deletion_ratio": .plain, "verdict_max_age": .plain,
        "limits.memory": .plain, "limits.cpu": .plain, "limits.open_files": .plain,
    ]

    /// Keys of one source only.
    static let serviceLeaves: [String: [String: Display]] = [
        "ldap": [
            "server_url": .plain, "base": .plain, "bind_user": .plain, "bind_pw": .hidden,
            "shared_account_filter": .plain, "role_filter": .plain, "service_account_filter": .plain,
            "guid_attribute": .plain, "nested_groups": .plain, "directory_type": .plain, "ca_file": .plain, "start_tls": .plain,
            "network_timeout": .plain, "operation_timeout": .plain, "page_size": .plain,
        ],
        "gewisdb": [
            "api_url": .plain, "api_key": .hidden, "basic_user": .plain, "basic_password": .hidden,
            "concurrency": .plain, "request_timeout": .plain, "max_failed_ratio": .plain, "max_attempts": .plain,
        ],
    ]

    /// Every leaf key path, and how its value may be shown.
    static let leaves: [String: Display] = {
        var all: [String: Display] = [
            "database.url": .hidden, "database.password": .hidden, "database.connect_timeout": .plain,
            "metrics.listen": .plain, "metrics.trigger_token": .hidden,
            "supervisor.timezone": .plain, "supervisor.max_concurrent_runs": .plain,
            "supervisor.shutdown_timeout": .plain,
            "supervisor.backoff.initial": .plain, "supervisor.backoff.max": .plain,
            "supervisor.backoff.multiplier": .plain, "supervisor.backoff.jitter": .plain,
            "supervisor.backoff.reset_after": .plain,
        ]
        for service in serviceNames {
            for (key, display) in commonServiceLeaves { all["services.\(service).\(key)"] = display }
            for (key, display) in serviceLeaves[service] ?? [:] { all["services.\(service).\(key)"] = display }
        }
        return all
    }()

    /// Every section (a mapping of keys).
    static let sections: Set<String> = {
        var all: Set<String> = ["database", "metrics", "supervisor", "supervisor.backoff", "services"]
        for service in serviceNames {
            all.insert("services.\(service)")
            all.insert("services.\(service).limits")
        }
        return all
    }()

    /// The generic variable of a key: `SUDOSOS_SYNC_` + the path in capitals, dots as
    /// underscores (`services.ldap.max_deletions` → `SUDOSOS_SYNC_SERVICES_LDAP_MAX_DELETIONS`).
    static func variableName(of path: String) -> String {
        "SUDOSOS_SYNC_" + path.uppercased().replacingOccurrences(of: ".", with: "_")
    }

    /// Generic variables whose names start like a section's are taken to be meant as keys; an
    /// unknown one there is an error. Other `SUDOSOS_SYNC_*` variables are not keys
    /// (`SUDOSOS_SYNC_CONFIG`, `SUDOSOS_SYNC_LOG_LEVEL`, ...).
    static let genericVariablePrefixes = ["DATABASE_", "METRICS_", "SUPERVISOR_", "SERVICES_"].map { "SUDOSOS_SYNC_" + $0 }

    /// A variable that sets one key, with an optional rewrite of its value.
    struct Variable {
        var name: String
        var path: String
        /// Rewrites the value (e.g. a host name into the API URL).
        var transform: (@Sendable (String) -> String)? = nil
    }

    /// The SudoSOS backend's names and the seed document's aliases, lowest precedence first:
    /// when two set the same key, the later one wins (the backend's name over the alias).
    /// `TYPEORM_*` (other than the password) is handled apart: it becomes `database.url`.
    static let namedVariables: [Variable] = [
        // Aliases from the integration document.
        Variable(name: "LDAP_URL", path: "services.ldap.server_url"),
        Variable(name: "LDAP_BASE_DN", path: "services.ldap.base"),
        Variable(name: "LDAP_BIND_DN", path: "services.ldap.bind_user"),
        Variable(name: "LDAP_BIND_PASSWORD", path: "services.ldap.bind_pw"),
        Variable(name: "GEWISDB_HOST", path: "services.gewisdb.api_url", transform: gewisdbHostToURL),
        Variable(name: "GEWISDB_USERNAME", path: "services.gewisdb.basic_user"),
        Variable(name: "GEWISDB_PASSWORD", path: "services.gewisdb.basic_password"),
        // The SudoSOS backend's own names.
        Variable(name: "ENABLE_LDAP", path: "services.ldap.enabled"),
        Variable(name: "LDAP_SERVER_URL", path: "services.ldap.server_url"),
        Variable(name: "LDAP_BASE", path: "services.ldap.base"),
        Variable(name: "LDAP_BIND_USER", path: "services.ldap.bind_user"),
        Variable(name: "LDAP_BIND_PW", path: "services.ldap.bind_pw"),
        Variable(name: "LDAP_SHARED_ACCOUNT_FILTER", path: "services.ldap.shared_account_filter"),
        Variable(name: "LDAP_ROLE_FILTER", path: "services.ldap.role_filter"),
        Variable(name: "LDAP_SERVICE_ACCOUNT_FILTER", path: "services.ldap.service_account_filter"),
        Variable(name: "GEWISDB_API_URL", path: "services.gewisdb.api_url"),
        Variable(name: "GEWISDB_API_KEY", path: "services.gewisdb.api_key"),
        Variable(name: "TYPEORM_PASSWORD", path: "database.password"),
    ]

    /// Secrets read from files in `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`), lowest
    /// precedence first. A credential fills a secret; it does not by itself configure a service.
    static let credentials: [Variable] = [
        Variable(name: "LDAP_BIND_PASSWORD", path: "services.ldap.bind_pw"),
        Variable(name: "LDAP_BIND_PW", path: "services.ldap.bind_pw"),
        Variable(name: "GEWISDB_PASSWORD", path: "services.gewisdb.basic_password"),
        Variable(name: "GEWISDB_API_KEY", path: "services.gewisdb.api_key"),
        Variable(name: "TYPEORM_PASSWORD", path: "database.password"),
        Variable(name: "TRIGGER_TOKEN", path: "metrics.trigger_token"),
    ]

    /// `GEWISDB_HOST` (the seed's name) holds a host name; the API lives at `https://HOST/api`.
    /// A value with a scheme is taken as the URL itself.
    @Sendable static func gewisdbHostToURL(_ host: String) -> String {
        host.contains("://") ? host : "https://\(host)/api"
    }
}
