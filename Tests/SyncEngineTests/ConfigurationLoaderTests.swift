import Foundation
import Testing
@testable import SyncEngine

/// The loader: file, variables, credential files, and a message naming the key for every
/// problem (exit 78).
@Suite struct ConfigurationLoaderTests {
    /// A minimal valid configuration with both services enabled.
    static let valid = """
        database:
          url: postgresql://sudosos@127.0.0.1:5432/sudosos
        services:
          ldap:
            interval: 15m
            server_url: ldaps://dc.example.org
            base: dc=example,dc=org
            bind_user: cn=sudosos,dc=example,dc=org
            bind_pw: ldap-secret-1
          gewisdb:
            schedule: "41 1 * * *"
            api_url: https://database.example.org/api
            api_key: gewisdb-key-1
        """

    /// The one-line message `yaml` (with `environment`) is rejected with.
    private func problem(_ yaml: String, environment: [String: String] = [:]) -> String? {
        do {
            _ = try ConfigurationLoader.parse(yaml: yaml, environment: environment)
            return nil
        } catch let error as SyncError {
            #expect(error.kind == .configuration)
            #expect(error.exitCode == .configuration)
            #expect(!error.message.contains("\n"))
            return error.message
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func readsAValidFile() throws {
        let c = try ConfigurationLoader.parse(yaml: Self.valid)
        #expect(c.database.url == "postgresql://sudosos@127.0.0.1:5432/sudosos")
        let ldap = try #require(c.ldap)
        #expect(ldap.common.enabled)
        #expect(ldap.common.schedule == .interval(.seconds(900)))
        #expect(ldap.serverURL == "ldaps://dc.example.org")
        #expect(ldap.bindPassword == "ldap-secret-1")
        #expect(ldap.directoryType == .activeDirectory, "the default: SudoSOS's own person filter")
        let openldap = try ConfigurationLoader.parse(yaml: Self.valid.replacingOccurrences(
            of: "    bind_pw: ldap-secret-1", with: "    bind_pw: ldap-secret-1\n    directory_type: openldap"))
        #expect(openldap.ldap?.directoryType == .openLDAP)
        #expect(problem(Self.valid.replacingOccurrences(
            of: "    bind_pw: ldap-secret-1", with: "    bind_pw: ldap-secret-1\n    directory_type: novell"))?
            .contains("services.ldap.directory_type") == true)
        let gewisdb = try #require(c.gewisdb)
        #expect(gewisdb.common.schedule == .cron("41 1 * * *"))
        #expect(gewisdb.apiKey == "gewisdb-key-1")
        #expect(c.enabledServices == ["gewisdb", "ldap"])
    }

    @Test func readsEveryKeyOfTheInterface() throws {
        let yaml = """
            database:
              url: "host=127.0.0.1 port=5432 dbname=sudosos user=sync"
              password: dbpass
              connect_timeout: 5s
            metrics:
              listen: "[::1]:9800"
              trigger_token: tok-123456
            supervisor:
              timezone: Europe/Amsterdam
              max_concurrent_runs: 3
              shutdown_timeout: 45s
              backoff: { initial: 5s, max: 1h, multiplier: 3, jitter: 0.5, reset_after: 20m }
            services:
              ldap:
                enabled: true
                schedule: "*/15 * * * *"
                run_on_start: true
                timeout: 1h30m
                heartbeat_timeout: 90s
                limits: { memory: 1GiB, cpu: 15m, open_files: 2048 }
                dry_run: true
                max_deletions: 7
                max_deletion_ratio: 0.25
                server_url: ldap://a.example.org ldap://b.example.org
                base: dc=example,dc=org
                shared_account_filter: ou=Shared,dc=example,dc=org
                role_filter: ou=Roles,dc=example,dc=org
                service_account_filter: cn=Services,dc=example,dc=org
                guid_attribute: entryUUID
                nested_groups: member_attribute
                start_tls: true
                network_timeout: 3s
                operation_timeout: 2m
                page_size: 250
              gewisdb:
                enabled: false
                interval: 24h
                api_url: http://127.0.0.1:8080/api
                concurrency: 4
                request_timeout: 500ms
                max_failed_ratio: 0.01
                max_attempts: 5
            """
        let c = try ConfigurationLoader.parse(yaml: yaml)
        #expect(c.database.password == "dbpass")
        #expect(c.database.connectTimeout == .seconds(5))
        #expect(c.metrics.listenHost == "::1" && c.metrics.listenPort == 9800)
        #expect(c.metrics.triggerToken == "tok-123456")
        #expect(c.supervisor.maxConcurrentRuns == 3)
        #expect(c.supervisor.shutdownTimeout == .seconds(45))
        #expect(c.supervisor.backoff == BackoffSettings(initial: .seconds(5), max: .seconds(3600), multiplier: 3, jitter: 0.5, resetAfter: .seconds(1200)))
        let ldap = try #require(c.ldap)
        #expect(ldap.common.schedule == .cron("*/15 * * * *"))
        #expect(ldap.common.runOnStart && ldap.common.dryRun)
        #expect(ldap.common.timeout == .seconds(5400))
        #expect(ldap.common.heartbeatTimeout == .seconds(90))
        #expect(ldap.common.limits == ResourceLimits(memoryBytes: 1 << 30, cpuSeconds: 900, openFiles: 2048))
        #expect(ldap.common.threshold == DeletionThreshold(maxDeletions: 7, maxRatio: 0.25))
        #expect(ldap.serverURL == "ldap://a.example.org ldap://b.example.org")
        #expect(ldap.guidAttribute == .entryUUID && ldap.nestedGroups == .memberAttribute)
        #expect(ldap.directoryType == .openLDAP, "entryUUID implies OpenLDAP's people")
        #expect(ldap.startTLS && ldap.pageSize == 250)
        #expect(ldap.networkTimeout == .seconds(3) && ldap.operationTimeout == .seconds(120))
        #expect(ldap.serviceAccountFilter == "cn=Services,dc=example,dc=org")
        let gewisdb = try #require(c.gewisdb)
        #expect(!gewisdb.common.enabled)
        #expect(gewisdb.requestTimeout == .milliseconds(500))
        #expect(gewisdb.concurrency == 4 && gewisdb.maxAttempts == 5 && gewisdb.maxFailedRatio == 0.01)
        #expect(c.enabledServices == ["ldap"])
    }

    @Test func anEmptyFileGivesDefaultsAndNoServices() throws {
        let c = try ConfigurationLoader.parse(yaml: "")
        #expect(c == Configuration())
        #expect(c.services.isEmpty)
    }

    /// A fresh directory; the caller removes it.
    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("config-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    // MARK: - Every error path names its key

    @Test(arguments: [
        ("services:\n  ldap:\n    intervall: 15m", "services.ldap.intervall: unknown key"),
        ("databse:\n  url: x", "databse: unknown key"),
        ("services:\n  ftp: {}", "services.ftp: unknown service (known: ldap, gewisdb)"),
        ("supervisor:\n  backoff:\n    factor: 2", "supervisor.backoff.factor: unknown key"),
        ("services:\n  ldap:\n    interval: 15x", #"services.ldap.interval: "15x" is not a duration (use 500ms, 30s, 15m, 2h)"#),
        ("services:\n  ldap:\n    interval: 30", #"services.ldap.interval: "30" is not a duration"#),
        ("services:\n  ldap:\n    timeout: 0s", #"services.ldap.timeout: "0s" must be longer than 0"#),
        ("services:\n  ldap:\n    limits: { memory: 1 GB-ish }", #"services.ldap.limits.memory: "1 GB-ish" is not a size"#),
        ("services:\n  ldap:\n    max_deletion_ratio: 1.5", #"services.ldap.max_deletion_ratio: "1.5" must be between 0.0 and 1.0"#),
        ("services:\n  gewisdb:\n    max_failed_ratio: -0.1", "services.gewisdb.max_failed_ratio: "),
        ("supervisor:\n  backoff: { jitter: 2 }", "supervisor.backoff.jitter: "),
        ("services:\n  ldap:\n    max_deletions: many", #"services.ldap.max_deletions: "many" is not a whole number"#),
        ("services:\n  ldap:\n    enabled: maybe", #"services.ldap.enabled: "maybe" is not a boolean"#),
        ("services:\n  ldap:\n    schedule: '* * * * *'\n    interval: 1m", "services.ldap: has both schedule and interval"),
        ("services:\n  ldap:\n    server_url: http://dc.example.org", #"services.ldap.server_url: "http://dc.example.org" is not a URL"#),
        ("services:\n  gewisdb:\n    api_url: database.example.org", #"services.gewisdb.api_url: "database.example.org" is not a URL"#),
        ("services:\n  ldap:\n    guid_attribute: uuid", #"services.ldap.guid_attribute: "uuid" is not one of objectGUID, entryUUID"#),
        ("services:\n  ldap:\n    base: example.org", #"services.ldap.base: "example.org" is not a DN"#),
        ("services:\n  ldap:\n    ca_file: /nonexistent/ca.pem", "services.ldap.ca_file: "),
        ("metrics:\n  listen: 9713", #"metrics.listen: "9713" is not HOST:PORT"#),
        ("supervisor:\n  timezone: Mars/Olympus", #"supervisor.timezone: "Mars/Olympus" is not a time zone"#),
        ("supervisor:\n  backoff: { initial: 1h, max: 1m }", "supervisor.backoff.initial: 1h is longer than supervisor.backoff.max 1m"),
        ("database:\n  url: not a conninfo", "database.url: is neither a mariadb:// or postgresql:// URL nor a libpq conninfo"),
        ("database:\n  url: oracle://db/sudosos", "database.url: has the unknown scheme oracle://"),
        ("services:\n  ldap:\n    base: [a, b]", "services.ldap.base: must be a single value, not a list"),
        ("services: 3", "services: must be a mapping of keys"),
        ("database:\n  url: a\n  url: b", #"config.yaml: line 2: key "url" is given twice"#),
        ("- a\n- b", "config.yaml: must be a mapping of keys"),
        ("database: {url: [", "config.yaml: line "),
    ])
    func namesTheKey(yaml: String, expected: String) {
        let message = problem(yaml)
        #expect(message?.hasPrefix(expected) == true, "got \(message ?? "no error")")
    }

    @Test func missingRequiredKeysOfAnEnabledService() {
        #expect(problem("database: {url: 'dbname=x'}\nservices:\n  ldap:\n    base: dc=x")?.hasPrefix("services.ldap.server_url: missing") == true)
        #expect(problem("database: {url: 'dbname=x'}\nservices:\n  ldap:\n    server_url: ldap://h")?.hasPrefix("services.ldap.base: missing") == true)
        #expect(problem("database: {url: 'dbname=x'}\nservices:\n  ldap: {server_url: 'ldap://h', base: dc=x, bind_user: cn=a}")?
            .hasPrefix("services.ldap.bind_pw: missing") == true)
        #expect(problem("database: {url: 'dbname=x'}\nservices:\n  gewisdb: {api_key: k}")?.hasPrefix("services.gewisdb.api_url: missing") == true)
        #expect(problem("database: {url: 'dbname=x'}\nservices:\n  gewisdb: {api_url: 'https://h/api'}")?
            .hasPrefix("services.gewisdb.api_key: missing") == true)
        #expect(problem("services:\n  gewisdb: {api_url: 'https://h/api', api_key: k}")?.hasPrefix("database.url: missing") == true)
        // An empty bind password would make an unauthenticated bind.
        #expect(problem("database: {url: 'dbname=x'}\nservices:\n  ldap: {server_url: 'ldap://h', base: dc=x, bind_user: cn=a, bind_pw: ''}")
            == "services.ldap.bind_pw: is empty")
        // A disabled service needs nothing.
        #expect(problem("services:\n  ldap:\n    enabled: false") == nil)
    }

    @Test func aBadCronExpressionIsAConfigurationError() {
        // CronExpression names the bad field; the loader puts the key path in front.
        let message = problem("services:\n  ldap:\n    schedule: '61 * * * *'\n    enabled: false")
        if let message {
            #expect(message.hasPrefix("services.ldap.schedule: "))
            #expect(message.contains("61"))
        } else {
            // Until the supervisor's cron parser lands, CronExpression accepts anything.
            #expect((try? CronExpression("61 * * * *")) != nil)
        }
    }

    @Test func secretsAreNeverEchoed() {
        let message = problem("services:\n  ldap:\n    bind_pw: [s3cr3t-value]")
        #expect(message?.contains("s3cr3t") == false)
        let message2 = problem("database:\n  url: 'postgresql://u:s3cr3t-pw@h:5432/db' x y")
        #expect(message2 != nil)
        #expect(message2?.contains("s3cr3t") == false)
        let message3 = problem("services:\n  ldap:\n    interval: x", environment: ["SUDOSOS_SYNC_DATABASE_PASSWORD": "s3cr3t", "LDAP_BIND_PW": "s3cr3t"])
        #expect(message3?.contains("s3cr3t") == false)
    }

    @Test func addressesInBadValuesAreMasked() {
        let message = problem("services:\n  ldap:\n    base: jan.jansen@example.org")
        #expect(message?.contains("jan.jansen@") == false)
        #expect(message?.contains("j…@example.org") == true)
    }

    @Test func countsFurtherProblems() {
        let yaml = "services:\n  ldap:\n    interval: 15x\n    timeout: forever\n    enabled: false"
        var values = ConfigurationValues()
        let problems = ConfigurationLoader.readYAML(yaml, file: "f", into: &values)
        let reader = ConfigurationReader(values: values)
        _ = ConfigurationDecoder(reader: reader).decode()
        #expect(problems.isEmpty)
        #expect(reader.problems.count == 2)
    }

    // MARK: - Variables

    @Test func aVariableWinsOverTheFile() throws {
        let c = try ConfigurationLoader.parse(
            yaml: Self.valid,
            environment: ["LDAP_SERVER_URL": "ldap://override.example.org", "SUDOSOS_SYNC_SERVICES_LDAP_INTERVAL": "5m"])
        #expect(c.ldap?.serverURL == "ldap://override.example.org")
        #expect(c.ldap?.common.schedule == .interval(.seconds(300)))
    }

    @Test func aBadVariableIsNamed() {
        let message = problem(Self.valid, environment: ["SUDOSOS_SYNC_SERVICES_LDAP_TIMEOUT": "soon"])
        #expect(message == #"services.ldap.timeout (from SUDOSOS_SYNC_SERVICES_LDAP_TIMEOUT): "soon" is not a duration (use 500ms, 30s, 15m, 2h)"#)
        let unknown = problem(Self.valid, environment: ["SUDOSOS_SYNC_SERVICES_LDAP_INTERVALL": "5m"])
        #expect(unknown?.hasPrefix("SUDOSOS_SYNC_SERVICES_LDAP_INTERVALL: unknown variable") == true)
        // Variables that are not keys are left alone.
        #expect(problem(Self.valid, environment: ["SUDOSOS_SYNC_LOG_LEVEL": "debug", "SUDOSOS_SYNC_CONFIG": "/x"]) == nil)
    }

    @Test func theBackendsEnvFileAloneConfiguresEverything() throws {
        let env = [
            "ENABLE_LDAP": "true",
            "LDAP_SERVER_URL": "ldaps://dc.gewis.nl",
            "LDAP_BASE": "dc=gewis,dc=nl",
            "LDAP_BIND_USER": "cn=sudosos,ou=services,dc=gewis,dc=nl",
            "LDAP_BIND_PW": "pw-ldap",
            "LDAP_USER_FILTER": "(objectClass=user)",
            "LDAP_SHARED_ACCOUNT_FILTER": "ou=Shared,dc=gewis,dc=nl",
            "LDAP_ROLE_FILTER": "ou=Roles,dc=gewis,dc=nl",
            "LDAP_SERVICE_ACCOUNT_FILTER": "cn=Services,dc=gewis,dc=nl",
            "GEWISDB_API_URL": "https://database.gewis.nl/api",
            "GEWISDB_API_KEY": "key-gewisdb",
            "TYPEORM_CONNECTION": "postgres",
            "TYPEORM_HOST": "db.gewis.nl",
            "TYPEORM_PORT": "5433",
            "TYPEORM_DATABASE": "sudosos",
            "TYPEORM_USERNAME": "sudosos",
            "TYPEORM_PASSWORD": "pw-db",
        ]
        let c = try ConfigurationLoader.parse(yaml: "", environment: env)
        #expect(c.enabledServices == ["gewisdb", "ldap"])
        #expect(c.ldap?.bindUser == "cn=sudosos,ou=services,dc=gewis,dc=nl")
        #expect(c.ldap?.bindPassword == "pw-ldap")
        #expect(c.ldap?.sharedAccountFilter == "ou=Shared,dc=gewis,dc=nl")
        #expect(c.ldap?.roleFilter == "ou=Roles,dc=gewis,dc=nl")
        #expect(c.gewisdb?.apiURL == "https://database.gewis.nl/api")
        #expect(c.gewisdb?.apiKey == "key-gewisdb")
        #expect(c.database.url == "host=db.gewis.nl port=5433 dbname=sudosos user=sudosos")
        #expect(c.database.password == "pw-db")
    }

    @Test func enableLDAPFalseKeepsTheServiceOff() throws {
        let c = try ConfigurationLoader.parse(yaml: "", environment: ["ENABLE_LDAP": "false", "LDAP_BASE": "dc=x"])
        #expect(c.ldap != nil)
        #expect(c.enabledServices.isEmpty)
    }

    @Test func theSeedsAliasesWork() throws {
        let env = [
            "LDAP_URL": "ldap://ldap.gewis.nl",
            "LDAP_BIND_DN": "cn=sudosos,ou=services,dc=gewis,dc=nl",
            "LDAP_BIND_PASSWORD": "pw-alias",
            "LDAP_BASE_DN": "ou=people,dc=gewis,dc=nl",
            "GEWISDB_HOST": "gewisdb.gewis.nl",
            "GEWISDB_USERNAME": "sudosos",
            "GEWISDB_PASSWORD": "pw-basic",
            "SUDOSOS_SYNC_DATABASE_URL": "postgresql:///sudosos",
        ]
        let c = try ConfigurationLoader.parse(yaml: "", environment: env)
        #expect(c.ldap?.serverURL == "ldap://ldap.gewis.nl")
        #expect(c.ldap?.bindUser == "cn=sudosos,ou=services,dc=gewis,dc=nl")
        #expect(c.ldap?.bindPassword == "pw-alias")
        #expect(c.ldap?.base == "ou=people,dc=gewis,dc=nl")
        #expect(c.gewisdb?.apiURL == "https://gewisdb.gewis.nl/api")
        #expect(c.gewisdb?.basicUser == "sudosos")
        #expect(c.gewisdb?.basicPassword == "pw-basic")
        #expect(c.enabledServices == ["gewisdb", "ldap"])
    }

    @Test func theBackendsNameWinsOverTheAlias() throws {
        let c = try ConfigurationLoader.parse(
            yaml: "services: {ldap: {enabled: false}}", environment: ["LDAP_URL": "ldap://alias", "LDAP_SERVER_URL": "ldap://backend"])
        #expect(c.ldap?.serverURL == "ldap://backend")
    }

    @Test func typeORMWithTLSBecomesAVerifyingConninfo() throws {
        let env = [
            "TYPEORM_CONNECTION": "postgres", "TYPEORM_HOST": "db.example.org", "TYPEORM_PORT": "5432", "TYPEORM_DATABASE": "sudo sos",
            "TYPEORM_USERNAME": "o'brien", "TYPEORM_SSL_ENABLED": "true", "TYPEORM_SSL_CACERTS": "/etc/ssl/ca.pem",
        ]
        let c = try ConfigurationLoader.parse(yaml: "", environment: env)
        let url = try #require(c.database.url)
        #expect(url == #"host=db.example.org port=5432 dbname='sudo sos' user='o\'brien' sslmode=verify-full sslrootcert=/etc/ssl/ca.pem"#)
        let pairs = try #require(ConnInfo.parse(url))
        #expect(pairs.map(\.key) == ["host", "port", "dbname", "user", "sslmode", "sslrootcert"])
        #expect(pairs[2].value == "sudo sos" && pairs[3].value == "o'brien")
    }

    /// The backend's own .env (`TYPEORM_CONNECTION=mariadb`, or unset) gives a `mariadb://` URL,
    /// every part percent-encoded, TLS from TYPEORM_SSL_*; the password stays apart.
    @Test(arguments: ["mariadb", "mysql", nil])
    func typeORMForMariaDBBecomesAMariaDBURL(_ connection: String?) throws {
        var env = [
            "TYPEORM_HOST": "db.example.org", "TYPEORM_PORT": "3307", "TYPEORM_DATABASE": "sudo sos",
            "TYPEORM_USERNAME": "o'brien@x", "TYPEORM_PASSWORD": "p@ss:w/rd", "TYPEORM_SSL_ENABLED": "true",
            "TYPEORM_SSL_CACERTS": "/etc/ssl/ca.pem",
        ]
        env["TYPEORM_CONNECTION"] = connection
        let c = try ConfigurationLoader.parse(yaml: "", environment: env)
        let url = try #require(c.database.url)
        #expect(c.database.engine == .mariadb)
        #expect(!url.contains("p@ss"))
        #expect(c.database.password == "p@ss:w/rd")
        let target = try DatabaseURL.mariadb(url)
        #expect(target == MariaDBTarget(
            host: "db.example.org", port: 3307, user: "o'brien@x", database: "sudo sos",
            tls: { var t = MariaDBTarget.TLS(); t.enabled = true; t.caFile = "/etc/ssl/ca.pem"; return t }()))
    }

    @Test func databaseURLsChooseTheEngine() throws {
        #expect(DatabaseURL.engine(of: "mariadb://u@h/db") == .mariadb)
        #expect(DatabaseURL.engine(of: "MySQL://u@h:3306/db") == .mariadb)
        #expect(DatabaseURL.engine(of: "postgresql://u@h/db") == .postgres)
        #expect(DatabaseURL.engine(of: "postgres://u@h/db") == .postgres)
        #expect(DatabaseURL.engine(of: "host=h dbname=db") == .postgres)
        #expect(DatabaseURL.engine(of: "oracle://h/db") == nil)
        let target = try DatabaseURL.mariadb("mariadb://sync:s3cr%40t@127.0.0.1/sudosos?ssl=true&sslverify=false")
        #expect(target.password == "s3cr@t" && target.port == 3306 && target.tls.enabled && !target.tls.verifyServer)
        #expect(problem("database: {url: 'mariadb://h:3306/'}") == "database.url: names no database (mariadb://USER@HOST:PORT/DATABASE)")
        #expect(problem("database: {url: 'mariadb://h/db?sslmode=on'}")?.hasPrefix("database.url: has an unknown option sslmode") == true)
    }

    @Test func badTypeORMVariablesAreNamed() {
        #expect(problem("", environment: ["TYPEORM_HOST": "h", "TYPEORM_PORT": "fivefour"])?
            .hasPrefix(#"database.url (from TYPEORM_PORT): "fivefour" is not a port number"#) == true)
        #expect(problem("", environment: ["TYPEORM_CONNECTION": "sqlite"])
            == #"database.url (from TYPEORM_CONNECTION): "sqlite" is not supported; use mariadb, mysql or postgres"#)
        #expect(problem("", environment: ["TYPEORM_HOST": "h", "TYPEORM_SSL_ENABLED": "sure"])?
            .hasPrefix("database.url (from TYPEORM_SSL_ENABLED)") == true)
    }

    // MARK: - Credential files

    @Test func credentialFilesFillSecretsWithOneNewlineStripped() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("from-file\n".utf8).write(to: dir.appendingPathComponent("LDAP_BIND_PW"))
        try Data("key-with-two\n\n".utf8).write(to: dir.appendingPathComponent("GEWISDB_API_KEY"))
        try Data("db-pw".utf8).write(to: dir.appendingPathComponent("TYPEORM_PASSWORD"))
        try Data("token-xyz\r\n".utf8).write(to: dir.appendingPathComponent("TRIGGER_TOKEN"))
        let yaml = """
            database: {url: 'dbname=sudosos'}
            services:
              ldap: {server_url: 'ldap://h', base: dc=x, bind_user: cn=a, bind_pw: from-yaml}
              gewisdb: {api_url: 'https://h/api'}
            """
        let c = try ConfigurationLoader.parse(
            yaml: yaml, environment: ["CREDENTIALS_DIRECTORY": dir.path, "LDAP_BIND_PW": "from-env"])
        #expect(c.ldap?.bindPassword == "from-file")
        #expect(c.gewisdb?.apiKey == "key-with-two\n")
        #expect(c.database.password == "db-pw")
        #expect(c.metrics.triggerToken == "token-xyz")
    }

    @Test func aCredentialAloneDoesNotConfigureAService() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("k\n".utf8).write(to: dir.appendingPathComponent("GEWISDB_API_KEY"))
        let c = try ConfigurationLoader.parse(yaml: "", environment: ["CREDENTIALS_DIRECTORY": dir.path])
        #expect(c.gewisdb == nil)
    }

    // MARK: - The file on disk

    @Test func findsTheFileByFlagThenVariable() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = dir.appendingPathComponent("a.yaml"), b = dir.appendingPathComponent("b.yaml")
        try Data("supervisor: {max_concurrent_runs: 5}".utf8).write(to: a)
        try Data("supervisor: {max_concurrent_runs: 6}".utf8).write(to: b)
        let byVariable = try ConfigurationLoader(environment: ["SUDOSOS_SYNC_CONFIG": b.path]).load()
        #expect(byVariable.supervisor.maxConcurrentRuns == 6)
        let byFlag = try ConfigurationLoader(path: a.path, environment: ["SUDOSOS_SYNC_CONFIG": b.path]).load()
        #expect(byFlag.supervisor.maxConcurrentRuns == 5)
        let missing = ConfigurationLoader(path: dir.appendingPathComponent("none.yaml").path, environment: [:]).check()
        #expect(missing.problems == ["\(dir.path)/none.yaml: no such file"])
    }

    @Test func checkListsEveryProblemAndLoadCountsThem() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("c.yaml")
        try Data("services:\n  ldap:\n    enabled: false\n    interval: 15x\n    timeout: soon\n    colour: blue\n".utf8).write(to: file)
        let loader = ConfigurationLoader(path: file.path, environment: [:])
        #expect(loader.check().problems.count == 3)
        #expect(throws: SyncError.configuration("services.ldap.colour: unknown key (and 2 more problems; run sudosos-sync check-config)")) {
            try loader.load()
        }
    }

    // MARK: - The child's configuration

    @Test func restrictedToOneServiceAndRoundTripsThroughJSON() throws {
        var full = try ConfigurationLoader.parse(yaml: Self.valid)
        full.metrics.triggerToken = "trigger-secret"
        full.database.password = "db-secret"
        let child = try #require(full.restricted(to: "gewisdb"))
        #expect(child.ldap == nil)
        #expect(child.gewisdb == full.gewisdb)
        #expect(child.database == full.database)
        #expect(child.metrics.triggerToken == nil)
        let data = try child.childJSON()
        let text = String(decoding: data, as: UTF8.self)
        #expect(!text.contains("ldap-secret-1"))
        #expect(!text.contains("trigger-secret"))
        #expect(try Configuration(childJSON: data) == child)
        #expect(full.restricted(to: "nope") == nil)
        #expect(throws: SyncError.self) { try Configuration(childJSON: Data("{}".utf8)) }
    }

    /// One verdict per user: a child learns which other services run here (their verdicts
    /// count) though it receives only its own section; a disabled service has no say.
    @Test func aChildKnowsItsPeersAndTheVerdictMaxAge() throws {
        var full = try ConfigurationLoader.parse(yaml: Self.valid + "\n    verdict_max_age: 3h\n")
        #expect(full.gewisdb?.common.verdictMaxAge == .seconds(3 * 3600))
        #expect(full.ldap?.common.verdictMaxAge == .seconds(48 * 3600), "the default")
        let child = try #require(full.restricted(to: "gewisdb"))
        #expect(child.peers(of: "gewisdb") == ["ldap"])
        #expect(try Configuration(childJSON: try child.childJSON()).peers(of: "gewisdb") == ["ldap"])
        #expect(full.restricted(to: "ldap")?.peers(of: "ldap") == ["gewisdb"])
        full.ldap?.common.enabled = false
        #expect(full.restricted(to: "gewisdb")?.peers(of: "gewisdb") == [])
    }

    @Test func listsItsSecrets() throws {
        var c = try ConfigurationLoader.parse(yaml: Self.valid)
        c.database.url = "postgresql://u:url-secret@h/db"
        #expect(Set(c.secrets) == ["ldap-secret-1", "gewisdb-key-1", "url-secret"])
    }
}

/// Durations and sizes as the configuration writes them.
@Suite struct ConfigurationUnitsTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("30s", .seconds(30)), ("15m", .seconds(900)), ("2h", .seconds(7200)),
        ("1h30m", .seconds(5400)), ("1d", .seconds(86400)), ("2m30s", .seconds(150)), ("0s", .zero),
    ])
    func parsesDurations(text: String, expected: Duration) {
        #expect(DurationText.parse(text) == expected)
        #expect(DurationText.parse(DurationText.format(expected)) == expected)
    }

    @Test(arguments: ["", "15", "15x", "m", "1.5h", "30m1h", "1h1h", "-5s", "1 h", "99999999999999h"])
    func rejectsNonDurations(text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    @Test func formatsDurations() {
        #expect(DurationText.format(.seconds(5400)) == "1h30m")
        #expect(DurationText.format(.milliseconds(1500)) == "1s500ms")
        #expect(DurationText.format(.zero) == "0s")
    }

    @Test func parsesSizes() {
        #expect(ByteSize.parse("1GiB") == 1 << 30)
        #expect(ByteSize.parse("512MiB") == 512 << 20)
        #expect(ByteSize.parse("64KiB") == 64 << 10)
        #expect(ByteSize.parse("1GB") == 1_000_000_000)
        #expect(ByteSize.parse("4096") == 4096)
        #expect(ByteSize.parse("1.5GiB") == nil)
        #expect(ByteSize.parse("1Gb") == nil)
        #expect(ByteSize.parse("lots") == nil)
        #expect(ByteSize.format(1 << 30) == "1GiB")
        #expect(ByteSize.format(1536 << 20) == "1536MiB")
    }

    @Test func listenAddresses() {
        #expect(ConfigurationDecoder.hostAndPort("127.0.0.1:9713")! == ("127.0.0.1", 9713))
        #expect(ConfigurationDecoder.hostAndPort("[::1]:0")! == ("::1", 0))
        #expect(ConfigurationDecoder.hostAndPort("::1:9713") == nil)
        #expect(ConfigurationDecoder.hostAndPort(":9713") == nil)
        #expect(ConfigurationDecoder.hostAndPort("host:99999") == nil)
    }
}
