import Testing

@testable import SyncEngine

/// The pure parts of one verdict per user and of the balance at apply time.
@Suite struct VerdictTests {
    @Test func aPeerVerdictIsUnknownWhenMissingOrTooOld() {
        let peer = PeerVerdicts(
            service: "ldap", maxAgeSeconds: 3600,
            verdicts: [
                1: RecordedVerdict(vouches: true, ageSeconds: 10, runId: 1),
                2: RecordedVerdict(vouches: false, ageSeconds: 3600, runId: 1),
                3: RecordedVerdict(vouches: true, ageSeconds: 3601, runId: 1),
            ])
        #expect(peer.say(about: 1) == .vouches)
        #expect(peer.say(about: 2) == .doesNotVouch, "exactly the maximum age still counts")
        #expect(peer.say(about: 3) == .unknown)
        #expect(peer.say(about: 4) == .unknown)
    }

    /// Issue 11 item 2, the pure rule the stores share: a deletion stays only with a balance of
    /// exactly zero at apply time; otherwise a close, with the reason, the notice and a warning.
    @Test func aDeletionWhoseBalanceIsNotZeroAtApplyTimeBecomesAClose() {
        let fields = [
            FieldChange(field: .deleted, old: .flag(false), new: .flag(true)),
            FieldChange(field: .active, old: .flag(true), new: .flag(false)),
        ]
        var plan = Plan(service: "gewisdb")
        for id in 1...3 { plan.append(.deleteUser(userId: id, fields: fields), reason: "member \(id) expired; balance is zero: closed and deleted") }
        #expect(MemberClosing.deletedUsers(in: plan) == [1, 2, 3])
        let checked = MemberClosing.checkingDeletions(plan, balancesNow: [1: .cents(0), 2: .cents(-250)])
        #expect(checked.changes.map(\.change.action) == [.deleted, .deactivated, nil, .deactivated, nil])
        #expect(checked.changes[1].change == .deactivateUser(userId: 2, fields: [fields[1]]))
        #expect(checked.changes[1].reason.hasSuffix("but at apply time the balance is -€2.50 (a purchase or transfer since the snapshot): closed, not deleted"))
        #expect(checked.changes[3].reason.contains("the balance is unknown"), "not read: unknown, never deleted")
        #expect(checked.warnings == ["2 deletion(s) became closes without delete: the balance was not zero at apply time"])
        #expect(MemberClosing.checkingDeletions(plan, balancesNow: [1: .cents(0), 2: .cents(0), 3: .cents(0)]) == plan)
    }
}
