import Foundation
import Testing

@testable import GEWISDBSource
@testable import SyncEngine

/// The plan as a pure function: answers + snapshot + clock → changes.
@Suite struct GEWISDBPlannerTests {
    static let now = try! Date("2026-11-25T12:00:00+01:00", strategy: .iso8601)
    static let future = try! Date("2099-07-01T00:00:00+02:00", strategy: .iso8601)
    static let past = try! Date("2024-07-01T00:00:00+02:00", strategy: .iso8601)

    func member(
        _ lidnr: Int, given: String = "Timo", middle: String = "de", family: String = "Teststudent",
        email: Reported<String> = .value("timo@example.org"), ofAge: Reported<Bool> = .value(true),
        deleted: Bool = false, expiration: Expiration = .date(GEWISDBPlannerTests.future)
    ) -> GEWISDBMember {
        GEWISDBMember(
            lidnr: lidnr, givenName: .value(given), middleName: .value(middle), familyName: .value(family), email: email,
            isEighteenPlus: ofAge, deleted: deleted, expiration: expiration)
    }

    /// Users 1...n, each linked to member 8000 + id, in step with `member(8000 + id)`.
    func snapshot(_ users: [User], allowDelete: String? = "true", balances: [Int: Balance] = [:]) -> Snapshot {
        var snapshot = Snapshot()
        for user in users {
            snapshot.users[user.id] = user
            snapshot.memberNumbers[user.id] = 8000 + user.id
        }
        if let allowDelete { snapshot.settings["allowGewisSyncDelete"] = allowDelete }
        snapshot.balances = balances
        return snapshot
    }

    func user(_ id: Int, active: Bool = true, email: String = "timo@example.org") -> User {
        User(
            id: id, firstName: "Timo", lastName: "de Teststudent", active: active, ofAge: true, email: email,
            type: .member, canGoIntoDebt: true)
    }

    func plan(_ answers: [Int: MemberAnswer], _ snapshot: Snapshot, now: Date = GEWISDBPlannerTests.now) -> Plan {
        let service = GEWISDBSyncService(settings: GEWISDBSettings(apiURL: "http://127.0.0.1:1"), now: { now })
        let targeted = snapshot.users.values.filter { service.shouldSync($0, in: snapshot) }
        return service.plan(source: GEWISDBAnswers(checkedAt: now, answers: answers), targeted: targeted, snapshot: snapshot)
    }

    @Test func memberInStepPlansNothing() {
        let plan = plan([8001: .found(member(8001))], snapshot([user(1)]))
        #expect(plan.changes.isEmpty)
        #expect(plan.entities == EntityCounts(passed: 1))
    }

    @Test func updatesOnlyChangedFieldsWithMiddleNameRule() {
        let changed = member(8001, given: "Tim", middle: "van der", family: "Berg", email: .value("tim@example.org"), ofAge: .value(false))
        let plan = plan([8001: .found(changed)], snapshot([user(1, active: false)]))
        #expect(plan.changes.count == 1)
        guard case .updateUser(let id, let fields) = plan.changes[0].change else {
            Issue.record("expected an update, got \(plan.changes)")
            return
        }
        #expect(id == 1)
        let byField = Dictionary(uniqueKeysWithValues: fields.map { ($0.field, $0.new) })
        #expect(byField[.firstName] == .text("Tim"))
        #expect(byField[.lastName] == .text("van der Berg"))
        #expect(byField[.email] == .text("tim@example.org"))
        #expect(byField[.ofAge] == .flag(false))
        #expect(byField[.active] == .flag(true))
        #expect(fields.count == 5)
    }

    @Test func noMiddleNameIsFamilyNameAlone() {
        let plan = plan([8001: .found(member(8001, middle: "", family: "Jansen"))], snapshot([user(1)]))
        guard case .updateUser(_, let fields) = plan.changes.first?.change else {
            Issue.record("expected an update")
            return
        }
        #expect(fields == [FieldChange(field: .lastName, old: .text("de Teststudent"), new: .text("Jansen"))])
    }

