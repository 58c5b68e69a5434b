import Foundation
import SyncEngine
import TestKit
import Testing

@testable import LDAPSource

/// A directory that refuses us, is gone, or stops answering fails the run within its timeouts
/// with exit 69 and a clear message (no password), and nothing is written.
@Suite struct LDAPFailureTests {
    /// Runs `settings` against a fresh database; checks the run failed as unavailable, wrote
    /// nothing to SudoSOS and recorded the failure, and that connecting and binding alone (timed
    /// on a thread of its own, so the figure is libldap's, not the test process's scheduling
    /// while many suites run at once) failed within `connectWithin`. The whole run must end
    /// within a minute however loaded the machine: a hung server never hangs a run.
    func expectUnavailable(
        _ settings: LDAPSettings, connectWithin limit: Duration, mentioning words: [String],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let (connectError, took) = await timedConnect(settings)
        #expect(connectError?.kind == .unavailable, "\(connectError?.message ?? "connected")", sourceLocation: sourceLocation)
        #expect(took < limit, "connecting took \(took)", sourceLocation: sourceLocation)

        let f = try LDAPRunFixture()
        defer { f.drop() }
        let before = try f.state()
        let result = await f.run(settings)
        let runTook = result.summary.finishedAt.timeIntervalSince(result.summary.startedAt)
        #expect(result.exitCode == .unavailable, "\(result.summary.error ?? "no error")", sourceLocation: sourceLocation)
        #expect(runTook < 60, "the run took \(runTook) s", sourceLocation: sourceLocation)
        let message = result.summary.error ?? ""
        for word in words {
            #expect(message.localizedCaseInsensitiveContains(word), "\(message)", sourceLocation: sourceLocation)
        }
        if let password = settings.bindPassword {
            #expect(!message.contains(password), sourceLocation: sourceLocation)
        }
        #expect(try f.state() == before, sourceLocation: sourceLocation)
        #expect(try f.db.sql("SELECT outcome FROM sudosos_sync.run") == "failure", sourceLocation: sourceLocation)
    }

    /// Connects and binds with libldap on a thread of its own; the error and the time it took.
    func timedConnect(_ settings: LDAPSettings) async -> (SyncError?, Duration) {
        let options = LDAPConnectionOptions(
            url: settings.serverURL, startTLS: settings.startTLS, caFile: settings.caFile, bindDN: settings.bindUser,
            bindPassword: settings.bindPassword, networkTimeout: settings.networkTimeout,
            operationTimeout: settings.operationTimeout)
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let clock = ContinuousClock()
                let start = clock.now
                var failure: SyncError?
                do throws(SyncError) {
                    let connection = try LDAPConnection(options: options)
                    try connection.connect()
                } catch {
                    failure = error
                }
                continuation.resume(returning: (failure, clock.now - start))
            }
        }
    }

    @Test(arguments: [TestDirectory.slapd, .activeDirectory])
    func aWrongBindPasswordFailsTheRun(_ directory: TestDirectory) async throws {
        var settings = try directory.settings()
        settings.bindPassword = "Wrong-password-42"
        try await expectUnavailable(settings, connectWithin: .seconds(5), mentioning: ["bind", "Invalid credentials"])
    }

    @Test func aStoppedSlapdFailsTheRun() async throws {
        let slapd = try OwnSlapd()
        let settings = try slapd.settings()
        slapd.stop()
        try await expectUnavailable(settings, connectWithin: .seconds(3), mentioning: ["bind", "Can't contact LDAP server"])
    }

    @Test func aSlapdThatStopsAnsweringFailsTheRunWithinItsTimeouts() async throws {
        let slapd = try OwnSlapd()
        defer { slapd.stop() }
        // Frozen: the kernel still accepts the connection, nobody answers.
        slapd.signal(SIGSTOP)
        defer { slapd.signal(SIGCONT) }
        let settings = try slapd.settings(networkTimeout: .seconds(2), operationTimeout: .seconds(3))
        // Bind waits at most operation_timeout (3 s) after the connect.
        try await expectUnavailable(settings, connectWithin: .seconds(6), mentioning: ["bind"])
    }

    @Test func certificateVerificationIsOnByDefault() async throws {
        var settings = try TestDirectory.activeDirectory.settings()
        // The system CAs do not know the test CA: the handshake must fail.
        settings.caFile = nil
        try await expectUnavailable(settings, connectWithin: .seconds(5), mentioning: ["bind"])
    }

    @Test func activeDirectoryRefusesASimpleBindWithoutTLS() async throws {
        var settings = try TestDirectory.activeDirectory.settings()
        settings.serverURL = "ldap://\(try TestDirectory.activeDirectory.env("HOST")):389"
        try await expectUnavailable(settings, connectWithin: .seconds(5), mentioning: ["bind"])
    }

    @Test func startTLSWithTheTestCAWorks() async throws {
        var settings = try TestDirectory.activeDirectory.settings()
        settings.serverURL = "ldap://\(try TestDirectory.activeDirectory.env("HOST")):389"
        settings.startTLS = true
        let service = LDAPSyncService(settings: settings)
        let (directory, _, _) = try await service.fetchDirectory(roleNames: [], context: testContext())
        #expect(directory.organGroups.count == 7)
    }
}

