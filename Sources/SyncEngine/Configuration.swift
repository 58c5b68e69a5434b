import Foundation

/// The resolved configuration: YAML file, then environment variables (the SudoSOS backend's
/// names and the seed's aliases), then credential files in `$CREDENTIALS_DIRECTORY`.
/// `ConfigurationLoader` builds it; every problem is a `SyncError.configuration` naming the key.
///
/// Keys and defaults: docs/configuration.md.
public struct Configuration: Sendable, Hashable, Codable {
    public var database: DatabaseSettings
    public var metrics: MetricsSettings
    public var supervisor: SupervisorSettings
    public var ldap: LDAPSettings?
    public var gewisdb: GEWISDBSettings?
    /// Set in a child's restricted configuration: the other services enabled in the full one
    /// (their verdicts count, docs/ldap.md "One verdict per user"). nil: from the sections here.
    public var peerServices: [String]?

    public init(
        database: DatabaseSettings = DatabaseSettings(), metrics: MetricsSettings = MetricsSettings(),
        supervisor: SupervisorSettings = SupervisorSettings(), ldap: LDAPSettings? = nil, gewisdb: GEWISDBSettings? = nil
    ) {
        self.database = database
        self.metrics = metrics
        self.supervisor = supervisor
        self.ldap = ldap
        self.gewisdb = gewisdb
    }

    /// The common settings of each configured service (enabled or not), by name.
    public var services: [String: ServiceSettings] {
        var all: [String: ServiceSettings] = [:]
        if let ldap { all["ldap"] = ldap.common }
        if let gewisdb { all["gewisdb"] = gewisdb.common }
        return all
    }

    /// Names of the enabled services, sorted.
    public var enabledServices: [String] {
        services.filter { $0.value.enabled }.keys.sorted()
    }

    /// The other enabled services whose verdicts `service` consults.
    public func peers(of service: String) -> [String] {
        (peerServices ?? enabledServices).filter { $0 != service }
    }
}

/// `database.*`
public struct DatabaseSettings: Sendable, Hashable, Codable {
    /// `mariadb://` / `mysql://` URL, libpq URI or conninfo (without the password).
    public var url: String?
    /// From `database.password`, `TYPEORM_PASSWORD` or its credential file. Never logged.
    public var password: String?
    /// How long connecting may take before the run fails with exit 69.
    public var connectTimeout: Duration

    /// The engine `url` names (`nil` when there is no usable URL).
    public var engine: DatabaseEngine? { url.flatMap(DatabaseURL.engine) }

    public init(url: String? = nil, password: String? = nil, connectTimeout: Duration = .seconds(10)) {
        self.url = url
        self.password = password
        self.connectTimeout = connectTimeout
    }
}

/// `metrics.*`
public struct MetricsSettings: Sendable, Hashable, Codable {
    /// host:port of the HTTP endpoint.
    public var listenHost: String
    public var listenPort: Int
    /// Bearer token allowing `POST /trigger` from non-loopback clients. Never logged.
    public var triggerToken: String?

    public init(listenHost: String = "127.0.0.1", listenPort: Int = 9713, triggerToken: String? = nil) {
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.triggerToken = triggerToken
    }
}

/// `supervisor.backoff`
public struct BackoffSettings: Sendable, Hashable, Codable {
    public var initial: Duration
    public var max: Duration
    public var multiplier: Double
    /// Relative jitter: the delay is spread uniformly over ±jitter × delay.
    public var jitter: Double
    /// A success that lasts this long after the last failure resets the failure count.
    public var resetAfter: Duration

    public init(
        initial: Duration = .seconds(10), max: Duration = .seconds(30 * 60), multiplier: Double = 2,
        jitter: Double = 0.2, resetAfter: Duration = .seconds(10 * 60)
    ) {
        self.initial = initial
        self.max = max
        self.multiplier = multiplier
        self.jitter = jitter
        self.resetAfter = resetAfter
    }
}

