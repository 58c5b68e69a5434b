import Foundation
import Testing
import SudoSOSStore
import SyncEngine
import TestKit

/// No N+1: the number of statements does not grow with the population or the plan.
@Suite struct BulkTests {
    /// Round trips of applying `plan` (after a snapshot and the run row, which are not counted).
    private func roundTrips(applying plan: Plan, on f: StoreFixture) async throws -> Int {
        _ = try await f.store.snapshot(SnapshotRequest(userTypes: Set(UserType.allCases)))
        let runId = try await f.store.beginRun(service: "test", dryRun: false, startedAt: Date())
        let before = f.store.roundTrips
        try await f.store.apply(plan, runId: runId)
        return f.store.roundTrips - before
    }

    private func creates(_ n: Int) -> Plan {
        var plan = Plan(service: "test")
        for i in 1...n {
            plan.append(
                .createUser(NewUser(ref: i, type: .member, firstName: "Member \(i)", lastName: "O'Neil, \"jr\"", memberId: 10_000 + i)),
                reason: "new in the source")
        }
        return plan
    }

    @Test func twoThousandCreatesTakeAConstantNumberOfRoundTrips() async throws {
        let small = try StoreFixture()
        defer { small.drop() }
        let large = try StoreFixture()
        defer { large.drop() }
        let smallTrips = try await roundTrips(applying: creates(3), on: small)
        let largeTrips = try await roundTrips(applying: creates(2_000), on: large)
        // BEGIN, reserve ids, insert users + member_user + audit, COMMIT.
        #expect(largeTrips == 4)
        #expect(smallTrips == largeTrips)
        #expect(try large.rows(
            #"SELECT count(*), count(DISTINCT u.id), min(version), max(version) FROM "user" u JOIN member_user m ON m."userId" = u.id AND m."memberId" = 10000 + substr(u."firstName", 8)::int"#
        ) == [["2000", "2000", "1", "1"]])
        #expect(try large.value(#"SELECT count(*) FROM "user" WHERE "lastName" = 'O''Neil, "jr"'"#) == "2000")
        #expect(try large.value("SELECT count(*) FROM sudosos_sync.audit WHERE action = 'created'") == "2000")
    }

    /// Every change kind at once: the count depends on the kinds present, not on how many.
    @Test func everyChangeKindIsOneBulkStatement() async throws {
        func mixedPlan(_ f: StoreFixture, size: Int) throws -> Plan {
            try f.db.sql(
                """
                INSERT INTO role (name, version) VALUES ('r1', 1);
                INSERT INTO "user" (version, "firstName", type, active) SELECT 1, 'u' || g, 'MEMBER', true FROM generate_series(1, \(size * 2)) g;
                INSERT INTO "user" (version, "firstName", type, active) VALUES (1, 'organ', 'ORGAN', true);
                INSERT INTO ldap_authenticator ("userId", "UUID", version) SELECT id, md5(id::text), 1 FROM "user" WHERE id <= \(size);
                INSERT INTO assigned_role ("userId", "roleId", version) SELECT id, 1, 1 FROM "user" WHERE id <= \(size);
                INSERT INTO organ_membership ("userId", "organId", "index", version)
                  SELECT id, \(size * 2 + 1), id, 1 FROM "user" WHERE id <= \(size);
                """)
            let organ = size * 2 + 1
            var plan = Plan(service: "test")
            for id in 1...size {
                let uuid = try f.value("SELECT md5('\(id)')")
                plan.append(.unbind(userId: id, uuid: uuid), reason: "r")
                plan.append(.removeRole(userId: id, roleId: 1, roleName: "r1"), reason: "r")
                plan.append(.removeMembership(userId: id, organId: organ), reason: "r")
                plan.append(.updateUser(userId: id, fields: [FieldChange(field: .lastName, old: .text(""), new: .text("L"))]), reason: "r")
                plan.append(.deactivateUser(userId: size + id, fields: []), reason: "r")
                plan.append(.bind(user: .existing(size + id), uuid: String(format: "%032x", id)), reason: "r")
                plan.append(.addRole(user: .existing(size + id), roleId: 1, roleName: "r1"), reason: "r")
                plan.append(.addMembership(user: .existing(size + id), organ: .existing(organ), index: id), reason: "r")
                plan.append(.createUser(NewUser(ref: id, type: .member, firstName: "n\(id)")), reason: "r")
                plan.append(.notice(userId: id, kind: "k", message: "m"), reason: "r")
                // A deletion (its balance checked at apply time: lock + balance) and a verdict.
                plan.append(.deleteUser(userId: id, fields: []), reason: "r")
                plan.verdicts.append(Verdict(user: .existing(id), vouches: false))
            }
            return plan
        }
        let small = try StoreFixture()
        defer { small.drop() }
        let large = try StoreFixture()
        defer { large.drop() }
        let smallTrips = try await roundTrips(applying: try mixedPlan(small, size: 2), on: small)
        let largeTrips = try await roundTrips(applying: try mixedPlan(large, size: 300), on: large)
        // BEGIN + 3 (lock, balance tables present?, balances of the deleted) + 2 (creates) + 1 (user
        // updates) + 6 relation kinds + 1 (verdicts) + 1 (notices) + COMMIT.
        #expect(largeTrips == 16)
        #expect(smallTrips == largeTrips)
        #expect(try large.value("SELECT count(*) FROM sudosos_sync.audit") == "3300")
        #expect(try large.value(#"SELECT count(*) FROM "user" WHERE active = false AND version = 2"#) == "600")
        #expect(try large.value(#"SELECT count(*) FROM "user" WHERE deleted"#) == "300", "zero balance at apply time: deleted")
        #expect(try large.value("SELECT count(*) FROM sudosos_sync.verdict") == "300")
    }

    @Test func theSnapshotTakesAConstantNumberOfQueries() async throws {
        func trips(_ f: StoreFixture, members: Int) async throws -> (Int, Snapshot) {
            try f.db.sql(
                """
                DROP TABLE IF EXISTS balance CASCADE;
                INSERT INTO "user" (version, "firstName", type, active) SELECT 1, 'u' || g, 'MEMBER', true FROM generate_series(1, \(members)) g;
                INSERT INTO "user" (version, "firstName", type) VALUES (3, 'pos', 'POINT_OF_SALE');
                INSERT INTO member_user ("userId", "memberId") SELECT id, id + 100 FROM "user" WHERE type = 'MEMBER';
                INSERT INTO ldap_authenticator ("userId", "UUID", version) SELECT id, upper(md5(id::text)), 1 FROM "user";
                INSERT INTO role (name, version) VALUES ('r1', 1);
                INSERT INTO assigned_role ("userId", "roleId", version) SELECT id, 1, 1 FROM "user" WHERE type = 'MEMBER';
                INSERT INTO server_setting (key, value, version) VALUES ('allowGewisSyncDelete', 'true', 1);
                """)
            let before = f.store.roundTrips
            let snapshot = try await f.store.snapshot(SnapshotRequest(userTypes: [.member], includeBalances: true))
            return (f.store.roundTrips - before, snapshot)
        }
        let small = try StoreFixture()
        defer { small.drop() }
        let large = try StoreFixture()
        defer { large.drop() }
        let (smallTrips, _) = try await trips(small, members: 3)
        let (largeTrips, snapshot) = try await trips(large, members: 3_000)
        #expect(smallTrips == largeTrips)
        #expect(largeTrips <= 12)
        #expect(snapshot.users.count == 3_000)
        #expect(snapshot.users.values.allSatisfy { $0.type == .member && $0.version == 1 })
        #expect(snapshot.memberNumbers.count == 3_000)
        #expect(snapshot.ldapBindings.count == 3_001)
        #expect(snapshot.ldapBindings.values.allSatisfy { $0 == $0.lowercased() })
        #expect(snapshot.roleAssignments.count == 3_000)
        #expect(snapshot.roles == [Role(id: 1, name: "r1")])
        #expect(snapshot.booleanSetting("allowGewisSyncDelete") == true)
        // Without SudoSOS's balance cache table: unknown, never a guessed zero.
        #expect(snapshot.balances.count == 3_000)
        #expect(snapshot.balances.values.allSatisfy { $0 == .unknown })
    }
}
