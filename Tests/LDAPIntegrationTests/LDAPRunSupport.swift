import Foundation
import Logging
import SudoSOSStore
import SyncEngine
import TestKit

@testable import LDAPSource

/// A throwaway SudoSOS database and a store on it, to run the `ldap` service end to end
/// through the real `SyncRunner`.
struct LDAPRunFixture {
    let db: TemporaryDatabase
    let store: PostgresStore

    init() throws {
        db = try TemporaryDatabase.create()
        store = PostgresStore(url: db.url, connectTimeout: .seconds(5), logger: Logger(label: "test.store"))
    }

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
            #"SELECT (SELECT coalesce(string_agg(id || ':' || version || ':' || active, ',' ORDER BY id), '') FROM "user")"#
                + #" || '|' || (SELECT count(*) FROM ldap_authenticator) || '|' || (SELECT count(*) FROM organ_membership)"#
                + #" || '|' || (SELECT count(*) FROM assigned_role) || '|' || (SELECT count(*) FROM member_user)"#)
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

    init(full: Bool = false) throws {
        let script = try TestEnvironment.require("SUDOSOS_TEST_SLAPD_SCRIPT")
        dir = NSTemporaryDirectory() + "ldap-own-slapd-" + UUID().uuidString
        let output = dir + ".out"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let status = try spawnAndWait(["/bin/bash", script, "start", dir] + (full ? [] : ["--minimal"]), output: output)
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else { throw LDAPToolFailed(output: "slapd.sh start: \(text)") }
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
            networkTimeout: networkTimeout, operationTimeout: operationTimeout)
    }

    func signal(_ signal: Int32) { kill(pid, signal) }

    func stop() {
        if let script = try? TestEnvironment.require("SUDOSOS_TEST_SLAPD_SCRIPT") {
            _ = try? spawnAndWait(["/bin/bash", script, "stop", dir], output: "/dev/null")
        }
    }

    deinit { stop() }
}

/// Runs a command to completion with its output in a file, the way a shell would: a clean
/// signal mask and default signal handlers (a daemon it starts, like slapd, must see SIGTERM;
/// threads of the test process block most signals, and children inherit that mask), and
/// waited for with `waitpid` on its own pid (Foundation's `Process` was seen never to notice
/// the exit of a script that leaves a daemon behind).
func spawnAndWait(_ arguments: [String], output: String) throws -> Int32 {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
    guard rc == 0 else { throw LDAPToolFailed(output: "posix_spawn \(arguments[0]): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 {
        guard errno == EINTR else { throw LDAPToolFailed(output: "waitpid: \(String(cString: strerror(errno)))") }
    }
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}