/// `supervisor.*`
public struct SupervisorSettings: Sendable, Hashable, Codable {
    /// IANA time zone for cron schedules.
    public var timezone: String
    public var maxConcurrentRuns: Int
    public var shutdownTimeout: Duration
    public var backoff: BackoffSettings

    public init(
        timezone: String = "Europe/Amsterdam", maxConcurrentRuns: Int = 2, shutdownTimeout: Duration = .seconds(30),
        backoff: BackoffSettings = BackoffSettings()
    ) {
        self.timezone = timezone
        self.maxConcurrentRuns = maxConcurrentRuns
        self.shutdownTimeout = shutdownTimeout
        self.backoff = backoff
    }
}

/// When a service runs.
public enum ScheduleSetting: Sendable, Hashable, Codable {
    /// A 5-field cron expression, in `supervisor.timezone`.
    case cron(String)
    /// A fixed period.
    case interval(Duration)
}

/// `services.NAME.limits`: rlimits of the child process.
public struct ResourceLimits: Sendable, Hashable, Codable {
    /// RLIMIT_AS in bytes.
    public var memoryBytes: UInt64?
    /// RLIMIT_CPU in seconds.
    public var cpuSeconds: UInt64?
    /// RLIMIT_NOFILE.
    public var openFiles: UInt64?

    public init(memoryBytes: UInt64? = nil, cpuSeconds: UInt64? = nil, openFiles: UInt64? = nil) {
        self.memoryBytes = memoryBytes
        self.cpuSeconds = cpuSeconds
        self.openFiles = openFiles
    }
}

/// The keys every service has (`services.NAME.*` except the source's own).
public struct ServiceSettings: Sendable, Hashable, Codable {
    public var enabled: Bool
    public var schedule: ScheduleSetting?
    public var runOnStart: Bool
    public var timeout: Duration
    public var heartbeatTimeout: Duration
    public var limits: ResourceLimits
    public var dryRun: Bool
    public var threshold: DeletionThreshold
    /// How old the other service's verdict on a user may be for this service to rely on it
    /// (`verdict_max_age`); older or missing: unknown, the user is left alone.
    public var verdictMaxAge: Duration

    public init(
        enabled: Bool = false, schedule: ScheduleSetting? = nil, runOnStart: Bool = false,
        timeout: Duration = .seconds(600), heartbeatTimeout: Duration = .seconds(120),
        limits: ResourceLimits = ResourceLimits(), dryRun: Bool = false, threshold: DeletionThreshold = DeletionThreshold(),
        verdictMaxAge: Duration = .seconds(48 * 3600)
    ) {
        self.verdictMaxAge = verdictMaxAge
        self.enabled = enabled
        self.schedule = schedule
        self.runOnStart = runOnStart
        self.timeout = timeout
        self.heartbeatTimeout = heartbeatTimeout
        self.limits = limits
        self.dryRun = dryRun
        self.threshold = threshold
    }
}

/// How group membership is resolved.
public enum NestedGroupMode: String, Sendable, Hashable, CaseIterable, Codable {
    /// AD's LDAP_MATCHING_RULE_IN_CHAIN (1.2.840.113556.1.4.1941), resolved by the server.
    case matchingRuleInChain = "matching_rule_in_chain"
    /// Read `member` of groups and resolve the transitive closure here.
    case memberAttribute = "member_attribute"
}

/// What kind of directory server it is: decides who counts as a person.
public enum DirectoryType: String, Sendable, Hashable, CaseIterable, Codable {
    /// Active Directory (and Samba AD): people are `(&(objectClass=user)(objectCategory=person))`,
    /// as in SudoSOS's own sync, so contacts, computers and managed service accounts in a group
    /// get no account.
    case activeDirectory = "active_directory"
    /// OpenLDAP and other servers: people are `(objectClass=person)` (inetOrgPerson and the like).
    case openLDAP = "openldap"

    /// The LDAP filter that selects people.
    public var personFilter: String {
        switch self {
        case .activeDirectory: return "(&(objectClass=user)(objectCategory=person))"
        case .openLDAP: return "(objectClass=person)"
        }
    }
}

