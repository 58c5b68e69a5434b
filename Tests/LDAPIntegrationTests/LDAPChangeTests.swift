import Foundation
import SyncEngine
import TestKit
import Testing

@testable import LDAPSource

/// Changes in the directory give exactly the expected plan. Each test works in a scratch
/// organisation of its own (removed afterwards), on both servers.
@Suite struct LDAPChangeTests {
    static func organisation(_ directory: TestDirectory) throws -> ScratchOrganisation {
        try ScratchOrganisation.create(
            directory,
            people: [
                .init(key: "p1", given: "Piet", sn: "Één", employee: "5001"), .init(key: "p2", given: "Petra", sn: "Twee"),
                .init(key: "p3", given: "Pim", sn: "Drie"), .init(key: "p4", given: "Pleun", sn: "Vier"),
            ],
            groups: [
                .init(key: "X", ou: "Groups", members: ["p3"]),
                .init(key: "A", ou: "Shared", display: "Organ A", members: ["p1", "p2"]),
                .init(key: "B", ou: "Shared", display: "Organ B", members: ["X"]),
                .init(key: "R", ou: "Roles", members: ["p1"]),
                .init(key: "SudoSOS Service Accounts", ou: "Groups", members: []),
            ])
    }

    @Test(arguments: [TestDirectory.slapd, .activeDirectory], Engine.allCases)
    func movingRenamingAndRemovingEachGiveExactlyTheExpectedPlan(_ directory: TestDirectory, _ engine: Engine) async throws {
        let scratch = try Self.organisation(directory)
        defer { scratch.destroy() }
        let f = try LDAPRunFixture(engine)
        defer { f.drop() }
        try f.db.sql(#"INSERT INTO role ("version","name") VALUES (1,'R')"#)
        let settings = try directory.settings(organisation: scratch.org)

        let first = await f.run(settings)
        #expect(first.exitCode == .success, "\(first.summary.error ?? "")")
        #expect(try f.count(#""user""#) == 5, "two organs and the three people met; p4 is in no group")
        let (a, b) = (try f.userId("Organ A"), try f.userId("Organ B"))
        let (p1, p2, p3) = (try f.userId("Piet"), try f.userId("Petra"), try f.userId("Pim"))
        #expect(try f.db.sql(#"SELECT "memberId" FROM member_user WHERE "userId" = \#(p1)"#) == "5001")
        #expect(try f.db.sql(#"SELECT \#(f.agg(#"concat("userId", '@', "index")"#, orderBy: #""index""#)) FROM organ_membership WHERE "organId" = \#(a)"#)
            == "\(p1)@0,\(p2)@1")
        let second = await f.run(settings)
        #expect(second.plan?.changes.isEmpty == true, "\(second.plan?.changes.map(\.change) ?? [])")

        // Move Piet from A to B: one removal, one addition at B's lowest free index.
        try scratch.removeMember("p1", from: "A")
        try scratch.addMember("p1", to: "B")
        let moved = await f.run(settings)
        #expect(moved.exitCode == .success, "\(moved.summary.error ?? "")")
        #expect(moved.plan?.changes.map(\.change) == [
            .removeMembership(userId: p1, organId: a),
            .addMembership(user: .existing(p1), organ: .existing(b), index: 1),
        ])
        #expect(try f.db.sql(#"SELECT "index" FROM organ_membership WHERE "organId" = \#(a) AND "userId" = \#(p2)"#) == "1",
            "a staying member keeps its index")

        // Rename A: its account's name, nothing else.
        try scratch.setDisplayName("A", "Organ Ä (renamed)")
        let renamed = await f.run(settings)
        #expect(renamed.plan?.changes.map(\.change) == [
            .updateUser(userId: a, fields: [FieldChange(field: .firstName, old: .text("Organ A"), new: .text("Organ Ä (renamed)"))])
        ])
        #expect(try f.db.sql(#"SELECT concat("firstName", '|', version) FROM "user" WHERE id = \#(a)"#) == "Organ Ä (renamed)|2")

        // Remove group B: its organ is deactivated and keeps its binding; nothing deleted.
        try scratch.delete("B")
        let removed = await f.run(settings)
        #expect(removed.exitCode == .success, "\(removed.summary.error ?? "")")
        #expect(removed.plan?.changes.map(\.change) == [
            .deactivateUser(userId: b, fields: [FieldChange(field: .active, old: .flag(true), new: .flag(false))])
        ])
        #expect(try f.db.sql(#"SELECT active, deleted FROM "user" WHERE id = \#(b)"#) == "\(f.b(false))|\(f.b(false))")
        #expect(try f.count("ldap_authenticator", #""userId" = \#(b)"#) == 1)
        _ = p3
    }

    /// Issue 11 item 5: who is a person. In Active Directory mode a contact and a computer in an
    /// organ get no account and are not even rejected (SudoSOS's own filter,
    /// `(&(objectClass=user)(objectCategory=person))`); in OpenLDAP mode person objects count as
    /// today (the contact, an inetOrgPerson there, is a person; the computer, a device, is not).
    @Test(arguments: [TestDirectory.slapd, .activeDirectory])
    func contactsAndComputersInAnOrganAreNotPeople(_ directory: TestDirectory) async throws {
        let scratch = try ScratchOrganisation.create(
            directory,
            people: [.init(key: "p1", given: "Piet", sn: "Mens")],
            others: ["c1": .contact(given: "Karel", sn: "Contact"), "pc1": .computer],
            groups: [
                .init(key: "A", ou: "Shared", display: "Organ A", members: ["p1", "c1", "pc1"]),
                .init(key: "SudoSOS Service Accounts", ou: "Groups", members: []),
            ])
        defer { scratch.destroy() }
        let f = try LDAPRunFixture()
        defer { f.drop() }
        let settings = try directory.settings(organisation: scratch.org)
        let run = await f.run(settings)
        #expect(run.exitCode == .success, "\(run.summary.error ?? "")")
        #expect(run.plan?.rejected == [], "\(run.plan?.rejected ?? [])")
        let names = try f.db.sql(#"SELECT string_agg("firstName", ',' ORDER BY "firstName") FROM "user""#)
        let organ = try f.userId("Organ A")
        let members = try f.db.sql(#"SELECT count(*) FROM organ_membership WHERE "organId" = \#(organ)"#)
        if directory.isSlapd {
            #expect(names == "Karel,Organ A,Piet")
            #expect(members == "2")
        } else {
            #expect(names == "Organ A,Piet", "no account for the contact or the computer")
            #expect(members == "1")
        }
    }

    @Test(arguments: [TestDirectory.slapd, .activeDirectory], Engine.allCases)
    func aRemovalOverTheThresholdIsRefusedAndWritesNothing(_ directory: TestDirectory, _ engine: Engine) async throws {
        let scratch = try Self.organisation(directory)
        defer { scratch.destroy() }
        let f = try LDAPRunFixture(engine)
        defer { f.drop() }
        var settings = try directory.settings(organisation: scratch.org)
        #expect(await f.run(settings).exitCode == .success)

        // Petra leaves the directory: unbind + membership removal = 2 removals > max_deletions 1.
        try scratch.delete("p2")
        settings.common.threshold = DeletionThreshold(maxDeletions: 1, maxRatio: 1)
        let before = try f.state()
        let refused = await f.run(settings)
        #expect(refused.exitCode == .refused)
        #expect(refused.summary.outcome == .refused)
        #expect(refused.plan?.removals.count == 2)
        #expect(try f.state() == before)
    }

    /// A directory that suddenly answers with nothing (here: every base pointed at an empty
    /// subtree) would unbind and deactivate everyone: the default threshold refuses it.
    @Test(arguments: [TestDirectory.slapd, .activeDirectory], Engine.allCases)
    func anEmptyAnswerNeverRemovesEveryone(_ directory: TestDirectory, _ engine: Engine) async throws {
        let scratch = try Self.organisation(directory)
        defer { scratch.destroy() }
        let f = try LDAPRunFixture(engine)
        defer { f.drop() }
        var settings = try directory.settings(organisation: scratch.org)
        #expect(await f.run(settings).exitCode == .success)
        let empty = "OU=Roles,\(scratch.org)"
        try scratch.delete("R")
        settings.base = empty
        settings.sharedAccountFilter = empty
        settings.serviceAccountFilter = nil
        settings.common.threshold = DeletionThreshold()
        let before = try f.state()
        let result = await f.run(settings)
        #expect(result.exitCode == .refused, "\(result.summary.error ?? "")")
        #expect((result.plan?.removals.count ?? 0) >= 5)
        #expect(try f.state() == before)
    }

    /// A search that fails (a base DN that does not exist) fails the run; nothing is written.
    @Test func aFailingSearchFailsTheRun() async throws {
        let directory = TestDirectory.slapd
        let scratch = try Self.organisation(directory)
        defer { scratch.destroy() }
        let f = try LDAPRunFixture()
        defer { f.drop() }
        var settings = try directory.settings(organisation: scratch.org)
        settings.sharedAccountFilter = "OU=Nowhere,\(scratch.org)"
        let result = await f.run(settings)
        #expect(result.exitCode == .failure)
        #expect(result.summary.error?.contains("OU=Nowhere") == true, "\(result.summary.error ?? "")")
        #expect(try f.count(#""user""#) == 0)
    }

    /// The real binary on each engine: `sudosos-sync once ldap` creates on the first run, has
    /// nothing to do on the second, writes nothing on a dry run, exits 75 while another process
    /// holds the service's lock and 65 (writing nothing) on a removal over the threshold.
    @Test(arguments: Engine.allCases)
    func theBinaryRunsOnEachEngine(_ engine: Engine) async throws {
        let directory = TestDirectory.slapd
        let scratch = try Self.organisation(directory)
        defer { scratch.destroy() }
        let f = try LDAPRunFixture(engine)
        defer { f.drop() }
        let config = NSTemporaryDirectory() + "ldap-cli-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: config) }
        func write(maxDeletions: Int) throws {
            let yaml = """
                database:
                  url: \(f.db.url)
                services:
                  ldap:
                    enabled: true
                    interval: 15m
                    max_deletions: \(maxDeletions)
                    max_deletion_ratio: 1.0
                \(try scratch.ldapYAML(indent: 4))
                """
            try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        }
        let environment = ["PATH": "/usr/bin:/bin", "LDAP_BIND_PW": try directory.env("BIND_PW")]
        let binary = TestEnvironment.executable("sudosos-sync")
        func once(_ flags: [String] = []) throws -> ProcessOutput {
            try runProcess(binary, ["once", "ldap", "--config", config] + flags, environment: environment)
        }
        try write(maxDeletions: 50)
        let first = try once()
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        #expect(first.stdout.contains("5 created"), "\(first.stdout)")
        let second = try once()
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("No changes. SudoSOS is in step with the source."), "\(second.stdout)")

        // A rename, planned on a dry run and not written.
        try scratch.setDisplayName("A", "Organ A (renamed)")
        let settled = try f.state()
        let dry = try once(["--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("dry run: nothing is written"), "\(dry.stdout)")
        #expect(try f.state() == settled)
        #expect(try f.value(#"SELECT count(*) FROM "user" WHERE "firstName" = 'Organ A (renamed)'"#) == "0")

        // Another process holds the lock: 75 at once, nothing written.
        let holder = try ServiceLockHolder(f.db, service: "ldap")
        try await waitUntil("the client holds the lock") { try holder.isHeld() }
        let locked = try once()
        holder.release()
        #expect(locked.status == 75, "\(locked.stdout)\(locked.stderr)")
        #expect(locked.stdout.contains("Outcome: locked (exit 75)"), "\(locked.stdout)")
        #expect(try f.state() == settled)
        #expect(try f.value("SELECT count(*) FROM \(f.runs) WHERE outcome = 'locked'") == "1")

        // Over the threshold: refused, 65, nothing written (the rename neither).
        try scratch.delete("p2")
        try write(maxDeletions: 1)
        let refused = try once()
        #expect(refused.status == 65, "\(refused.stderr)")
        #expect(try f.state() == settled)
        #expect(try f.value(#"SELECT count(*) FROM "user" WHERE "firstName" = 'Organ A (renamed)'"#) == "0")
        let password = try directory.env("BIND_PW")
        #expect(!refused.stderr.contains(password) && !refused.stdout.contains(password))
    }
}
