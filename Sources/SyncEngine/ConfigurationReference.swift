/// The operator's reference of every configuration key: what each one means, its kind and
/// default, and the variables and credential files that set it. `sudosos-sync.yaml(5)` is
/// generated from this (`sudosos-sync-manual config`), and the keys, variables and credentials
/// come from `ConfigurationSchema`, the same tables the loader and `check-config` use: a key
/// added there without a text here is listed in `undocumented`, which fails the tests and the
/// page generator, so the page cannot fall behind the loader.
public enum ConfigurationReference {
    /// One key as the page describes it.
    public struct Key: Sendable, Equatable {
        /// The full path, `services.ldap.timeout`.
        public var path: String
        /// The section it is listed under: `database`, `services.SERVICE` (keys every service
        /// has), `services.ldap`, ...
        public var section: String
        /// The path within its section: `timeout`, `backoff.initial`.
        public var name: String
        /// The kind of value: `duration`, `ratio`, `URL`, ...
        public var kind: String
        /// The default, `required`, or `none`.
        public var defaultValue: String
        public var meaning: String
        /// A secret: never shown in messages; best kept out of the file.
        public var secret: Bool
        /// The SudoSOS backend's names and aliases that set it, lowest precedence first.
        public var variables: [String]
        /// Credential files (`$CREDENTIALS_DIRECTORY/NAME`) that set it.
        public var credentials: [String]
        /// `SUDOSOS_SYNC_<PATH>`: per service for keys every service has.
        public var genericVariables: [String]
    }

    /// A heading of the page and its keys, in the order of the page.
    public struct Section: Sendable, Equatable {
        public var path: String
        public var keys: [Key]
    }

    /// The section of keys every service has.
    public static let everyService = "services.SERVICE"

    /// The service names, in the order they are listed.
    public static var serviceNames: [String] { ConfigurationSchema.serviceNames }

    /// The sections in page order: `database`, `metrics`, `supervisor`, the keys every service
    /// has, then each service's own. Keys without a text are left out (see `undocumented`).
    public static var sections: [Section] {
        var sections: [Section] = []
        for (section, entries) in texts {
            var keys: [Key] = []
            for entry in entries {
                let paths = section == everyService
                    ? serviceNames.map { "services.\($0).\(entry.name)" }
                    : ["\(section).\(entry.name)"]
                let known = paths.filter { ConfigurationSchema.leaves[$0] != nil }
                guard let first = known.first else { continue }
                keys.append(Key(
                    path: first, section: section, name: entry.name, kind: entry.kind, defaultValue: entry.defaultValue,
                    meaning: entry.meaning, secret: ConfigurationSchema.leaves[first] == .hidden,
                    variables: ConfigurationSchema.namedVariables.filter { known.contains($0.path) }.map(\.name),
                    credentials: ConfigurationSchema.credentials.filter { known.contains($0.path) }.map(\.name),
                    genericVariables: known.map(ConfigurationSchema.variableName(of:))))
            }
            sections.append(Section(path: section, keys: keys))
        }
        return sections
    }

    /// Keys the loader accepts that have no text here (must be empty).
    public static var undocumented: [String] {
        ConfigurationSchema.leaves.keys.filter { documentedPaths.contains($0) == false }.sorted()
    }

    /// Texts of keys the loader does not know (must be empty).
    public static var unknown: [String] {
        documentedPaths.subtracting(ConfigurationSchema.leaves.keys).sorted()
    }

    /// The backend's `TYPEORM_*` variables that make up `database.url`.
    public static var typeORMVariables: [String] { TypeORMVariables.names + ["TYPEORM_CONNECTION"] }

    /// The backend's names and the seed document's aliases, lowest precedence first, with the
    /// key each sets.
    public static var namedVariables: [(name: String, path: String)] {
        ConfigurationSchema.namedVariables.map { ($0.name, $0.path) }
    }

    /// The credential files read from `$CREDENTIALS_DIRECTORY`, with the key each sets.
    public static var credentials: [(name: String, path: String)] {
        ConfigurationSchema.credentials.map { ($0.name, $0.path) }
    }

    /// The generic variables' prefixes under which an unknown name is an error.
    public static var genericVariablePrefixes: [String] { ConfigurationSchema.genericVariablePrefixes }

    private static var documentedPaths: Set<String> {
        var paths: Set<String> = []
        for (section, entries) in texts {
            for entry in entries {
                if section == everyService {
                    for service in serviceNames { paths.insert("services.\(service).\(entry.name)") }
                } else {
                    paths.insert("\(section).\(entry.name)")
                }
            }
        }
        return paths
    }

    private struct Text {
        var name: String
        var kind: String
        var defaultValue: String
        var meaning: String
        init(_ name: String, _ kind: String, _ defaultValue: String, _ meaning: String) {
            self.name = name
            self.kind = kind
            self.defaultValue = defaultValue
            self.meaning = meaning
        }
    }