/// Which attribute identifies a directory object.
public enum GUIDAttribute: String, Sendable, Hashable, CaseIterable, Codable {
    /// AD: 16 raw bytes, stored as 32 lowercase hex digits in wire order.
    case objectGUID
    /// OpenLDAP: a textual UUID, stored as its 32 hex digits.
    case entryUUID
}

/// `services.ldap.*`
public struct LDAPSettings: Sendable, Hashable, Codable {
    public var common: ServiceSettings
    public var serverURL: String
    public var base: String
    public var bindUser: String?
    /// Never logged.
    public var bindPassword: String?
    /// Base DN of the shared-account (organ) groups.
    public var sharedAccountFilter: String?
    /// Base DN of the role groups.
    public var roleFilter: String?
    /// DN of the service-account group.
    public var serviceAccountFilter: String?
    public var guidAttribute: GUIDAttribute
    public var nestedGroups: NestedGroupMode
    /// Who is a person (`directory_type`).
    public var directoryType: DirectoryType
    public var caFile: String?
    /// Use StartTLS on an `ldap://` URL.
    public var startTLS: Bool
    public var networkTimeout: Duration
    public var operationTimeout: Duration
    /// Entries per page of the paged-results control (default 1,000: Active Directory's
    /// MaxPageSize, the most a page can hold there; fewer pages, fewer round trips).
    public var pageSize: Int

    public init(
        common: ServiceSettings = ServiceSettings(), serverURL: String, base: String, bindUser: String? = nil,
        bindPassword: String? = nil, sharedAccountFilter: String? = nil, roleFilter: String? = nil,
        serviceAccountFilter: String? = nil, guidAttribute: GUIDAttribute = .objectGUID,
        nestedGroups: NestedGroupMode = .matchingRuleInChain, directoryType: DirectoryType = .activeDirectory,
        caFile: String? = nil, startTLS: Bool = false,
        networkTimeout: Duration = .seconds(10), operationTimeout: Duration = .seconds(60), pageSize: Int = 1000
    ) {
        self.common = common
        self.serverURL = serverURL
        self.base = base
        self.bindUser = bindUser
        self.bindPassword = bindPassword
        self.sharedAccountFilter = sharedAccountFilter
        self.roleFilter = roleFilter
        self.serviceAccountFilter = serviceAccountFilter
        self.guidAttribute = guidAttribute
        self.nestedGroups = nestedGroups
        self.directoryType = directoryType
        self.caFile = caFile
        self.startTLS = startTLS
        self.networkTimeout = networkTimeout
        self.operationTimeout = operationTimeout
        self.pageSize = pageSize
    }
}

/// `services.gewisdb.*`
public struct GEWISDBSettings: Sendable, Hashable, Codable {
    public var common: ServiceSettings
    /// e.g. https://database.gewis.nl/api
    public var apiURL: String
    /// Bearer key. Never logged.
    public var apiKey: String?
    /// HTTP basic credentials (the seed's GEWISDB_USERNAME / GEWISDB_PASSWORD). Never logged.
    public var basicUser: String?
    public var basicPassword: String?
    public var concurrency: Int
    public var requestTimeout: Duration
    /// More failed member requests than this share: the run writes nothing and fails.
    public var maxFailedRatio: Double
    /// Attempts per request on connection errors, timeouts and 5xx (1 = no retry).
    public var maxAttempts: Int

    public init(
        common: ServiceSettings = ServiceSettings(), apiURL: String, apiKey: String? = nil, basicUser: String? = nil,
        basicPassword: String? = nil, concurrency: Int = 16, requestTimeout: Duration = .seconds(10),
        maxFailedRatio: Double = 0.05, maxAttempts: Int = 3
    ) {
        self.common = common
        self.apiURL = apiURL
        self.apiKey = apiKey
        self.basicUser = basicUser
        self.basicPassword = basicPassword
        self.concurrency = concurrency
        self.requestTimeout = requestTimeout
        self.maxFailedRatio = maxFailedRatio
        self.maxAttempts = maxAttempts
    }
}
