import Foundation
import Testing
@testable import SyncEngine

/// The change report `once` prints: text shape, masking, JSON.
@Suite struct ReportTests {
    static let start = Date(timeIntervalSince1970: 1_790_000_000)

    /// A plan with one change of every kind.
    static func plan() -> Plan {
        var plan = Plan(service: "ldap", population: 40, entities: EntityCounts(passed: 37, failed: 2, skipped: 1))
        plan.append(
            .createUser(NewUser(ref: 1, type: .member, firstName: "Jan", lastName: "Jansen", email: "jan.jansen@example.org", memberId: 1234)),
            reason: "member of organ BAC, no account yet")
        plan.append(
            .updateUser(userId: 42, fields: [
                FieldChange(field: .lastName, old: .text("Jansen"), new: .text("de Jong")),
                FieldChange(field: .email, old: .text("old.address@example.org"), new: .text("new.address@example.nl")),
            ]), reason: "changed in the directory")
        plan.append(.deactivateUser(userId: 7, fields: [FieldChange(field: .active, old: .flag(true), new: .flag(false))]),
                    reason: "membership expired")
        plan.append(.deleteUser(userId: 8, fields: []), reason: "organ group removed, zero balance")
        plan.append(.bind(user: .new(1), uuid: "00112233445566778899aabbccddeeff"), reason: "directory object of the new user")
        plan.append(.unbind(userId: 9, uuid: "ffeeddccbbaa99887766554433221100"), reason: "directory object gone")
        plan.append(.addRole(user: .existing(42), roleId: 3, roleName: "BAC-PM"), reason: "member of group BAC-PM")
        plan.append(.removeRole(userId: 43, roleId: 3, roleName: "BAC-PM"), reason: "no longer in group BAC-PM")
        plan.append(.addMembership(user: .new(1), organ: .existing(5), index: 2), reason: "member of group BAC")
        plan.append(.removeMembership(userId: 44, organId: 5), reason: "left group BAC")
        plan.append(.notice(userId: 7, kind: "membership_expired", message: "mail would go to jan.jansen@example.org"), reason: "closing")
        plan.rejected = [Rejection(record: "member 99", reason: .invalidEmail, detail: "email is not an address: bad@@example.org")]
        plan.warnings = ["role group CN=Unknown has no role in SudoSOS; contact beheer@example.org"]
        return plan
    }

    static func result(outcome: RunOutcome = .success, dryRun: Bool = false, error: String? = nil, exit: ExitCode = .success) -> RunResult {
        let plan = plan()
        let summary = RunSummary(
            service: "ldap", outcome: outcome, dryRun: dryRun, startedAt: start, finishedAt: start.addingTimeInterval(2.5),
            entities: plan.entities, changes: Dictionary(uniqueKeysWithValues: plan.countsByAction.map { ($0.key.rawValue, $0.value) }),
            rejected: ["invalid_email": 1], error: error)
        return RunResult(summary: summary, plan: plan, exitCode: exit)
    }

    @Test func textListsEveryChangeLikeTerraform() {
        let text = PlanReport(Self.result(dryRun: true)).text()
        let expected = [
            "sudosos-sync ldap: 10 changes planned (dry run: nothing is written)",
            #"  + create MEMBER "Jan Jansen" (member 1234, j…@example.org): member of organ BAC, no account yet"#,
            "  ~ update user 42: lastName Jansen → de Jong, email o…@example.org → n…@example.nl (changed in the directory)",
            "  - deactivate user 7: membership expired [active true → false]",
            "  - delete user 8: organ group removed, zero balance",
            #"  + bind new MEMBER "Jan Jansen" to directory object 00112233445566778899aabbccddeeff: directory object of the new user"#,
            "  - unbind user 9 from directory object ffeeddccbbaa99887766554433221100: directory object gone",
            #"  + role "BAC-PM" for user 42: member of group BAC-PM"#,
            #"  - role "BAC-PM" from user 43: no longer in group BAC-PM"#,
            #"  + membership of new MEMBER "Jan Jansen" in organ user 5 (index 2): member of group BAC"#,
            "  - membership of user 44 in organ user 5: left group BAC",
            "  ! notice membership_expired for user 7: mail would go to j…@example.org (closing)",
            "  x member 99: invalid_email: email is not an address: b…@example.org",
            "  ! role group CN=Unknown has no role in SudoSOS; contact b…@example.org",
            "Entities: 37 passed, 2 failed, 1 skipped",
            "Changes: 1 created, 1 updated, 1 deactivated, 1 deleted, 1 bound, 1 unbound, 1 role_added, 1 role_removed, 1 membership_added, 1 membership_removed",
            "Rejected: 1 invalid_email",
            "Outcome: success (exit 0) in 2.5s",
        ]
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for line in expected {
            #expect(lines.contains(line), "missing line: \(line)\n\(text)")
        }
        #expect(text.hasSuffix("\n"))
    }

