import Foundation
import SyncEngine
import TestKit
import Testing

@testable import LDAPSource

/// The shared fixture (fixtures/ldap/organisation.yaml), synced end to end through the real
/// runner and store: against Samba AD (matching_rule_in_chain, LDAPS, objectGUID) and slapd
/// (member_attribute). Read-only for the directory, so these may run alongside anything.
@Suite struct LDAPFixtureRunTests {
    static let roles = #"INSERT INTO role ("version","name") VALUES (1,'BAC PM'),(1,'SudoSOS Admin'),(1,'Empty Role')"#

    /// Bram already has an account with his member number (bound, not duplicated); he holds
    /// the role of an empty group (cleared).
    static func seed(_ f: LDAPRunFixture) throws {
        try f.db.sql(Self.roles)
        try f.db.sql(
            #"INSERT INTO "user" ("version","firstName","lastName","type","active","acceptedToS") VALUES (1,'Bram','Jansen','MEMBER',true,'ACCEPTED')"#)
        try f.db.sql(#"INSERT INTO member_user ("userId","memberId") SELECT id, 10002 FROM "user" WHERE "firstName"='Bram'"#)
        try f.db.sql(
            #"INSERT INTO assigned_role ("version","userId","roleId") SELECT 1, u.id, r.id FROM "user" u, role r WHERE u."firstName"='Bram' AND r.name='Empty Role'"#)
    }

    @Test(arguments: [TestDirectory.slapd, .activeDirectory], Engine.allCases)
    func aFirstRunCreatesWhatTheDirectoryImpliesAndASecondRunNothing(_ directory: TestDirectory, _ engine: Engine) async throws {
        let f = try LDAPRunFixture(engine)
        defer { f.drop() }
        try Self.seed(f)
        let settings = try directory.settings()

        // A dry run plans everything and writes nothing.
        let before = try f.state()
        let dry = await f.run(settings, dryRun: true)
        #expect(dry.exitCode == .success, "\(dry.summary.error ?? "")")
        #expect(dry.plan?.count(.created) == 21)
        #expect(try f.state() == before)

        let counter = SearchCounter()
        let first = await f.run(settings, reporter: counter)
        #expect(first.exitCode == .success, "\(first.summary.error ?? "")")
        // No per-user search: 4 in member_attribute mode; in AD mode 4 plus one per organ (7),
        // role group that has a SudoSOS role (3 of 4) and the service group.
        #expect(counter.searches == (directory.isSlapd ? 4 : 4 + 7 + 3 + 1))
        let plan = try #require(first.plan)
        // Otto Slechtpost's bad address drops the address, not Otto (issue 11 item 6).
        #expect(plan.count(.created) == 21)
        #expect(plan.count(.bound) == 22)
        #expect(plan.count(.roleRemoved) == 1)
        // Counts per type; the rejected entries got no account.
        #expect(try f.db.sql(#"SELECT \#(f.agg("concat(type, '=', n)", orderBy: "type")) FROM (SELECT type, count(*) n FROM "user" GROUP BY type) t"#)
            == "INTEGRATION=2,MEMBER=14,ORGAN=6")
        #expect(try f.count("ldap_authenticator") == 22)
        #expect(try f.count("organ_membership") == 15)
        #expect(try f.count("assigned_role") == 8)
        let rejected = Dictionary(grouping: plan.rejected, by: \.reason).mapValues(\.count)
        if directory.isSlapd {
            #expect(rejected == [.unparsable: 1, .tooLong: 2, .missingAttribute: 2, .invalidEmail: 1, .duplicateKey: 2])
        } else {
            #expect(rejected == [.unparsable: 1, .tooLong: 1, .missingAttribute: 1, .invalidEmail: 1])
        }
        #expect(plan.warnings.count == 1 && plan.warnings[0].contains("No Such Role"))

        // A few exact rows.
        let board = try f.userId("Bestuur")
        #expect(try f.db.sql(#"SELECT type, active, "acceptedToS", "lastName", "canGoIntoDebt" FROM "user" WHERE id = \#(board)"#)
            == "ORGAN|\(f.b(true))|NOT_REQUIRED||\(f.b(false))")
        let otto = try f.userId("Otto")
        #expect(try f.db.sql(#"SELECT type, "lastName", email FROM "user" WHERE id = \#(otto)"#) == "MEMBER|Slechtpost|",
            "a bad address is dropped, the person is not")
        let anna = try f.userId("Anna")
        #expect(try f.db.sql(#"SELECT type, "lastName", email, "canGoIntoDebt", "acceptedToS" FROM "user" WHERE id = \#(anna)"#)
            == "MEMBER|de Vries|anna@example.org|\(f.b(true))|NOT_ACCEPTED")
        #expect(try f.db.sql(#"SELECT "memberId" FROM member_user WHERE "userId" = \#(anna)"#) == "10001")
        let bram = try f.userId("Bram")
        #expect(try f.count("ldap_authenticator", #""userId" = \#(bram)"#) == 1, "Bram's existing account is bound")
        #expect(try f.count("member_user", #""memberId" = 10002"#) == 1, "and not duplicated")
        let zoe = try f.userId("Zoë")
        #expect(try f.db.sql(#"SELECT "lastName" FROM "user" WHERE id = \#(zoe)"#) == "Dąbrowska")
        let bac = try f.userId("BAC – Borrel Activiteiten Commissie")
        #expect(try f.db.sql(#"SELECT \#(f.agg(#""index""#, orderBy: #""index""#)) FROM organ_membership WHERE "organId" = \#(bac)"#)
            == "0,1,2,3,4")
        // The group whose DN holds ( ) * \ resolved its members (AD: through an escaped in-chain filter).
        let hostile = try f.userId("Hostile group")
        #expect(try f.count("organ_membership", #""organId" = \#(hostile)"#) == 2)
        #expect(try f.count("organ_membership", #""organId" = \#(try f.userId("Cyclists"))"#) == 2, "a cycle of groups ends")
        #expect(try f.db.sql(
            #"SELECT \#(f.agg(#"u."firstName""#, orderBy: #"u."firstName""#)) FROM assigned_role a JOIN role r ON r.id = a."roleId" JOIN "user" u ON u.id = a."userId" WHERE r.name = 'SudoSOS Admin'"#)
            == "Anna,Bram,Daan,Zoë")
        // The stored UUID is the objectGUID's 16 bytes in wire order, as the server sends them.
        let stored = try f.db.sql(#"SELECT "UUID" FROM ldap_authenticator WHERE "userId" = \#(board)"#)
        #expect(stored == (try Self.objectGUIDHex(directory, dn: "CN=Board,OU=Shared,OU=Organisation,\(try directory.root)")))

        // Nothing changed in the directory: nothing to do, nothing written.
        let settled = try f.state()
        let second = await f.run(settings)
        #expect(second.exitCode == .success, "\(second.summary.error ?? "")")
        #expect(second.plan?.changes.isEmpty == true, "\(second.plan?.changes.map(\.change) ?? [])")
        #expect(try f.state() == settled)
    }

    @Test func slapdWithEntryUUIDSyncsAndSettles() async throws {
        let f = try LDAPRunFixture()
        defer { f.drop() }
        try f.db.sql(Self.roles)
        let settings = try TestDirectory.slapd.settings(guid: .entryUUID)
        let first = await f.run(settings)
        #expect(first.exitCode == .success, "\(first.summary.error ?? "")")
        // entryUUID is on every entry, so the duplicate-objectGUID people are accounts here.
        #expect(try f.count(#""user""#) == 25)
        #expect(try f.count("ldap_authenticator", #""UUID" !~ '^[0-9a-f]{32}$'"#) == 0)
        let second = await f.run(settings)
        #expect(second.exitCode == .success)
        #expect(second.plan?.changes.isEmpty == true)
    }

    /// objectGUID of `dn` read with ldapsearch (base64 in LDIF), as lowercase hex.
    static func objectGUIDHex(_ directory: TestDirectory, dn: String) throws -> String {
        var environment = ProcessInfo.processInfo.environment
        if directory == .activeDirectory { environment["LDAPTLS_CACERT"] = try directory.env("CA") }
        let result = try runProcess(
            "/usr/bin/ldapsearch",
            ["-x", "-LLL", "-o", "ldif-wrap=no", "-H", try directory.env("URL"), "-D", try directory.env("BIND_DN"),
             "-w", try directory.env("BIND_PW"), "-b", dn, "-s", "base", "(objectClass=*)", "objectGUID"],
            environment: environment)
        guard let line = result.stdout.split(separator: "\n").first(where: { $0.hasPrefix("objectGUID:: ") }),
            let data = Data(base64Encoded: String(line.dropFirst("objectGUID:: ".count)))
        else { throw LDAPToolFailed(output: result.stderr) }
        return data.map { String(format: "%02x", $0) }.joined()
    }
}

extension Plan {
    func count(_ action: ChangeAction) -> Int { countsByAction[action] ?? 0 }
}