    @Test func absentFieldsAndNullEmailKeepStoredValues() {
        var partial = GEWISDBMember(lidnr: 8001, email: .null, expiration: .date(Self.future))
        partial.givenName = .absent
        let plan = plan([8001: .found(partial)], snapshot([user(1)]))
        #expect(plan.changes.isEmpty, "absent fields and email null change nothing: \(plan.changes)")
        #expect(plan.entities.passed == 1)
    }

    @Test func expiryDecidedByInjectedClock() {
        let answers: [Int: MemberAnswer] = [8001: .found(member(8001, expiration: .date(Self.past)))]
        let before = plan(answers, snapshot([user(1)]), now: Self.past.addingTimeInterval(-60))
        #expect(before.changes.isEmpty)
        let after = plan(answers, snapshot([user(1)], balances: [1: .cents(0)]), now: Self.past.addingTimeInterval(60))
        #expect(after.changes.map(\.change.action) == [.deleted])
    }

    @Test func downWithZeroBalanceDeletes() {
        let plan = plan([8001: .notFound], snapshot([user(1)], balances: [1: .cents(0)]))
        #expect(plan.changes.count == 1)
        guard case .deleteUser(1, let fields) = plan.changes[0].change else {
            Issue.record("expected deleteUser, got \(plan.changes)")
            return
        }
        #expect(Set(fields.map(\.field)) == [.deleted, .active, .canGoIntoDebt])
    }

    @Test func downWithBalanceClosesWithNoticeOnce() {
        let snap = snapshot([user(1)], balances: [1: .cents(1234)])
        let plan = plan([8001: .found(member(8001, deleted: true))], snap)
        #expect(plan.changes.map(\.change.action) == [.deactivated, nil])
        guard case .notice(1, "membership_expiry", let message) = plan.changes[1].change else {
            Issue.record("expected a notice, got \(plan.changes)")
            return
        }
        #expect(message.contains("€12.34"))
        #expect(!message.contains("@"))
        // Second run: the user is inactive now; nothing more, no second notice.
        var closed = user(1, active: false)
        closed.canGoIntoDebt = false
        let again = self.plan([8001: .found(member(8001, deleted: true))], snapshot([closed], balances: [1: .cents(1234)]))
        #expect(again.changes.isEmpty)
    }

    @Test func deletedWinsOverAMissingExpiration() {
        let plan = plan([8001: .found(member(8001, deleted: true, expiration: .missing))], snapshot([user(1)], balances: [1: .cents(0)]))
        #expect(plan.changes.map(\.change.action) == [.deleted])
        #expect(plan.rejected.isEmpty)
    }

    @Test func failedRequestsAreOneWarning() {
        let users = (1...12).map { user($0) }
        let answers = Dictionary(uniqueKeysWithValues: (1...12).map { (8000 + $0, MemberAnswer.failed("HTTP 500")) })
        let plan = plan(answers, snapshot(users))
        #expect(plan.changes.isEmpty)
        #expect(plan.entities.failed == 12)
        #expect(plan.warnings.count == 1)
        #expect(plan.warnings.first?.contains("12 member(s) left alone") == true)
        #expect(plan.warnings.first?.contains("and 2 more") == true)
    }

    @Test func unknownBalanceNeverDeletes() {
        let plan = plan([8001: .notFound], snapshot([user(1)]))
        #expect(plan.changes.map(\.change.action) == [.deactivated, nil])
    }

    @Test func closesOnlyWhenServerSettingAllows() {
        for setting in [nil, "false", "garbage"] as [String?] {
            let plan = plan([8001: .notFound], snapshot([user(1)], allowDelete: setting, balances: [1: .cents(0)]))
            #expect(plan.changes.isEmpty, "setting \(setting ?? "absent")")
            #expect(plan.warnings.contains { $0.contains("allowGewisSyncDelete") })
        }
    }

