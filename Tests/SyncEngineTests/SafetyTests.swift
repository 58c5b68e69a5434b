import Testing
@testable import SyncEngine

@Suite struct DeletionThresholdTests {
    private func plan(removals: Int, population: Int) -> Plan {
        var plan = Plan(service: "test", population: population)
        for id in 0..<removals {
            plan.append(.unbind(userId: id, uuid: "u\(id)"), reason: "gone")
        }
        plan.append(.updateUser(userId: 999, fields: []), reason: "noise")
        return plan
    }

    @Test func allowsPlansWithinBothLimits() {
        #expect(DeletionThreshold(maxDeletions: 5, maxRatio: 0.5).check(plan(removals: 5, population: 10)) == .allowed)
    }

    @Test func refusesOverTheCount() {
        guard case .refused(let why) = DeletionThreshold(maxDeletions: 4, maxRatio: 1).check(plan(removals: 5, population: 100))
        else { Issue.record("not refused"); return }
        #expect(why.contains("max_deletions 4"))
    }

    @Test func refusesOverTheRatio() {
        guard case .refused(let why) = DeletionThreshold(maxDeletions: 100, maxRatio: 0.1).check(plan(removals: 11, population: 100))
        else { Issue.record("not refused"); return }
        #expect(why.contains("max_deletion_ratio"))
    }

    @Test func neverRemovesEveryone() {
        #expect(DeletionThreshold(maxDeletions: 100, maxRatio: 1.0).check(plan(removals: 3, population: 3)) != .allowed)
    }

    @Test func noRemovalsIsAlwaysAllowed() {
        #expect(DeletionThreshold(maxDeletions: 0, maxRatio: 0).check(plan(removals: 0, population: 0)) == .allowed)
    }
}