    @Test func noAddressInTheTextUnlessRevealed() {
        let masked = PlanReport(Self.result()).text()
        for address in ["jan.jansen@", "old.address@", "new.address@", "beheer@", "bad@@"] {
            #expect(!masked.contains(address), "\(address) leaked")
        }
        let revealed = PlanReport(Self.result(), reveal: true).text()
        #expect(revealed.contains("jan.jansen@example.org"))
        #expect(revealed.contains("email old.address@example.org → new.address@example.nl"))
    }

    @Test func aRefusedRunSaysWhatWouldHaveBeenRemovedAndWhy() {
        let text = PlanReport(Self.result(
            outcome: .refused, error: "5 removals exceed max_deletions 4", exit: .refused)).text()
        #expect(text.hasPrefix("sudosos-sync ldap: refused, 10 changes planned, none written\n"))
        #expect(text.contains("REFUSED: 5 removals exceed max_deletions 4\nNothing was written. It would have made these 5 removals:\n"))
        #expect(text.contains("  - deactivate user 7: membership expired [active true → false]\n"))
        #expect(text.contains("Other planned changes (not written either):\n"))
        #expect(text.contains("Outcome: refused (exit 65)"))
        // Each removal is listed once, under the refusal.
        #expect(text.components(separatedBy: "- unbind user 9").count == 2)
    }

    @Test func aRunWithoutAPlanShowsItsError() {
        let summary = RunSummary(
            service: "gewisdb", outcome: .failure, dryRun: false, startedAt: Self.start, finishedAt: Self.start,
            error: "database: connection refused")
        let text = PlanReport(RunResult(summary: summary, plan: nil, exitCode: .unavailable)).text()
        #expect(text.contains("sudosos-sync gewisdb: failed\n"))
        #expect(text.contains("Error: database: connection refused\n"))
        #expect(text.contains("Outcome: failure (exit 69)"))
    }

    @Test func anEmptyPlanSaysSo() {
        let summary = RunSummary(service: "ldap", outcome: .success, dryRun: false, startedAt: Self.start, finishedAt: Self.start)
        let text = PlanReport(RunResult(summary: summary, plan: Plan(service: "ldap"), exitCode: .success)).text()
        #expect(text.contains("No changes. SudoSOS is in step with the source."))
        #expect(text.contains("Changes: none"))
    }

    @Test func jsonHasTheDocumentedShape() throws {
        let json = PlanReport(Self.result(dryRun: true)).json()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(Set(object.keys) == [
            "format", "service", "outcome", "exit_code", "dry_run", "started_at", "finished_at", "error", "entities",
            "changes_by_action", "rejected_by_reason", "refused", "population", "changes", "rejected", "warnings",
        ])
        #expect(object["format"] as? Int == 1)
        #expect(object["service"] as? String == "ldap")
        #expect(object["outcome"] as? String == "success")
        #expect(object["exit_code"] as? Int == 0)
        #expect(object["dry_run"] as? Bool == true)
        #expect(object["started_at"] as? String == "2026-09-21T14:13:20.000Z")
        #expect(object["population"] as? Int == 40)
        #expect((object["entities"] as? [String: Int]) == ["passed": 37, "failed": 2, "skipped": 1])
        let byAction = try #require(object["changes_by_action"] as? [String: Int])
        #expect(Set(byAction.keys) == Set(ChangeAction.allCases.map(\.rawValue)))
        #expect(byAction["created"] == 1)
        let changes = try #require(object["changes"] as? [[String: Any]])
        #expect(changes.count == 11)
        #expect(changes.map { $0["action"] as? String } == [
            "created", "updated", "deactivated", "deleted", "bound", "unbound", "role_added", "role_removed",
            "membership_added", "membership_removed", "notice",
        ])
        let created = try #require(changes[0]["user"] as? [String: Any])
        #expect(created["email"] as? String == "j…@example.org")
        #expect(created["member_id"] as? Int == 1234)
        #expect(created["type"] as? String == "MEMBER")
        let fields = try #require(changes[1]["fields"] as? [[String: Any]])
        #expect(fields[0]["field"] as? String == "lastName")
        #expect(fields[0]["old"] as? String == "Jansen" && fields[0]["new"] as? String == "de Jong")
        #expect(fields[1]["old"] as? String == "o…@example.org")
        #expect((changes[2]["fields"] as? [[String: Any]])?.first?["new"] as? Bool == false)
        #expect((changes[4]["user"] as? [String: Int]) == ["new": 1])
        #expect((changes[6]["role"] as? [String: Any])?["name"] as? String == "BAC-PM")
        #expect((changes[8]["organ"] as? [String: Int]) == ["id": 5])
        #expect(object["refused"] is NSNull)
        #expect(!json.contains("jan.jansen@"))
        #expect(!json.contains("beheer@"))
    }

    @Test func jsonRevealsOnlyWhenAsked() {
        #expect(PlanReport(Self.result(), reveal: true).json().contains("jan.jansen@example.org"))
    }

    @Test func jsonOfARefusedRun() throws {
        let json = PlanReport(Self.result(outcome: .refused, error: "too many", exit: .refused)).json(pretty: false)
        #expect(!json.contains("\n  "))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["refused"] as? String == "too many")
        #expect(object["exit_code"] as? Int == 65)
    }
}