    @Test func unusableAnswersAreRejectedAndTheRestGoesOn() {
        let users = (1...7).map { user($0) }
        let long = String(repeating: "x", count: 65)
        let answers: [Int: MemberAnswer] = [
            8001: .found(member(8001, expiration: .missing)),
            8002: .found(member(8002, expiration: .invalid("soon"))),
            8003: .found(member(8003, given: long)),
            8004: .found(member(8004, email: .value("not-an-address"))),
            8005: .unparsable("the answer is not JSON (5 bytes)"),
            8006: .failed("HTTP 500"),
            8007: .found(member(8007, given: "Changed")),
        ]
        let plan = plan(answers, snapshot(users))
        #expect(plan.rejected.map(\.reason) == [.missingAttribute, .unparsable, .tooLong, .invalidEmail, .unparsable])
        // The bad address drops the address only: member 8004 passes.
        #expect(plan.entities == EntityCounts(passed: 2, failed: 5))
        #expect(plan.changes.count == 1)
        #expect(!plan.rejected.contains { $0.detail.contains("not-an-address") }, "no address in rejection details")
    }

    /// Issue 11 item 6: an invalid, over-long or empty e-mail from GEWISDB leaves the stored
    /// address as it is and applies the rest (names, ofAge, active); the field is counted.
    @Test func aBadEmailDropsTheEmailNotThePerson() {
        var stale = user(1)
        stale.firstName = "Old"
        stale.active = false
        let long = String(repeating: "a", count: 60) + "@example.org"
        for email in ["not-an-address", "", long] {
            let plan = plan([8001: .found(member(8001, given: "New", email: .value(email)))], snapshot([stale]))
            #expect(plan.rejected.map(\.reason) == [.invalidEmail], "\(email)")
            #expect(plan.entities == EntityCounts(passed: 1, failed: 0))
            guard case .updateUser(let id, let fields)? = plan.changes.first?.change else {
                Issue.record("no update for \(email): \(plan.changes)")
                continue
            }
            #expect(id == 1)
            #expect(fields.map(\.field).contains(.firstName) && fields.map(\.field).contains(.active))
            #expect(!fields.map(\.field).contains(.email), "the stored address is kept")
            if !email.isEmpty { #expect(plan.rejected.allSatisfy { !$0.detail.contains(email) }) }
        }
    }

    /// The ldap service's latest verdicts, as the snapshot reads them.
    func ldap(_ verdicts: [Int: (Bool, Double)], maxAge: Double = 48 * 3600) -> PeerVerdicts {
        PeerVerdicts(
            service: "ldap", maxAgeSeconds: maxAge,
            verdicts: verdicts.mapValues { RecordedVerdict(vouches: $0.0, ageSeconds: $0.1, runId: 1) })
    }

    /// Issue 11 item 1: one verdict per user. A down member bound to a directory object is
    /// closed only when the ldap service does not vouch either (then the binding goes too); kept
    /// while it vouches; left alone when its verdict is missing or stale; a member without a
    /// binding, or a deployment without the ldap service, is GEWISDB's alone.
    @Test func aBoundMemberIsClosedOnlyWhenTheDirectoryDoesNotVouchEither() {
        let users = (1...5).map { user($0) }
        var snap = snapshot(users, balances: Dictionary(uniqueKeysWithValues: (1...5).map { ($0, Balance.cents(0)) }))
        snap.ldapBindings = [1: "aa", 2: "bb", 3: "cc", 4: "dd"]
        // 1: directory vouches (fresh); 2: does not (fresh); 3: vouched, but 3 days ago; 4: no verdict; 5: no binding.
        snap.peers["ldap"] = ldap([1: (true, 600), 2: (false, 600), 3: (true, 3 * 86400)])
        let answers = Dictionary(uniqueKeysWithValues: (1...5).map { (8000 + $0, MemberAnswer.notFound) })
        let p = plan(answers, snap)
        #expect(Set(p.changes.map(\.change)) == [
            .unbind(userId: 2, uuid: "bb"),
            .deleteUser(userId: 2, fields: [
                FieldChange(field: .deleted, old: .flag(false), new: .flag(true)),
                FieldChange(field: .active, old: .flag(true), new: .flag(false)),
                FieldChange(field: .canGoIntoDebt, old: .flag(true), new: .flag(false)),
            ]),
            .deleteUser(userId: 5, fields: [
                FieldChange(field: .deleted, old: .flag(false), new: .flag(true)),
                FieldChange(field: .active, old: .flag(true), new: .flag(false)),
                FieldChange(field: .canGoIntoDebt, old: .flag(true), new: .flag(false)),
            ]),
        ])
        #expect(p.warnings.contains { $0.hasPrefix("1 member(s)") && $0.contains("still vouches") })
        #expect(p.warnings.contains { $0.hasPrefix("2 member(s)") && $0.contains("missing or older than 48h") })
        #expect(p.verdicts == (1...5).map { Verdict(user: .existing($0), vouches: false) })

