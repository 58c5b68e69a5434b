import Foundation

/// Turns the merged raw values into a `Configuration`, checking every value and the keys an
/// enabled service needs. Defaults come from the initialisers in Configuration.swift; a bad
/// value is recorded as a problem and its default kept, so every problem is found in one pass.
struct ConfigurationDecoder {
    let reader: ConfigurationReader

    func decode() -> Configuration {
        var configuration = Configuration()
        configuration.database = database()
        configuration.metrics = metrics()
        configuration.supervisor = supervisor()
        configuration.ldap = ldap()
        configuration.gewisdb = gewisdb()
        if !configuration.enabledServices.isEmpty && configuration.database.url == nil {
            reader.problem(
                "database.url",
                "missing (an enabled service needs the database: set database.url, SUDOSOS_SYNC_DATABASE_URL or TYPEORM_HOST and friends)")
        }
        return configuration
    }

    // MARK: - database, metrics, supervisor

    private func database() -> DatabaseSettings {
        var settings = DatabaseSettings()
        if let url = reader.nonEmptyString("database.url") {
            switch DatabaseURL.engine(of: url) {
            case .mariadb:
                do {
                    _ = try DatabaseURL.mariadb(url)
                    settings.url = url
                } catch {
                    reader.problem("database.url", error.description)
                }
            case .postgres where ConnInfo.isValid(url):
                settings.url = url
            case .postgres, nil:
                if let scheme = DatabaseURL.scheme(of: url) {
                    reader.problem(
                        "database.url",
                        "has the unknown scheme \(Masking.scrub(scheme))://; use mariadb://, mysql://, postgresql:// or a libpq conninfo")
                } else {
                    reader.problem(
                        "database.url", "is neither a mariadb:// or postgresql:// URL nor a libpq conninfo (key=value ...)")
                }
            }
        }
        settings.password = reader.string("database.password")
        if let timeout = reader.duration("database.connect_timeout") { settings.connectTimeout = timeout }
        return settings
    }

    private func metrics() -> MetricsSettings {
        var settings = MetricsSettings()
        if let listen = reader.nonEmptyString("metrics.listen") {
            if let (host, port) = Self.hostAndPort(listen) {
                settings.listenHost = host
                settings.listenPort = port
            } else {
                reader.bad("metrics.listen", "is not HOST:PORT (e.g. 127.0.0.1:9713 or [::1]:9713)")
            }
        }
        settings.triggerToken = reader.nonEmptyString("metrics.trigger_token")
        return settings
    }

