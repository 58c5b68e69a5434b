import Foundation
import Testing
@testable import SudoSOSStore
import SyncEngine
import TestKit

/// Every change kind applied to a real database, on each engine: exact rows, TypeORM versions, audit rows.
@Suite struct ApplyTests {
    /// Snapshot, begin a run, apply `plan`; returns the run id.
    private func apply(_ plan: Plan, on f: StoreFixture) async throws -> Int64 {
        _ = try await f.store.snapshot(SnapshotRequest(userTypes: Set(UserType.allCases)))
        let runId = try await f.store.beginRun(service: "test", dryRun: false, startedAt: Date())
        try await f.store.apply(plan, runId: runId)
        return runId
    }

    @Test(arguments: Engine.allCases) func createsUsersWithMemberNumbersAtVersionOne(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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
        let (t, n) = (f.b(true), f.b(false))
        #expect(users == [
            ["BAC", "", "", t, n, "ORGAN", "NOT_REQUIRED", n, "1", n],
            ["Jan", "de Jong", "jan@example.org", t, t, "MEMBER", "NOT_ACCEPTED", t, "1", n],
        ])
        #expect(try f.rows(#"SELECT u."firstName", m."memberId" FROM member_user m JOIN "user" u ON u.id = m."userId""#)
            == [["Jan", "4711"]])
        let audit = try f.rows(
            """
            SELECT a.table_name, a.action, \(f.j("a.row_key", "id")) = \(f.text("u.id")), a."old" IS NULL, \(f.j("a.\"new\"", "firstName")),
                   \(f.j("a.\"new\"", "memberId")), \(f.j("a.\"new\"", "version")), a.reason, a.run_id
            FROM \(f.audit) a JOIN "user" u ON u.id = \(f.jint("a.row_key", "id")) ORDER BY a.id
            """)
        #expect(audit == [
            ["user", "created", t, t, "Jan", "4711", "1", "in GEWISDB", "\(runId)"],
            ["user", "created", t, t, "BAC", "", "1", "new LDAP group", "\(runId)"],
        ])
    }

    @Test(arguments: Engine.allCases) func updatesOnlyTheChangedColumnsAndBumpsTheVersion(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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

        let t = f.b(true)
        #expect(try f.rows(#"SELECT "firstName", "lastName", email, "ofAge", version, "updatedAt" > '2021-01-01' FROM "user" WHERE id = \#(jan)"#)
            == [["Jan", "de Jong", "new@example.org", t, "4", t]])
        // The untouched user keeps its version and updatedAt.
        #expect(try f.rows(#"SELECT version, "updatedAt" = '2020-01-01' FROM "user" WHERE id = \#(other)"#) == [["1", t]])
        #expect(try f.rows(
            """
            SELECT table_name, action, \(f.text("row_key")), \(f.j("\"old\"", "lastName")), \(f.j("\"new\"", "lastName")),
                   \(f.j("\"old\"", "email")), \(f.j("\"new\"", "email")),
                   \(f.j("\"old\"", "version")), \(f.j("\"new\"", "version")), reason, run_id FROM \(f.audit)
            """) == [[
                "user", "updated", #"{"id": \#(jan)}"#, "Jansen", "de Jong", "old@example.org", "new@example.org", "3", "4",
                "GEWISDB says so", "\(runId)",
            ]])
    }

    @Test(arguments: Engine.allCases) func deactivatesAndDeletesAsTheChangeDocsSay(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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
        let (t, n) = (f.b(true), f.b(false))
        #expect(try f.rows(#"SELECT "firstName", active, deleted, "canGoIntoDebt", version FROM "user" ORDER BY id"#) == [
            ["A", n, n, t, "2"],
            ["B", n, t, n, "2"],
        ])
        #expect(try f.rows(
            #"SELECT action, \#(f.j("\"old\"", "active")), \#(f.j("\"new\"", "active")), \#(f.j("\"new\"", "deleted")) FROM \#(f.audit) ORDER BY id"#
        ) == [
            ["deactivated", f.jb(true), f.jb(false), f.jb(false)],
            ["deleted", f.jb(true), f.jb(false), f.jb(true)],
        ])
    }

    @Test(arguments: Engine.allCases) func bindsAndUnbindsAuthenticators(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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
            #"SELECT u."firstName", a."UUID", a.version FROM ldap_authenticator a JOIN "user" u ON u.id = a."userId" ORDER BY u.id"#
        ) == [
            ["Unbound", "0123456789abcdef0123456789abcdef", "1"],
            ["svc", "ffffffffffffffffffffffffffffffff", "1"],
        ])
        #expect(try f.rows(
            #"SELECT table_name, action, \#(f.j("\"old\"", "UUID")), \#(f.j("\"new\"", "UUID")), reason FROM \#(f.audit) WHERE table_name = 'ldap_authenticator' ORDER BY id"#
        ) == [
            ["ldap_authenticator", "unbound", "aaaabbbbccccddddeeeeffff00001111", "", "group gone"],
            ["ldap_authenticator", "bound", "", "0123456789abcdef0123456789abcdef", "found in AD"],
            ["ldap_authenticator", "bound", "", "ffffffffffffffffffffffffffffffff", "service account"],
        ])
    }

    @Test(arguments: Engine.allCases) func addsAndRemovesRolesAndMemberships(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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
        let (t, n) = (f.b(true), f.b(false))
        #expect(try f.rows(#"SELECT table_name, action, "old" IS NULL, "new" IS NULL FROM \#(f.audit) WHERE table_name <> 'user' ORDER BY id"#) == [
            ["assigned_role", "role_removed", n, t],
            ["assigned_role", "role_added", t, n],
            ["assigned_role", "role_added", t, n],
            ["organ_membership", "membership_removed", n, t],
            ["organ_membership", "membership_added", t, n],
        ])
    }

    @Test(arguments: Engine.allCases) func noticesOnlyWriteTheAuditTrail(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
        defer { f.drop() }
        let id = try f.insertUser("Jan")
        let before = try f.sudososState()
        var plan = Plan(service: "test")
        plan.append(.notice(userId: id, kind: "membership_expired", message: "balance not zero"), reason: "expired")
        _ = try await apply(plan, on: f)
        #expect(try f.sudososState() == before)
        #expect(try f.rows(#"SELECT action, \#(f.j("\"new\"", "kind")), \#(f.j("\"new\"", "message")), reason FROM \#(f.audit)"#)
            == [["notice", "membership_expired", "balance not zero", "expired"]])
    }

    /// Guards against overwriting an edit made through the backend between snapshot and apply.
    @Test(arguments: Engine.allCases) func aConcurrentEditFailsTheWholePlan(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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
        #expect(try f.value("SELECT count(*) FROM \(f.audit)") == "0")
    }

    /// A failure in a later statement undoes the earlier ones: one transaction.
    @Test(arguments: Engine.allCases) func aPlanFailingHalfWayRollsBackCompletely(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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
        #expect(error?.message.contains("SQLSTATE 23") == true)  // foreign key violation (23503; MariaDB: 23000)
        #expect(error?.message.contains("999999") == false)  // no parameter values in messages
        #expect(try f.sudososState() == before)
        #expect(try f.value("SELECT count(*) FROM \(f.audit)") == "0")
    }

    @Test(arguments: Engine.allCases) func unbindingAnAuthenticatorThatIsGoneFails(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
        defer { f.drop() }
        let jan = try f.insertUser("Jan")
        var plan = Plan(service: "test")
        plan.append(.unbind(userId: jan, uuid: "00000000000000000000000000000001"), reason: "r")
        let error = await #expect(throws: SyncError.self) { _ = try await apply(plan, on: f) }
        #expect(error?.message.contains("unbinding") == true)
    }
}
