import Foundation
import Logging
import SyncEngine
import TestKit

@testable import LDAPSource

/// The two test directories the harness starts (scripts/lib/slapd.sh, scripts/lib/samba.sh),
/// both loaded with fixtures/ldap/organisation.yaml under `OU=Organisation,<root>`.
enum TestDirectory: Hashable, Sendable, CustomStringConvertible {
    case slapd, activeDirectory
    /// A slapd of a test's own (`OwnSlapd`): its `SUDOSOS_TEST_SLAPD_*` values.
    case ownSlapd([String: String])

    var isSlapd: Bool { self != .activeDirectory }

    var description: String {
        switch self {
        case .slapd: return "slapd"
        case .activeDirectory: return "activeDirectory"
        case .ownSlapd(let values): return "own slapd \(values["SUDOSOS_TEST_SLAPD_URL"] ?? "")"
        }
    }

    var prefix: String { isSlapd ? "SUDOSOS_TEST_SLAPD" : "SUDOSOS_TEST_AD" }

    func env(_ key: String) throws -> String {
        if case .ownSlapd(let values) = self {
            guard let value = values["\(prefix)_\(key)"] else { throw LDAPToolFailed(output: "the own slapd printed no \(prefix)_\(key)") }
            return value
        }
        return try TestEnvironment.require("\(prefix)_\(key)")
    }

    var root: String { get throws { try env("BASE") } }

    /// Settings for the fixture organisation (or a scratch organisation under `organisation`).
    /// slapd: `member_attribute` mode over ldap://; AD: `matching_rule_in_chain` over LDAPS
    /// with the test CA, searching from the domain root (continuation references included).
    func settings(
        organisation: String? = nil, guid: GUIDAttribute = .objectGUID, pageSize: Int = 500,
        threshold: DeletionThreshold = DeletionThreshold(maxDeletions: 1000, maxRatio: 1)
    ) throws -> LDAPSettings {
        let root = try self.root
        let org = organisation ?? "OU=Organisation,\(root)"
        return LDAPSettings(
            common: ServiceSettings(enabled: true, threshold: threshold),
            serverURL: try env("URL"), base: self == .activeDirectory && organisation == nil ? root : org,
            bindUser: try env("BIND_DN"), bindPassword: try env("BIND_PW"),
            sharedAccountFilter: "OU=Shared,\(org)", roleFilter: "OU=Roles,\(org)",
            serviceAccountFilter: "CN=SudoSOS Service Accounts,OU=Groups,\(org)", guidAttribute: guid,
            nestedGroups: isSlapd ? .memberAttribute : .matchingRuleInChain,
            directoryType: isSlapd ? .openLDAP : .activeDirectory,
            caFile: self == .activeDirectory ? try env("CA") : nil,
            networkTimeout: .seconds(5), operationTimeout: .seconds(10), pageSize: pageSize)
    }

    /// Runs ldapmodify/ldapadd (ldap-utils) as the directory's administrator.
    func modify(_ ldif: String, add: Bool = false) throws {
        let user = isSlapd ? try env("ADMIN_DN") : try env("BIND_DN")
        let password = isSlapd ? try env("ADMIN_PW") : try env("BIND_PW")
        var environment = ProcessInfo.processInfo.environment
        if self == .activeDirectory { environment["LDAPTLS_CACERT"] = try env("CA") }
        // From a file: a large LDIF through stdin would fill the pipe while ldapmodify's own
        // output is not read yet.
        let file = NSTemporaryDirectory() + "ldif-\(UUID().uuidString).ldif"
        try ldif.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        var arguments = ["-x", "-H", try env("URL"), "-D", user, "-w", password, "-f", file]
        if add { arguments.append("-a") }
        let result = try runProcess("/usr/bin/ldapmodify", arguments, environment: environment)
        guard result.status == 0 else { throw LDAPToolFailed(output: result.stderr + result.stdout) }
    }
}

struct LDAPToolFailed: Error, CustomStringConvertible {
    var output: String
    var description: String { "ldapmodify failed: \(output)" }
}

/// A reporter that counts what the run reports.
final class CountingReporter: RunReporter, @unchecked Sendable {
    private let lock = NSLock()
    private var _requests = 0
    private var _failures = 0
    var requests: Int { lock.withLock { _requests } }
    func heartbeat(phase: String) {}
    func sourceRequest(ok: Bool, seconds: Double) {
        lock.withLock {
            _requests += 1
            if !ok { _failures += 1 }
        }
    }
}

func testContext(_ reporter: any RunReporter = SilentReporter(), dryRun: Bool = false) -> RunContext {
    var logger = Logger(label: "ldap-test")
    logger.logLevel = .warning
    return RunContext(logger: logger, reporter: reporter, dryRun: dryRun)
}
