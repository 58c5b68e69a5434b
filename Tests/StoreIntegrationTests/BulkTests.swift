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
        let before = f.roundTrips
        try await f.store.apply(plan, runId: runId)
        return f.roundTrips - before
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

    @Test(arguments: Engine.allCases) func twoThousandCreatesTakeAConstantNumberOfRoundTrips(_ engine: Engine) async throws {
        let small = try StoreFixture(engine)
        defer { small.drop() }
        let large = try StoreFixture(engine)
        defer { large.drop() }
        let smallTrips = try await roundTrips(applying: creates(3), on: small)
        let largeTrips = try await roundTrips(applying: creates(2_000), on: large)
        // PostgreSQL: BEGIN, reserve ids, insert users + member_user + audit, COMMIT.
        // MariaDB: the audit's column list (once per store), START, insert users RETURNING ids,
        // member_user, audit, COMMIT.
        #expect(largeTrips == (engine == .postgres ? 4 : 6))
        #expect(smallTrips == largeTrips)
        #expect(try large.rows(
            #"SELECT count(*), count(DISTINCT u.id), min(version), max(version) FROM "user" u JOIN member_user m ON m."userId" = u.id AND m."memberId" = 10000 + \#(large.int(#"substr(u."firstName", 8)"#))"#
        ) == [["2000", "2000", "1", "1"]])
        #expect(try large.value(#"SELECT count(*) FROM "user" WHERE "lastName" = 'O''Neil, "jr"'"#) == "2000")
        #expect(try large.value("SELECT count(*) FROM \(large.audit) WHERE action = 'created'") == "2000")
    }

    /// Every change kind at once: the count depends on the kinds present, not on how many.
    @Test(arguments: Engine.allCases) func everyChangeKindIsOneBulkStatement(_ engine: Engine) async throws {
        func mixedPlan(_ f: StoreFixture, size: Int) throws -> Plan {
            try f.db.sql(
                """
                INSERT INTO role (name, version) VALUES ('r1', 1);
                INSERT INTO "user" (version, "firstName", type, active) SELECT 1, concat('u', g), 'MEMBER', true FROM \(f.series(size * 2));
                INSERT INTO "user" (version, "firstName", type, active) VALUES (1, 'organ', 'ORGAN', true);
                INSERT INTO ldap_authenticator ("userId", "UUID", version) SELECT id, md5(\(f.text("id"))), 1 FROM "user" WHERE id <= \(size);
                INSERT INTO assigned_role ("userId", "roleId", version) SELECT id, 1, 1 FROM "user" WHERE id <= \(size);
                """)
            // The organ's id comes from the server: MariaDB's auto-increment may leave a gap after
            // a multi-row insert (innodb_autoinc_lock_mode), so it need not be size * 2 + 1.
            let organ = Int(try f.value(#"SELECT id FROM "user" WHERE "firstName" = 'organ'"#))!
            try f.db.sql(
                #"INSERT INTO organ_membership ("userId", "organId", "index", version) SELECT id, \#(organ), id, 1 FROM "user" WHERE id <= \#(size)"#)
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
        let small = try StoreFixture(engine)
        defer { small.drop() }
        let large = try StoreFixture(engine)
        defer { large.drop() }
        let smallTrips = try await roundTrips(applying: try mixedPlan(small, size: 2), on: small)
        let largeTrips = try await roundTrips(applying: try mixedPlan(large, size: 300), on: large)
        // Both: 4 for the deletions' balance at apply time (lock users, balance tables present?,
        // lock balances, compute) and 1 for the verdicts.
        // PostgreSQL: BEGIN + 4 + 2 (creates) + 1 (user updates) + 6 relation kinds + 1 (verdicts)
        // + 1 (notices) + COMMIT.
        // MariaDB (no data-modifying WITH): the audit's column list, START + 4 + 2 (creates: insert,
        // audit) + 3 (user updates: lock and read, update, audit) + 6 relation kinds × 2 (write,
        // audit) + 1 (verdicts) + 1 (notices) + COMMIT.
        #expect(largeTrips == (engine == .postgres ? 17 : 26))
        #expect(smallTrips == largeTrips)
        #expect(try large.value("SELECT count(*) FROM \(large.audit)") == "3300")
        #expect(try large.value(#"SELECT count(*) FROM "user" WHERE active = false AND version = 2"#) == "600")
        #expect(try large.value(#"SELECT count(*) FROM "user" WHERE deleted"#) == "300", "zero balance at apply time: deleted")
        #expect(try large.value("SELECT count(*) FROM \(large.verdicts)") == "300")
    }

    @Test(arguments: Engine.allCases) func theSnapshotTakesAConstantNumberOfQueries(_ engine: Engine) async throws {
        func trips(_ f: StoreFixture, members: Int) async throws -> (Int, Snapshot) {
            try f.dropTable("balance")
            try f.db.sql(
                """
                INSERT INTO "user" (version, "firstName", type, active) SELECT 1, concat('u', g), 'MEMBER', true FROM \(f.series(members));
                INSERT INTO "user" (version, "firstName", type) VALUES (3, 'pos', 'POINT_OF_SALE');
                INSERT INTO member_user ("userId", "memberId") SELECT id, id + 100 FROM "user" WHERE type = 'MEMBER';
                INSERT INTO ldap_authenticator ("userId", "UUID", version) SELECT id, upper(md5(\(f.text("id")))), 1 FROM "user";
                INSERT INTO role (name, version) VALUES ('r1', 1);
                INSERT INTO assigned_role ("userId", "roleId", version) SELECT id, 1, 1 FROM "user" WHERE type = 'MEMBER';
                INSERT INTO server_setting ("key", "value", version) VALUES ('allowGewisSyncDelete', 'true', 1);
                """)
            let before = f.roundTrips
            let snapshot = try await f.store.snapshot(SnapshotRequest(userTypes: [.member], includeBalances: true))
            return (f.roundTrips - before, snapshot)
        }
        let small = try StoreFixture(engine)
        defer { small.drop() }
        let large = try StoreFixture(engine)
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