    /// `127.0.0.1:9713`, `[::1]:9713`, `localhost:0` (port 0: any free port).
    static func hostAndPort(_ text: String) -> (String, Int)? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else { return nil }
        }
        guard !host.isEmpty, !host.contains(where: \.isWhitespace), let port = Int(portText), (0...65535).contains(port)
        else { return nil }
        return (String(host), port)
    }

    private func supervisor() -> SupervisorSettings {
        var settings = SupervisorSettings()
        if let zone = reader.nonEmptyString("supervisor.timezone") {
            if TimeZone(identifier: zone) != nil {
                settings.timezone = zone
            } else {
                reader.bad("supervisor.timezone", "is not a time zone (use an IANA name like Europe/Amsterdam)")
            }
        }
        if let runs = reader.int("supervisor.max_concurrent_runs", in: 1...64) { settings.maxConcurrentRuns = runs }
        if let timeout = reader.duration("supervisor.shutdown_timeout") { settings.shutdownTimeout = timeout }
        var backoff = settings.backoff
        if let initial = reader.duration("supervisor.backoff.initial") { backoff.initial = initial }
        if let max = reader.duration("supervisor.backoff.max") { backoff.max = max }
        if let multiplier = reader.double("supervisor.backoff.multiplier", in: 1...1000) { backoff.multiplier = multiplier }
        if let jitter = reader.ratio("supervisor.backoff.jitter") { backoff.jitter = jitter }
        if let reset = reader.duration("supervisor.backoff.reset_after") { backoff.resetAfter = reset }
        if backoff.initial > backoff.max {
            reader.problem(
                "supervisor.backoff.initial",
                "\(DurationText.format(backoff.initial)) is longer than supervisor.backoff.max \(DurationText.format(backoff.max))")
        }
        settings.backoff = backoff
        return settings
    }

    // MARK: - services

    /// The keys every service has; `enabled` defaults to true for a configured service.
    private func common(_ service: String) -> ServiceSettings {
        let p = "services.\(service)."
        var settings = ServiceSettings()
        settings.enabled = reader.bool(p + "enabled") ?? true
        let cron = reader.nonEmptyString(p + "schedule")
        let interval = reader.duration(p + "interval")
        if cron != nil && interval != nil {
            reader.problem("services.\(service)", "has both schedule and interval; set one of them")
        } else if let cron {
            do {
                _ = try CronExpression(cron)
                settings.schedule = .cron(cron)
            } catch let error as SyncError {
                // CronExpression's message quotes the expression and names the bad field.
                reader.problem(p + "schedule", Masking.scrub(error.message))
            } catch {
                reader.bad(p + "schedule", "is not a cron expression")
            }
        } else if let interval {
            settings.schedule = .interval(interval)
        }
        if let value = reader.bool(p + "run_on_start") { settings.runOnStart = value }
        if let value = reader.duration(p + "timeout") { settings.timeout = value }
        if let value = reader.duration(p + "heartbeat_timeout") { settings.heartbeatTimeout = value }
        if let value = reader.bool(p + "dry_run") { settings.dryRun = value }
        if let value = reader.int(p + "max_deletions", in: 0...Int.max) { settings.threshold.maxDeletions = value }
        if let value = reader.ratio(p + "max_deletion_ratio") { settings.threshold.maxRatio = value }
        if let value = reader.duration(p + "verdict_max_age") { settings.verdictMaxAge = value }
        if let value = reader.byteSize(p + "limits.memory") { settings.limits.memoryBytes = value }
        if let value = reader.duration(p + "limits.cpu") {
            // RLIMIT_CPU counts whole seconds; round a fraction up so a limit is never 0.
            let ms = DurationText.milliseconds(of: value)
            settings.limits.cpuSeconds = UInt64((ms + 999) / 1000)
        }
        if let value = reader.int(p + "limits.open_files", in: 16...1_048_576) { settings.limits.openFiles = UInt64(value) }
        return settings
    }

    /// Records `missing` for a key an enabled service needs.
    private func require(_ path: String, _ why: String) {
        if !reader.isSet(path) { reader.problem(path, "missing (\(why))") }
    }

    private func ldap() -> LDAPSettings? {
        let p = "services.ldap."
        guard reader.hasAnything(under: "services.ldap") else { return nil }
        let common = common("ldap")
        var settings = LDAPSettings(common: common, serverURL: "", base: "")
        if let urls = reader.nonEmptyString(p + "server_url") {
            let list = urls.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
            if list.allSatisfy({ ConfigurationReader.isURL($0, schemes: ["ldap", "ldaps", "ldapi"], hostless: ["ldapi"]) }) {
                settings.serverURL = list.joined(separator: " ")
            } else {
                reader.bad(p + "server_url", "is not a URL (use ldap://HOST or ldaps://HOST)")
            }
        }
        settings.base = dn(p + "base") ?? ""
        settings.bindUser = reader.nonEmptyString(p + "bind_user")
        settings.bindPassword = reader.nonEmptyString(p + "bind_pw")  // an empty password would be an unauthenticated bind
        settings.sharedAccountFilter = dn(p + "shared_account_filter")
        settings.roleFilter = dn(p + "role_filter")
        settings.serviceAccountFilter = dn(p + "service_account_filter")
        if let value = reader.choice(p + "guid_attribute", of: GUIDAttribute.self) { settings.guidAttribute = value }
        if let value = reader.choice(p + "nested_groups", of: NestedGroupMode.self) { settings.nestedGroups = value }
        // entryUUID is OpenLDAP's; without an explicit directory_type it implies openldap.
        if let value = reader.choice(p + "directory_type", of: DirectoryType.self) {
            settings.directoryType = value
        } else if settings.guidAttribute == .entryUUID {
            settings.directoryType = .openLDAP
        }
        if let file = reader.nonEmptyString(p + "ca_file") {
            if FileManager.default.isReadableFile(atPath: file) {
                settings.caFile = file
            } else {
                reader.bad(p + "ca_file", "is not a readable file")
            }
        }
        if let value = reader.bool(p + "start_tls") {
            settings.startTLS = value
            if value && settings.serverURL.lowercased().hasPrefix("ldaps://") {
                reader.problem(p + "start_tls", "StartTLS needs an ldap:// URL; ldaps:// is TLS already")
            }
        }
        if let value = reader.duration(p + "network_timeout") { settings.networkTimeout = value }
        if let value = reader.duration(p + "operation_timeout") { settings.operationTimeout = value }
        if let value = reader.int(p + "page_size", in: 1...100_000) { settings.pageSize = value }
        if common.enabled {
            require(p + "server_url", "the enabled ldap service needs it; or LDAP_SERVER_URL")
            require(p + "base", "the enabled ldap service needs it; or LDAP_BASE")
            if reader.isSet(p + "bind_user") {
                require(p + "bind_pw", "bind_user is set; or LDAP_BIND_PW, or the credential file LDAP_BIND_PW")
            } else if reader.isSet(p + "bind_pw") {
                require(p + "bind_user", "bind_pw is set; or LDAP_BIND_USER")
            }
        }
        return settings
    }

    /// A distinguished name: not empty, with at least one `attribute=value`.
    private func dn(_ path: String) -> String? {
        guard let text = reader.nonEmptyString(path) else { return nil }
        guard text.contains("=") else {
            reader.bad(path, "is not a DN (e.g. ou=Groups,dc=example,dc=org)")
            return nil
        }
        return text
    }

    private func gewisdb() -> GEWISDBSettings? {
        let p = "services.gewisdb."
        guard reader.hasAnything(under: "services.gewisdb") else { return nil }
        let common = common("gewisdb")
        var settings = GEWISDBSettings(common: common, apiURL: "")
        if let url = reader.url(p + "api_url", schemes: ["http", "https"]) {
            settings.apiURL = url
        }
        settings.apiKey = reader.nonEmptyString(p + "api_key")
        settings.basicUser = reader.nonEmptyString(p + "basic_user")
        settings.basicPassword = reader.nonEmptyString(p + "basic_password")
        if let value = reader.int(p + "concurrency", in: 1...256) { settings.concurrency = value }
        if let value = reader.duration(p + "request_timeout") { settings.requestTimeout = value }
        if let value = reader.ratio(p + "max_failed_ratio") { settings.maxFailedRatio = value }
        if let value = reader.int(p + "max_attempts", in: 1...20) { settings.maxAttempts = value }
        if common.enabled {
            require(p + "api_url", "the enabled gewisdb service needs it; or GEWISDB_API_URL")
            if reader.isSet(p + "basic_user") {
                require(p + "basic_password", "basic_user is set; or GEWISDB_PASSWORD")
            } else {
                require(p + "api_key", "the enabled gewisdb service needs it; or GEWISDB_API_KEY, or the credential file GEWISDB_API_KEY")
            }
        }
        return settings
    }
}