/// Paging and filter escaping against the real servers.
@Suite struct LDAPSearchTests {
    @Test func anAnonymousBindIsPossible() async throws {
        let client = try LDAPClient(options: LDAPConnectionOptions(url: try TestDirectory.slapd.env("URL")))
        try await client.connect()
        // slapd's ACL shows nothing to anonymous clients (it even hides the base: "No such
        // object"), and that is an error, never an empty directory.
        await #expect(throws: SyncError.self) {
            _ = try await client.search(
                base: try TestDirectory.slapd.root, filter: "(objectClass=person)", attributes: ["cn"], pageSize: 100)
        }
    }

    @Test func aBindDNWithoutAPasswordIsRefusedBeforeAnythingIsSent() throws {
        #expect(throws: SyncError.self) {
            _ = try LDAPClient(options: LDAPConnectionOptions(url: "ldap://127.0.0.1:1", bindDN: "cn=x", bindPassword: ""))
        }
    }

    @Test func pagingCrossesSlapdsThousandEntryLimit() async throws {
        let d = TestDirectory.slapd
        let client = try LDAPClient(options: LDAPConnectionOptions(
            url: try d.env("URL"), bindDN: try d.env("BIND_DN"), bindPassword: try d.env("BIND_PW")))
        try await client.connect()
        let people = try await client.search(
            base: "OU=Organisation,\(try d.root)", filter: "(objectClass=person)", attributes: ["cn"], pageSize: 1000)
        #expect(people.count > 1200)
        #expect(client.searches == 1)
        #expect(client.requests == 2)
        // Without the control the server stops at 1,000: the limit is real.
        let unpaged = try runProcess(
            "/usr/bin/ldapsearch",
            ["-x", "-H", try d.env("URL"), "-D", try d.env("BIND_DN"), "-w", try d.env("BIND_PW"),
             "-b", "OU=Organisation,\(try d.root)", "(objectClass=person)", "cn"])
        #expect(unpaged.status == 4, "ldapsearch: size limit exceeded")
    }

    @Test(arguments: [TestDirectory.slapd, .activeDirectory])
    func hostileValuesAreEscapedInFilters(_ d: TestDirectory) async throws {
        let client = try LDAPClient(options: LDAPConnectionOptions(
            url: try d.env("URL"), caFile: d == .activeDirectory ? try d.env("CA") : nil,
            bindDN: try d.env("BIND_DN"), bindPassword: try d.env("BIND_PW")))
        try await client.connect()
        let base = "OU=Organisation,\(try d.root)"
        let exact = try await client.search(
            base: base, filter: LDAPFilter.equals("cn", "Hostile (x) * \\ group"), attributes: ["cn"], pageSize: 100)
        #expect(exact.count == 1)
        #expect(exact.first.map { DistinguishedName.key($0.dn).hasPrefix("cn=hostile (x) * ") } == true)
        // An injection attempt matches nothing instead of everything.
        for hostile in ["*", "*)(cn=*", "x)(|(objectClass=*", "a\u{0}b", "Zoë\\*"] {
            let found = try await client.search(
                base: base, filter: LDAPFilter.equals("cn", hostile), attributes: ["cn"], pageSize: 100)
            #expect(found.isEmpty, "\(hostile.debugDescription) matched \(found.count)")
        }
    }
}
