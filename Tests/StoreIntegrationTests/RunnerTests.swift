import Foundation
import Synchronization
import Testing
import SudoSOSStore
import SyncEngine
import TestKit

/// The runner against a real database, on each engine: outcomes, exit codes, what is (not) written.
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
            INSERT INTO "user" (version, "firstName", type, active) SELECT 1, concat('m', g), 'MEMBER', true FROM \(f.series(count));
            INSERT INTO ldap_authenticator ("userId", "UUID", version) SELECT id, md5(\(f.text("id"))), 1 FROM "user";
            """)
    }

    @Test(arguments: Engine.allCases) func appliesARunAndRecordsIt(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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
        #expect(try f.rows("SELECT service, outcome, dry_run, finished IS NOT NULL, \(f.j("counts", "changes", "created")), error IS NULL FROM \(f.runs)")
            == [["test", "success", f.b(false), f.b(true), "1", f.b(true)]])
        #expect(try f.value("SELECT count(*) FROM \(f.audit) a JOIN \(f.runs) r ON r.id = a.run_id") == "2")
        #expect(reporter.phases == ["lock", "schema", "prepare", "snapshot", "fetch", "plan", "validate", "apply", "record"])
    }

    /// One verdict per user: a writing run records its verdicts even when it changes nothing
    /// else; a dry run records none; the other service's snapshot reads them with their age
    /// (the database's clock), and an old one is unknown.
    @Test(arguments: Engine.allCases) func verdictsAreRecordedByWritingRunsAndReadWithTheirAge(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
        defer { f.drop() }
        let jan = try f.insertUser("Jan"), piet = try f.insertUser("Piet")
        var ldap = PlannedService { _ in
            var plan = Plan(service: "ldap")
            plan.verdicts = [Verdict(user: .existing(jan), vouches: true), Verdict(user: .existing(piet), vouches: false)]
            return plan
        }
        ldap.name = "ldap"
        _ = await f.runner().run(ldap, dryRun: true, reporter: SilentReporter())
        #expect(try f.value("SELECT count(*) FROM \(f.verdicts)") == "0", "a dry run records no verdict")
        let result = await f.runner().run(ldap, dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .success)
        #expect(try f.rows("SELECT service, user_id, vouches FROM \(f.verdicts) ORDER BY user_id")
            == [["ldap", "\(jan)", f.b(true)], ["ldap", "\(piet)", f.b(false)]])
        // Jan's verdict is three days old.
        try f.db.sql(f.engine == .postgres
            ? "UPDATE sudosos_sync.verdict SET at = now() - interval '3 days' WHERE user_id = \(jan)"
            : "UPDATE sudosos_sync_verdict SET at = UTC_TIMESTAMP(6) - INTERVAL 3 DAY WHERE user_id = \(jan)")
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

    @Test(arguments: Engine.allCases) func aDryRunWritesNothingToSudoSOS(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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
        #expect(try f.value("SELECT count(*) FROM \(f.audit)") == "0")
        #expect(try f.rows("SELECT outcome, dry_run FROM \(f.runs)") == [["success", f.b(true)]])
    }

    /// The safety net: an empty source answer must not unbind everyone.
    @Test(arguments: Engine.allCases) func aRefusedPlanWritesNothingAndExits65(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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
        #expect(try f.value("SELECT count(*) FROM \(f.audit)") == "0")
        #expect(try f.rows("SELECT outcome, dry_run, \(f.j("counts", "changes", "unbound")) FROM \(f.runs)") == [["refused", f.b(false), "30"]])
    }

    @Test(arguments: Engine.allCases) func invalidChangesBecomeRejectionsAndTheRestIsApplied(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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
        let users = try f.rows(#"SELECT "firstName", "lastName", email FROM "user" ORDER BY id"#)
        #expect(users == [["Jan", "Jansen", ""], ["Fine", "", ""]])
        #expect(try f.value("SELECT count(*) FROM ldap_authenticator") == "0")
        #expect(result.plan?.rejected.allSatisfy { !$0.detail.contains("nobody-at-example") } == true)
    }

    @Test(arguments: Engine.allCases) func aFailedApplyIsRecordedAsAFailure(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
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
        #expect(try f.rows("SELECT outcome, error LIKE '%SQLSTATE 23%' FROM \(f.runs)") == [["failure", f.b(true)]])
    }

    @Test(arguments: Engine.allCases) func aSourceNotReadyExits75(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
        defer { f.drop() }
        var service = PlannedService { _ in Plan(service: "test") }
        service.prepareError = .notReady("GEWISDB is not ready for syncing (sync_paused)")
        let result = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .temporary)
        #expect(result.summary.outcome == .notReady)
        #expect(try f.rows("SELECT outcome, error FROM \(f.runs)") == [["not_ready", "GEWISDB is not ready for syncing (sync_paused)"]])
    }

    /// A killed run leaves its row open; the next run, holding the lock, closes it as a crash.
    /// A locked run (not holding the lock) must not close the row of the run that is going on.
    @Test(arguments: Engine.allCases) func interruptedRunsAreClosedByTheNextRun(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
        defer { f.drop() }
        try f.insertUser("Jan")
        let service = PlannedService { _ in Plan(service: "test") }
        _ = await f.runner().run(service, dryRun: false, reporter: SilentReporter())  // creates the schema
        try f.db.sql(
            "INSERT INTO \(f.runs) (service, started, dry_run) VALUES ('test', \(f.ago(minutes: 60)), false), ('other', \(f.ago(minutes: 0)), false)")

        let holder = try LockTests.LockHolder(f.db, service: "test")
        try await waitUntil("the client holds the lock") { try LockTests.lockIsHeld(f, service: "test") }
        let locked = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        holder.release()
        #expect(locked.summary.outcome == .locked)
        #expect(try f.value("SELECT count(*) FROM \(f.runs) WHERE finished IS NULL") == "2")

        let next = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(next.summary.outcome == .success)
        #expect(try f.rows("SELECT service, outcome FROM \(f.runs) WHERE started < \(f.ago(minutes: 30))")
            == [["test", "crash"]])
        // Another service's open row is not ours to close.
        #expect(try f.rows("SELECT outcome IS NULL FROM \(f.runs) WHERE service = 'other'") == [[f.b(true)]])
    }

    @Test(arguments: Engine.allCases) func skippedCountsUsersTheGuardDidNotTarget(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
        defer { f.drop() }
        try f.insertUser("Live")
        try f.insertUser("Gone", deleted: true)
        let result = await f.runner().run(
            PlannedService { _ in Plan(service: "test", entities: EntityCounts(passed: 1)) }, dryRun: false,
            reporter: SilentReporter())
        #expect(result.summary.entities == EntityCounts(passed: 1, failed: 0, skipped: 1))
    }
}

/// The runner's timeout: a source stuck in a call that cannot be interrupted (a blocked
/// thread, as libldap or libpq block) does not hold the run past it.
@Suite struct RunnerTimeoutTests {
    /// `fetch` blocks a thread of its own for `seconds` and ignores cancellation; the sources
    /// were told a deadline (`context.deadline`) it does not honour.
    struct StuckService: SyncService {
        typealias Source = Int
        var name: String { "test" }
        var snapshotRequest: SnapshotRequest { SnapshotRequest(userTypes: [.member]) }
        let seconds: Double
        let sawDeadline = Sawn()

        final class Sawn: @unchecked Sendable {
            private let lock = NSLock()
            private var value: RunDeadline?
            var deadline: RunDeadline? { lock.withLock { value } }
            func set(_ deadline: RunDeadline?) { lock.withLock { value = deadline } }
        }

        func shouldSync(_ user: User, in snapshot: Snapshot) -> Bool { true }

        func fetch(targeted: [User], snapshot: Snapshot, context: RunContext) async throws -> Int {
            sawDeadline.set(context.deadline)
            context.reporter.heartbeat(phase: "reading the stuck source")
            let seconds = self.seconds
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                Thread.detachNewThread {
                    Thread.sleep(forTimeInterval: seconds)
                    continuation.resume()
                }
            }
            return 0
        }

        func plan(source: Int, targeted: [User], snapshot: Snapshot) -> Plan {
            var plan = Plan(service: name)
            plan.append(.createUser(NewUser(ref: 1, type: .member, firstName: "Too Late")), reason: "after the timeout")
            return plan
        }
    }

    @Test func aRunStillUnplannedAtItsTimeoutFailsAtOnceAndWritesNothing() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let before = try f.sudososState()
        var runner = f.runner()
        runner.timeout = .seconds(2)
        let service = StuckService(seconds: 8)
        let clock = ContinuousClock()
        let started = clock.now
        let result = await runner.run(service, dryRun: false, reporter: SilentReporter())
        let took = clock.now - started
        #expect(result.exitCode == .failure)
        #expect(took < .seconds(5), "took \(took)")
        let error = result.summary.error ?? ""
        #expect(error.contains("did not finish within services.test.timeout (2.0s)"), "\(error)")
        #expect(error.contains(#"hung at phase "reading the stuck source""#), "\(error)")
        #expect(try f.sudososState() == before)
        #expect(try f.value("SELECT outcome FROM sudosos_sync.run") == "failure")
        // The sources were given a deadline before the timeout (a fifth of it is left over).
        let deadline = try #require(service.sawDeadline.deadline)
        #expect(deadline.timeout == .seconds(2))
        #expect(deadline.sourcesBy - started < .seconds(2) && deadline.sourcesBy - started > .seconds(1))
    }
}
