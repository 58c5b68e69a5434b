import Foundation
import Synchronization
import Testing
import SudoSOSStore
import SyncEngine
import TestKit

/// The runner against a real PostgreSQL: outcomes, exit codes, what is (not) written.
@Suite struct RunnerTests {
    /// A plan that unbinds every bound member: removals for the threshold.
    private static func unbindEveryone(_ snapshot: Snapshot) -> Plan {
        var plan = Plan(service: "test", population: snapshot.users.count)
        for (id, uuid) in snapshot.ldapBindings.sorted(by: { $0.key < $1.key }) {
            plan.append(.unbind(userId: id, uuid: uuid), reason: "gone from the directory")
        }
        plan.entities.passed = snapshot.users.count
        return plan
    }

    private func seedBoundMembers(_ f: StoreFixture, count: Int) throws {
        try f.db.sql(
            """
            INSERT INTO "user" (version, "firstName", type, active) SELECT 1, 'm' || g, 'MEMBER', true FROM generate_series(1, \(count)) g;
            INSERT INTO ldap_authenticator ("userId", "UUID", version) SELECT id, md5(id::text), 1 FROM "user";
            """)
    }

    @Test func appliesARunAndRecordsIt() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let jan = try f.insertUser("Jan")
        let reporter = RecordingReporter()
        let service = PlannedService { snapshot in
            var plan = Plan(service: "test", entities: EntityCounts(passed: 1))
            plan.append(.updateUser(userId: jan, fields: FieldChange.diff(snapshot.users[jan]!, to: [(.lastName, .text("de Jong"))])), reason: "source")
            plan.append(.createUser(NewUser(ref: 1, type: .member, firstName: "Piet")), reason: "source")
            return plan
        }
        let result = await f.runner().run(service, dryRun: false, reporter: reporter)
        #expect(result.exitCode == .success)
        #expect(result.summary.outcome == .success)
        #expect(result.summary.changes["updated"] == 1 && result.summary.changes["created"] == 1)
        #expect(try f.value(#"SELECT "lastName" FROM "user" WHERE id = \#(jan)"#) == "de Jong")
        #expect(try f.rows("SELECT service, outcome, dry_run, finished IS NOT NULL, counts->'changes'->>'created', error IS NULL FROM sudosos_sync.run")
            == [["test", "success", "f", "t", "1", "t"]])
        #expect(try f.value("SELECT count(*) FROM sudosos_sync.audit a JOIN sudosos_sync.run r ON r.id = a.run_id") == "2")
        #expect(reporter.phases == ["lock", "prepare", "snapshot", "fetch", "plan", "validate", "apply", "record"])
    }

    /// One verdict per user: a writing run records its verdicts even when it changes nothing
    /// else; a dry run records none; the other service's snapshot reads them with their age
    /// (the database's clock), and an old one is unknown.
    @Test func verdictsAreRecordedByWritingRunsAndReadWithTheirAge() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let jan = try f.insertUser("Jan"), piet = try f.insertUser("Piet")
        var ldap = PlannedService { _ in
            var plan = Plan(service: "ldap")
            plan.verdicts = [Verdict(user: .existing(jan), vouches: true), Verdict(user: .existing(piet), vouches: false)]
            return plan
        }
        ldap.name = "ldap"
        _ = await f.runner().run(ldap, dryRun: true, reporter: SilentReporter())
        #expect(try f.value("SELECT count(*) FROM sudosos_sync.verdict") == "0", "a dry run records no verdict")
        let result = await f.runner().run(ldap, dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .success)
        #expect(try f.rows("SELECT service, user_id, vouches FROM sudosos_sync.verdict ORDER BY user_id")
            == [["ldap", "\(jan)", "t"], ["ldap", "\(piet)", "f"]])
        // Jan's verdict is three days old.
        try f.db.sql("UPDATE sudosos_sync.verdict SET at = now() - interval '3 days' WHERE user_id = \(jan)")
        let seen = Mutex<PeerVerdicts?>(nil)
        var gewisdb = PlannedService { snapshot in
            seen.withLock { $0 = snapshot.peers["ldap"] }
            return Plan(service: "gewisdb")
        }
        gewisdb.name = "gewisdb"
        gewisdb.snapshotRequest = SnapshotRequest(userTypes: [.member], peers: [PeerRequest(service: "ldap", maxAge: .seconds(48 * 3600))])
        _ = await f.runner().run(gewisdb, dryRun: false, reporter: SilentReporter())
        let peer = try #require(seen.withLock { $0 })
        #expect(peer.say(about: jan) == .unknown, "older than 48h")
        #expect(peer.say(about: piet) == .doesNotVouch)
        #expect(peer.say(about: 999_999) == .unknown, "no verdict")
        #expect((peer.verdicts[jan]?.ageSeconds ?? 0) > 3 * 86400 - 60)
    }

    @Test func aDryRunWritesNothingToSudoSOS() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        try seedBoundMembers(f, count: 20)
        let before = try f.sudososState()
        let service = PlannedService { snapshot in
            var plan = Self.unbindEveryone(snapshot)
            plan.changes = Array(plan.changes.prefix(2))
            plan.append(.createUser(NewUser(ref: 1, type: .member, firstName: "Piet")), reason: "source")
            return plan
        }
        let result = await f.runner().run(service, dryRun: true, reporter: SilentReporter())
        #expect(result.exitCode == .success)
        #expect(result.plan?.changes.count == 3)
        #expect(result.summary.changes["unbound"] == 2)
        #expect(try f.sudososState() == before)
        #expect(try f.value("SELECT count(*) FROM sudosos_sync.audit") == "0")
        #expect(try f.rows("SELECT outcome, dry_run FROM sudosos_sync.run") == [["success", "t"]])
    }

    /// The safety net: an empty source answer must not unbind everyone.
    @Test func aRefusedPlanWritesNothingAndExits65() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        try seedBoundMembers(f, count: 30)
        let before = try f.sudososState()
        let service = PlannedService(makePlan: Self.unbindEveryone)
        let result = await f.runner(maxDeletions: 10, maxRatio: 0.5).run(service, dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .refused)
        #expect(result.exitCode.rawValue == 65)
        #expect(result.summary.outcome == .refused)
        #expect(result.summary.error?.contains("max_deletions 10") == true)
        #expect(result.plan?.removals.count == 30)  // the report can say what would have been removed
        #expect(try f.sudososState() == before)
        #expect(try f.value("SELECT count(*) FROM sudosos_sync.audit") == "0")
        #expect(try f.rows("SELECT outcome, dry_run, counts->'changes'->>'unbound' FROM sudosos_sync.run") == [["refused", "f", "30"]])
    }

    @Test func invalidChangesBecomeRejectionsAndTheRestIsApplied() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let jan = try f.insertUser("Jan")
        let service = PlannedService { _ in
            var plan = Plan(service: "test", entities: EntityCounts(passed: 3))
            plan.append(.createUser(NewUser(ref: 1, type: .member, firstName: String(repeating: "x", count: 65))), reason: "r")
            plan.append(.bind(user: .new(1), uuid: "0123456789abcdef0123456789abcdef"), reason: "r")
            plan.append(.updateUser(userId: jan, fields: [
                FieldChange(field: .email, old: .text(""), new: .text("nobody-at-example")),
                FieldChange(field: .lastName, old: .text(""), new: .text("Jansen")),
            ]), reason: "r")
            plan.append(.createUser(NewUser(ref: 2, type: .member, firstName: "Fine")), reason: "r")
            return plan
        }
        let result = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .success)
        #expect(result.summary.rejected == ["too_long": 1, "invalid_email": 1])
        #expect(result.summary.entities == EntityCounts(passed: 1, failed: 2, skipped: 0))
        #expect(try f.rows(#"SELECT "firstName", "lastName", email FROM "user" ORDER BY id"#) == [["Jan", "Jansen", ""], ["Fine", "", ""]])
        #expect(try f.value("SELECT count(*) FROM ldap_authenticator") == "0")
        #expect(result.plan?.rejected.allSatisfy { !$0.detail.contains("nobody-at-example") } == true)
    }

    @Test func aFailedApplyIsRecordedAsAFailure() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let jan = try f.insertUser("Jan")
        let before = try f.sudososState()
        let service = PlannedService { _ in
            var plan = Plan(service: "test")
            plan.append(.createUser(NewUser(ref: 1, type: .member, firstName: "Piet")), reason: "r")
            plan.append(.addRole(user: .existing(jan), roleId: 424_242, roleName: "ghost"), reason: "r")
            return plan
        }
        let result = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .failure)
        #expect(result.summary.outcome == .failure)
        #expect(result.summary.changes.isEmpty)  // nothing was applied
        #expect(try f.sudososState() == before)
        #expect(try f.rows("SELECT outcome, error LIKE '%SQLSTATE 23503%' FROM sudosos_sync.run") == [["failure", "t"]])
    }

    @Test func aSourceNotReadyExits75() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        var service = PlannedService { _ in Plan(service: "test") }
        service.prepareError = .notReady("GEWISDB is not ready for syncing (sync_paused)")
        let result = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .temporary)
        #expect(result.summary.outcome == .notReady)
        #expect(try f.rows("SELECT outcome, error FROM sudosos_sync.run") == [["not_ready", "GEWISDB is not ready for syncing (sync_paused)"]])
    }

    /// A killed run leaves its row open; the next run, holding the lock, closes it as a crash.
    /// A locked run (not holding the lock) must not close the row of the run that is going on.
    @Test func interruptedRunsAreClosedByTheNextRun() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        try f.insertUser("Jan")
        let service = PlannedService { _ in Plan(service: "test") }
        _ = await f.runner().run(service, dryRun: false, reporter: SilentReporter())  // creates the schema
        try f.db.sql(
            "INSERT INTO sudosos_sync.run (service, started, dry_run) VALUES ('test', now() - interval '1 hour', false), ('other', now(), false)")

        let key = AdvisoryLockKey.service("test")
        let holder = try LockTests.LockHolder(url: f.db.url, key: key)
        try await waitUntil("psql holds the lock") { try LockTests.lockIsHeld(f, key: key) }
        let locked = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        holder.release()
        #expect(locked.summary.outcome == .locked)
        #expect(try f.value("SELECT count(*) FROM sudosos_sync.run WHERE finished IS NULL") == "2")

        let next = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(next.summary.outcome == .success)
        #expect(try f.rows("SELECT service, outcome FROM sudosos_sync.run WHERE started < now() - interval '30 minutes'")
            == [["test", "crash"]])
        // Another service's open row is not ours to close.
        #expect(try f.rows("SELECT outcome IS NULL FROM sudosos_sync.run WHERE service = 'other'") == [["t"]])
    }

    @Test func skippedCountsUsersTheGuardDidNotTarget() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        try f.insertUser("Live")
        try f.insertUser("Gone", deleted: true)
        let result = await f.runner().run(
            PlannedService { _ in Plan(service: "test", entities: EntityCounts(passed: 1)) }, dryRun: false,
            reporter: SilentReporter())
        #expect(result.summary.entities == EntityCounts(passed: 1, failed: 0, skipped: 1))
    }
}
