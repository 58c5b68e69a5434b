import Foundation
import Logging
import SudoSOSStore
import SyncEngine
import TestKit

@testable import LDAPSource

/// A throwaway SudoSOS database and a store on it, to run the `ldap` service end to end
/// through the real `SyncRunner`.
struct LDAPRunFixture {
    let engine: Engine
    let db: TemporaryDatabase
    let store: any SudoSOSDatabase

    init(_ engine: Engine = .postgres) throws {
        self.engine = engine
        db = try TemporaryDatabase.create(engine)
        switch engine {
        case .postgres: store = PostgresStore(url: db.url, connectTimeout: .seconds(5), logger: Logger(label: "test.store"))
        case .mariadb: store = try MariaDBStore(url: db.url, connectTimeout: .seconds(5))
        }
    }

    /// `string_agg` / `GROUP_CONCAT` of `expression` ordered by `order`, comma-separated.
    func agg(_ expression: String, orderBy order: String) -> String {
        engine == .postgres
            ? "string_agg((\(expression))::text, ',' ORDER BY \(order))"
            : "GROUP_CONCAT(\(expression) ORDER BY \(order) SEPARATOR ',')"
    }

    /// A boolean as the client prints it.
    func b(_ value: Bool) -> String { engine.bool(value) }

    /// Statements the store sent so far.
    var roundTrips: Int { (store as? PostgresStore)?.roundTrips ?? (store as? MariaDBStore)?.roundTrips ?? 0 }

    /// Our run table.
    var runs: String { engine == .postgres ? "sudosos_sync.run" : "sudosos_sync_run" }

    func drop() { db.drop() }

    func run(_ settings: LDAPSettings, dryRun: Bool = false, reporter: any RunReporter = SilentReporter()) async -> RunResult {
        var logger = Logger(label: "test.ldap")
        logger.logLevel = .warning
        let runner = SyncRunner(database: store, threshold: settings.common.threshold, logger: logger)
        return await runner.run(LDAPSyncService(settings: settings), dryRun: dryRun, reporter: reporter)
    }

    /// One value of a query.
    func value(_ sql: String) throws -> String { try db.sql(sql) }

    func count(_ table: String, _ condition: String = "true") throws -> Int {
        Int(try db.sql("SELECT count(*) FROM \(table) WHERE \(condition)")) ?? -1
    }

    /// The id of the user with this first name (unique in the tests' data).
    func userId(_ firstName: String) throws -> Int {
        let escaped = firstName.replacingOccurrences(of: "'", with: "''")
        guard let id = Int(try db.sql(#"SELECT id FROM "user" WHERE "firstName" = '\#(escaped)'"#)) else {
            throw LDAPToolFailed(output: "no user named \(firstName)")
        }
        return id
    }

    /// Everything the service writes, as one text: to show a run wrote nothing.
    func state() throws -> String {
        try db.sql(
            #"SELECT concat((SELECT coalesce(\#(agg("concat(id, ':', version, ':', active)", orderBy: "id")), '') FROM "user")"#
                + #", '|', (SELECT count(*) FROM ldap_authenticator), '|', (SELECT count(*) FROM organ_membership)"#
                + #", '|', (SELECT count(*) FROM assigned_role), '|', (SELECT count(*) FROM member_user))"#)
    }
}

/// A slapd of a test's own (`slapd.sh start DIR --minimal`), for tests that stop or freeze it.
final class OwnSlapd {
    let dir: String
    let url: String
    let bindDN: String
    let bindPassword: String
    let pid: Int32
    private let values: [String: String]

    /// This server as a `TestDirectory`, for scratch organisations and settings.
    var directory: TestDirectory { .ownSlapd(values) }

    /// `tls`: a certificate and key (PEM files) to serve LDAPS with as well (`ldapsURL`).
    init(full: Bool = false, tls: (certificate: String, key: String)? = nil) throws {
        let script = try TestEnvironment.require("SUDOSOS_TEST_SLAPD_SCRIPT")
        dir = NSTemporaryDirectory() + "ldap-own-slapd-" + UUID().uuidString
        var environment = ProcessInfo.processInfo.environment
        if let tls {
            environment["SLAPD_TLS_CERT"] = tls.certificate
            environment["SLAPD_TLS_KEY"] = tls.key
        }
        let result = try runProcess("/bin/bash", [script, "start", dir] + (full ? [] : ["--minimal"]), environment: environment)
        let text = result.stdout
        guard result.status == 0 else { throw LDAPToolFailed(output: "slapd.sh start: \(result.stderr)") }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        self.values = values
        url = values["SUDOSOS_TEST_SLAPD_URL"] ?? ""
        bindDN = values["SUDOSOS_TEST_SLAPD_BIND_DN"] ?? ""
        bindPassword = values["SUDOSOS_TEST_SLAPD_BIND_PW"] ?? ""
        let pidText = (try? String(contentsOfFile: values["SUDOSOS_TEST_SLAPD_PIDFILE"] ?? "", encoding: .utf8)) ?? ""
        pid = Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        guard pid > 0, !url.isEmpty else { throw LDAPToolFailed(output: "slapd.sh start printed no URL or pid") }
    }

    func settings(networkTimeout: Duration = .seconds(2), operationTimeout: Duration = .seconds(3)) throws -> LDAPSettings {
        let root = "DC=gewiswg,DC=test"
        return LDAPSettings(
            common: ServiceSettings(enabled: true), serverURL: url, base: root, bindUser: bindDN, bindPassword: bindPassword,
            sharedAccountFilter: "OU=Organisation,\(root)", guidAttribute: .objectGUID, nestedGroups: .memberAttribute,
            directoryType: .openLDAP,
            networkTimeout: networkTimeout, operationTimeout: operationTimeout)
    }

    /// `ldaps://127.0.0.1:PORT` when started with `tls`.
    var ldapsURL: String? { values["SUDOSOS_TEST_SLAPD_LDAPS_URL"] }

    func signal(_ signal: Int32) { kill(pid, signal) }

    func stop() {
        if let script = try? TestEnvironment.require("SUDOSOS_TEST_SLAPD_SCRIPT") {
            _ = try? runProcess("/bin/bash", [script, "stop", dir])
        }
    }

    deinit { stop() }
}