    /// The texts, by section, in page order (docs/configuration.md says the same at length).
    private static let texts: [(String, [Text])] = [
        ("database", [
            Text("url", "URL or conninfo", "required once a service is enabled",
                 "The SudoSOS database: a libpq URI (postgresql://user@host:5432/db) or conninfo (host=... dbname=...). Never shown in messages, as it may hold a password."),
            Text("password", "string", "none", "The database password, kept apart from the URL."),
            Text("connect_timeout", "duration", "10s", "Connecting for longer than this ends the run with exit 69."),
        ]),
        ("metrics", [
            Text("listen", "host:port", "127.0.0.1:9713",
                 "Address of the HTTP endpoint (/metrics, /healthz, /status, /trigger, /); [::1]:9713 for IPv6; port 0 picks a free port. A change needs a restart."),
            Text("trigger_token", "string", "none",
                 "Bearer token that allows POST /trigger from clients that are not on loopback."),
        ]),
        ("supervisor", [
            Text("timezone", "time zone", "Europe/Amsterdam", "IANA time zone of the cron schedules; daylight saving time is handled."),
            Text("max_concurrent_runs", "integer", "2", "Runs in progress at once, 1 to 64."),
            Text("shutdown_timeout", "duration", "30s", "How long running runs may take to stop on SIGTERM before they are killed."),
            Text("backoff.initial", "duration", "10s", "First retry delay after a failed run (at most backoff.max)."),
            Text("backoff.max", "duration", "30m", "Longest retry delay."),
            Text("backoff.multiplier", "number", "2", "Each further failure multiplies the delay by this (at least 1)."),
            Text("backoff.jitter", "ratio", "0.2", "The delay is spread uniformly over plus or minus jitter times the delay."),
            Text("backoff.reset_after", "duration", "10m", "A success this long after the last failure resets the failure count."),
        ]),
        (everyService, [
            Text("enabled", "boolean", "true once the service is configured",
                 "A configured service (its section is present, or one of its variables is set) runs unless this is false."),
            Text("schedule", "cron", "none", "Five-field cron expression (minute hour day-of-month month day-of-week) in supervisor.timezone; not together with interval."),
            Text("interval", "duration", "none", "A fixed period between runs; not together with schedule. Without either, the service runs only on a trigger or at start-up."),
            Text("run_on_start", "boolean", "false", "Run once when the supervisor starts."),
            Text("timeout", "duration", "10m", "A run still going after this is killed (outcome timeout)."),
            Text("heartbeat_timeout", "duration", "2m", "A run that reports nothing for this long is killed (outcome timeout)."),
            Text("dry_run", "boolean", "false", "Every run only plans and prints its changes, as --dry-run."),
            Text("max_deletions", "integer", "50",
                 "Refuse a run (exit 65) that would remove more than this many: deactivations, deletions, unbindings, role and membership removals."),
            Text("max_deletion_ratio", "ratio", "0.10", "Also refuse a run that would remove more than this share of the synced population."),
            Text("verdict_max_age", "duration", "48h",
                 "How old the other service's latest verdict on a user may be for this service to rely on it; older or missing, the user is left alone."),
            Text("limits.memory", "size", "none", "RLIMIT_AS of the run's child process."),
            Text("limits.cpu", "duration", "none", "RLIMIT_CPU of the child, rounded up to whole seconds."),
            Text("limits.open_files", "integer", "none", "RLIMIT_NOFILE of the child, 16 to 1048576."),
        ]),
        ("services.ldap", [
            Text("server_url", "URL", "required", "ldap://, ldaps:// or ldapi:// URL of the directory; several may be given, separated by blanks."),
            Text("base", "DN", "required", "Search base."),
            Text("bind_user", "DN or UPN", "none (anonymous bind)", "The account to bind as."),
            Text("bind_pw", "string", "required with bind_user", "Its password."),
            Text("shared_account_filter", "DN", "none", "Base DN of the organ (shared account) groups."),
            Text("role_filter", "DN", "none", "Base DN of the role groups."),
            Text("service_account_filter", "DN", "none", "DN of the service-account group."),
            Text("guid_attribute", "attribute", "objectGUID", "The stable identifier of an entry: objectGUID (Active Directory) or entryUUID (OpenLDAP)."),
            Text("nested_groups", "keyword", "matching_rule_in_chain",
                 "How nested group membership is resolved: matching_rule_in_chain (Active Directory's 1.2.840.113556.1.4.1941) or member_attribute."),
            Text("directory_type", "keyword", "active_directory (openldap with guid_attribute entryUUID)",
                 "Who is a person: active_directory ((&(objectClass=user)(objectCategory=person)), so contacts, computers and managed service accounts get no account) or openldap ((objectClass=person))."),
            Text("ca_file", "path", "the system's CAs", "PEM file of the CA that signed the server's certificate; must be readable."),
            Text("start_tls", "boolean", "false", "StartTLS on an ldap:// URL (an error with ldaps://)."),
            Text("network_timeout", "duration", "10s", "Connecting to the directory."),
            Text("operation_timeout", "duration", "60s", "One LDAP operation."),
            Text("page_size", "integer", "500", "Entries per page of the paged search."),
        ]),
        ("services.gewisdb", [
            Text("api_url", "URL", "required", "The GEWISDB API, http(s)://...; GEWISDB_HOST=host means https://host/api."),
            Text("api_key", "string", "required unless basic_user is set", "Bearer key of the API."),
            Text("basic_user", "string", "none", "HTTP basic user, instead of the key."),
            Text("basic_password", "string", "required with basic_user", "Its password."),
            Text("concurrency", "integer", "16", "Requests in flight, 1 to 256."),
            Text("request_timeout", "duration", "10s", "One request."),
            Text("max_failed_ratio", "ratio", "0.05", "More failed member requests than this share: the run writes nothing."),
            Text("max_attempts", "integer", "3", "Attempts per request on connection errors, timeouts and 5xx answers, 1 to 20."),
        ]),
    ]
}
