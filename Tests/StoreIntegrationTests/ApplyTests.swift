import Foundation
import Testing
@testable import SudoSOSStore
import SyncEngine
import TestKit

/// Every change kind applied to a real PostgreSQL: exact rows, TypeORM versions, audit rows.
@Suite struct ApplyTests {
    /// Snapshot, begin a run, apply `plan`; returns the run id.
    private func apply(_ plan: Plan, on f: StoreFixture) async throws -> Int64 {
        _ = try await f.store.snapshot(SnapshotRequest(userTypes: Set(UserType.allCases)))
        let runId = try await f.store.beginRun(service: "test", dryRun: false, startedAt: Date())
        try await f.store.apply(plan, runId: runId)
        return runId
    }

    @Test func createsUsersWithMemberNumbersAtVersionOne() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        var plan = Plan(service: "test")
        plan.append(
            .createUser(NewUser(ref: 1, type: .member, firstName: "Jan", lastName: "de Jong", email: "jan@example.org",
                                ofAge: true, acceptedToS: .notAccepted, canGoIntoDebt: true, memberId: 4711)),
            reason: "in GEWISDB")
        plan.append(.createUser(NewUser(ref: 2, type: .organ, firstName: "BAC")), reason: "new LDAP group")
        let runId = try await apply(plan, on: f)