        // Without the ldap service in this deployment, GEWISDB decides alone: all five closed.
        snap.peers = [:]
        #expect(plan(answers, snap).countsByAction[.deleted] == 5)
        #expect(plan(answers, snap).countsByAction[.unbound] == 0)
        // Not allowed to close: the directory's part (unbind) still happens, as in the original.
        snap.peers["ldap"] = ldap([2: (false, 600)])
        snap.settings["allowGewisSyncDelete"] = "false"
        #expect(plan(answers, snap).changes.map(\.change) == [.unbind(userId: 2, uuid: "bb")])
    }

    /// GEWISDB's verdicts: valid vouches (even when a profile field is rejected), down does not,
    /// a failed or unusable answer says nothing.
    @Test func verdictsFollowTheAnswers() {
        let users = (1...4).map { user($0) }
        let answers: [Int: MemberAnswer] = [
            8001: .found(member(8001)), 8002: .found(member(8002, given: String(repeating: "x", count: 65))),
            8003: .found(member(8003, expiration: .date(GEWISDBPlannerTests.past))), 8004: .failed("HTTP 500"),
        ]
        #expect(plan(answers, snapshot(users)).verdicts == [
            Verdict(user: .existing(1), vouches: true), Verdict(user: .existing(2), vouches: true),
            Verdict(user: .existing(3), vouches: false),
        ])
    }

    @Test func deletedUsersAndUnlinkedUsersAreNotTargeted() {
        var gone = user(1)
        gone.deleted = true
        var snap = snapshot([gone, user(2)])
        snap.users[3] = User(id: 3, firstName: "Local", type: .member)
        let plan = plan([8002: .found(member(8002))], snap)
        #expect(plan.population == 1)
        #expect(plan.entities == EntityCounts(passed: 1), "skipped users are the runner's count")
    }
}

@Suite struct GEWISDBMemberParsingTests {
    @Test func parsesGEWISDBAnswer() throws {
        let body = Data(
            #"{"status":"success","data":{"lidnr":8000,"full_name":"Timo de Teststudent","given_name":"Timo","middle_name":"de","family_name":"Teststudent","deleted":false,"hidden":false,"expiration":"2023-07-01T00:00:00+02:00","email":null,"is_18_plus":true}}"#
                .utf8)
        let member = try GEWISDBMember.parse(body, expected: 8000)
        #expect(member.givenName == .value("Timo"))
        #expect(member.email == .null)
        #expect(member.isEighteenPlus == .value(true))
        #expect(member.expiration == .date(try Date("2023-06-30T22:00:00Z", strategy: .iso8601)))
    }

    @Test func absentOptionalFieldsStayAbsent() throws {
        let member = try GEWISDBMember.parse(Data(#"{"status":"success","data":{"lidnr":1}}"#.utf8), expected: 1)
        #expect(member.email == .absent)
        #expect(member.isEighteenPlus == .absent)
        #expect(member.expiration == .missing)
    }

    @Test(arguments: [
        "<html>", "[]", #"{"status":"success"}"#, #"{"status":"success","data":{"lidnr":2}}"#,
        #"{"status":"success","data":{"lidnr":1,"given_name":5}}"#,
        #"{"status":"success","data":{"lidnr":1,"is_18_plus":"yes"}}"#,
        #"{"status":"success","data":{"lidnr":true}}"#,
    ])
    func rejectsBodiesThatAreNotAMember(body: String) {
        #expect(throws: GEWISDBMember.Unparsable.self) { try GEWISDBMember.parse(Data(body.utf8), expected: 1) }
    }

    @Test func invalidExpirationIsKeptAsInvalid() throws {
        let member = try GEWISDBMember.parse(
            Data(#"{"status":"success","data":{"lidnr":1,"expiration":"tomorrow"}}"#.utf8), expected: 1)
        #expect(member.expiration == .invalid("tomorrow"))
    }
}