        let users = try f.rows(
            #"SELECT "firstName", "lastName", email, active, "ofAge", type, "acceptedToS", "canGoIntoDebt", version, deleted FROM "user" ORDER BY "firstName""#)
        #expect(users == [
            ["BAC", "", "", "t", "f", "ORGAN", "NOT_REQUIRED", "f", "1", "f"],
            ["Jan", "de Jong", "jan@example.org", "t", "t", "MEMBER", "NOT_ACCEPTED", "t", "1", "f"],
        ])
        #expect(try f.rows(#"SELECT u."firstName", m."memberId" FROM member_user m JOIN "user" u ON u.id = m."userId""#)
            == [["Jan", "4711"]])
        let audit = try f.rows(
            """
            SELECT a.table_name, a.action, a.row_key->>'id' = u.id::text, a.old IS NULL, a.new->>'firstName',
                   a.new->>'memberId', a.new->>'version', a.reason, a.run_id
            FROM sudosos_sync.audit a JOIN "user" u ON u.id = (a.row_key->>'id')::int ORDER BY a.id
            """)
        #expect(audit == [
            ["user", "created", "t", "t", "Jan", "4711", "1", "in GEWISDB", "\(runId)"],
            ["user", "created", "t", "t", "BAC", "", "1", "new LDAP group", "\(runId)"],
        ])
    }

    @Test func updatesOnlyTheChangedColumnsAndBumpsTheVersion() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let jan = try f.insertUser("Jan", lastName: "Jansen", email: "old@example.org", version: 3)
        let other = try f.insertUser("Piet", lastName: "Puk", version: 1)
        try f.db.sql(#"UPDATE "user" SET "updatedAt" = '2020-01-01' WHERE id IN (\#(jan), \#(other))"#)
        var plan = Plan(service: "test")
        plan.append(
            .updateUser(userId: jan, fields: [
                FieldChange(field: .lastName, old: .text("Jansen"), new: .text("de Jong")),
                FieldChange(field: .email, old: .text("old@example.org"), new: .text("new@example.org")),
                FieldChange(field: .ofAge, old: .flag(false), new: .flag(true)),
            ]), reason: "GEWISDB says so")
        let runId = try await apply(plan, on: f)

        #expect(try f.rows(#"SELECT "firstName", "lastName", email, "ofAge", version, "updatedAt" > '2021-01-01' FROM "user" WHERE id = \#(jan)"#)
            == [["Jan", "de Jong", "new@example.org", "t", "4", "t"]])
        // The untouched user keeps its version and updatedAt.
        #expect(try f.rows(#"SELECT version, "updatedAt" = '2020-01-01' FROM "user" WHERE id = \#(other)"#) == [["1", "t"]])
        #expect(try f.rows(
            """
            SELECT table_name, action, row_key::text, old->>'lastName', new->>'lastName', old->>'email', new->>'email',
                   old->>'version', new->>'version', reason, run_id FROM sudosos_sync.audit
            """) == [[
                "user", "updated", #"{"id": \#(jan)}"#, "Jansen", "de Jong", "old@example.org", "new@example.org", "3", "4",
                "GEWISDB says so", "\(runId)",
            ]])
    }

    @Test func deactivatesAndDeletesAsTheChangeDocsSay() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let a = try f.insertUser("A")
        let b = try f.insertUser("B")
        try f.db.sql(#"UPDATE "user" SET "canGoIntoDebt" = true"#)
        var plan = Plan(service: "test")
        plan.append(.deactivateUser(userId: a, fields: []), reason: "membership expired, balance not zero")
        plan.append(
            .deleteUser(userId: b, fields: [FieldChange(field: .email, old: .text(""), new: .text(""))]),
            reason: "membership expired, balance zero")
        _ = try await apply(plan, on: f)
        #expect(try f.rows(#"SELECT "firstName", active, deleted, "canGoIntoDebt", version FROM "user" ORDER BY id"#) == [
            ["A", "f", "f", "t", "2"],
            ["B", "f", "t", "f", "2"],
        ])
        #expect(try f.rows("SELECT action, old->>'active', new->>'active', new->>'deleted' FROM sudosos_sync.audit ORDER BY id") == [
            ["deactivated", "true", "false", "false"],
            ["deleted", "true", "false", "true"],
        ])
    }

    @Test func bindsAndUnbindsAuthenticators() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let bound = try f.insertUser("Bound", type: .organ)
        let unbound = try f.insertUser("Unbound")
        try f.db.sql(#"INSERT INTO ldap_authenticator ("userId", "UUID", version) VALUES (\#(bound), 'aaaabbbbccccddddeeeeffff00001111', 2)"#)
        var plan = Plan(service: "test")
        plan.append(.unbind(userId: bound, uuid: "aaaabbbbccccddddeeeeffff00001111"), reason: "group gone")
        plan.append(.bind(user: .existing(unbound), uuid: "0123456789ABCDEF0123456789abcdef"), reason: "found in AD")
        plan.append(.createUser(NewUser(ref: 7, type: .integration, firstName: "svc")), reason: "service account")
        plan.append(.bind(user: .new(7), uuid: "ffffffffffffffffffffffffffffffff"), reason: "service account")
        _ = try await apply(plan, on: f)
        #expect(try f.rows(
            #"SELECT u."firstName", a."UUID", a.version FROM ldap_authenticator a JOIN "user" u ON u.id = a."userId" ORDER BY u."firstName""#
        ) == [
            ["Unbound", "0123456789abcdef0123456789abcdef", "1"],
            ["svc", "ffffffffffffffffffffffffffffffff", "1"],
        ])
        #expect(try f.rows(
            "SELECT table_name, action, old->>'UUID', new->>'UUID', reason FROM sudosos_sync.audit WHERE table_name = 'ldap_authenticator' ORDER BY id"
        ) == [
            ["ldap_authenticator", "unbound", "aaaabbbbccccddddeeeeffff00001111", "", "group gone"],
            ["ldap_authenticator", "bound", "", "0123456789abcdef0123456789abcdef", "found in AD"],
            ["ldap_authenticator", "bound", "", "ffffffffffffffffffffffffffffffff", "service account"],
        ])
    }

    @Test func addsAndRemovesRolesAndMemberships() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let organ = try f.insertUser("BAC", type: .organ)
        let stays = try f.insertUser("Stays")
        let leaves = try f.insertUser("Leaves")
        let roleId = try f.value("INSERT INTO role (name, version) VALUES ('BAC PR', 1) RETURNING id")
        try f.db.sql(
            """
            INSERT INTO organ_membership ("userId", "organId", "index", version) VALUES (\(stays), \(organ), 0, 1), (\(leaves), \(organ), 1, 1);
            INSERT INTO assigned_role ("userId", "roleId", version) VALUES (\(leaves), \(roleId), 1);
            """)
        var plan = Plan(service: "test")
        plan.append(.removeRole(userId: leaves, roleId: Int(roleId)!, roleName: "BAC PR"), reason: "left the group")
        plan.append(.addRole(user: .existing(stays), roleId: Int(roleId)!, roleName: "BAC PR"), reason: "joined the group")
        plan.append(.removeMembership(userId: leaves, organId: organ), reason: "left the organ")
        plan.append(.createUser(NewUser(ref: 1, type: .member, firstName: "New")), reason: "member of BAC")
        plan.append(.addMembership(user: .new(1), organ: .existing(organ), index: 1), reason: "joined the organ")
        plan.append(.addRole(user: .new(1), roleId: Int(roleId)!, roleName: "BAC PR"), reason: "joined the group")
        _ = try await apply(plan, on: f)

        #expect(try f.rows(
            #"SELECT u."firstName", m."index", m.version FROM organ_membership m JOIN "user" u ON u.id = m."userId" ORDER BY m."index""#
        ) == [["Stays", "0", "1"], ["New", "1", "1"]])
        #expect(try f.rows(
            #"SELECT u."firstName", a.version FROM assigned_role a JOIN "user" u ON u.id = a."userId" ORDER BY u."firstName""#
        ) == [["New", "1"], ["Stays", "1"]])
        #expect(try f.rows("SELECT table_name, action, old IS NULL, new IS NULL FROM sudosos_sync.audit WHERE table_name <> 'user' ORDER BY id") == [
            ["assigned_role", "role_removed", "f", "t"],
            ["assigned_role", "role_added", "t", "f"],
            ["assigned_role", "role_added", "t", "f"],
            ["organ_membership", "membership_removed", "f", "t"],
            ["organ_membership", "membership_added", "t", "f"],
        ])
    }

    @Test func noticesOnlyWriteTheAuditTrail() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let id = try f.insertUser("Jan")
        let before = try f.sudososState()
        var plan = Plan(service: "test")
        plan.append(.notice(userId: id, kind: "membership_expired", message: "balance not zero"), reason: "expired")
        _ = try await apply(plan, on: f)
        #expect(try f.sudososState() == before)
        #expect(try f.rows("SELECT action, new->>'kind', new->>'message', reason FROM sudosos_sync.audit")
            == [["notice", "membership_expired", "balance not zero", "expired"]])
    }

    /// Guards against overwriting an edit made through the backend between snapshot and apply.
    @Test func aConcurrentEditFailsTheWholePlan() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let jan = try f.insertUser("Jan", lastName: "Jansen")
        let piet = try f.insertUser("Piet")
        _ = try await f.store.snapshot(SnapshotRequest(userTypes: [.member]))
        let runId = try await f.store.beginRun(service: "test", dryRun: false, startedAt: Date())
        // The backend edits Jan after our snapshot (TypeORM bumps the version).
        try f.db.sql(#"UPDATE "user" SET "nickname" = 'JJ', version = version + 1 WHERE id = \#(jan)"#)
        let before = try f.sudososState()
        var plan = Plan(service: "test")
        plan.append(.updateUser(userId: piet, fields: [FieldChange(field: .lastName, old: .text(""), new: .text("Puk"))]), reason: "r")
        plan.append(.updateUser(userId: jan, fields: [FieldChange(field: .lastName, old: .text("Jansen"), new: .text("de Jong"))]), reason: "r")
        let error = await #expect(throws: SyncError.self) { try await f.store.apply(plan, runId: runId) }
        #expect(error?.kind == .failed)
        #expect(error?.message.contains("user \(jan) changed") == true)
        #expect(try f.sudososState() == before)
        #expect(try f.value("SELECT count(*) FROM sudosos_sync.audit") == "0")
    }

    /// A failure in a later statement undoes the earlier ones: one transaction.
    @Test func aPlanFailingHalfWayRollsBackCompletely() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let jan = try f.insertUser("Jan")
        try f.db.sql(#"INSERT INTO ldap_authenticator ("userId", "UUID", version) VALUES (\#(jan), '00000000000000000000000000000001', 1)"#)
        let before = try f.sudososState()
        var plan = Plan(service: "test")
        plan.append(.createUser(NewUser(ref: 1, type: .member, firstName: "New", memberId: 12)), reason: "r")
        plan.append(.updateUser(userId: jan, fields: [FieldChange(field: .firstName, old: .text("Jan"), new: .text("Johan"))]), reason: "r")
        plan.append(.unbind(userId: jan, uuid: "00000000000000000000000000000001"), reason: "r")
        plan.append(.addRole(user: .existing(jan), roleId: 999_999, roleName: "no such role"), reason: "r")
        _ = try await f.store.snapshot(SnapshotRequest(userTypes: [.member]))
        let runId = try await f.store.beginRun(service: "test", dryRun: false, startedAt: Date())
        let error = await #expect(throws: SyncError.self) { try await f.store.apply(plan, runId: runId) }
        #expect(error?.kind == .failed)
        #expect(error?.message.contains("SQLSTATE 23503") == true)  // foreign key violation
        #expect(error?.message.contains("999999") == false)  // no parameter values in messages
        #expect(try f.sudososState() == before)
        #expect(try f.value("SELECT count(*) FROM sudosos_sync.audit") == "0")
    }

    @Test func unbindingAnAuthenticatorThatIsGoneFails() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let jan = try f.insertUser("Jan")
        var plan = Plan(service: "test")
        plan.append(.unbind(userId: jan, uuid: "00000000000000000000000000000001"), reason: "r")
        let error = await #expect(throws: SyncError.self) { _ = try await apply(plan, on: f) }
        #expect(error?.message.contains("unbinding") == true)
    }
}
