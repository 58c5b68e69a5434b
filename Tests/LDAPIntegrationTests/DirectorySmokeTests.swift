import Foundation
import SyncEngine
import Testing

@testable import LDAPSource

@Suite struct DirectorySmokeTests {
    @Test(arguments: [TestDirectory.slapd, .activeDirectory])
    func readsTheFixture(_ directory: TestDirectory) async throws {
        let service = LDAPSyncService(settings: try directory.settings())
        let (read, searches, requests) = try await service.fetchDirectory(
            roleNames: ["BAC PM", "SudoSOS Admin", "Empty Role"], context: testContext())
        print("\(directory): \(read.objects.count) objects, \(searches) searches, \(requests) requests")
        for g in read.organGroups { print("organ", g, read.members[g] ?? []) }
        let plan = service.plan(source: read, targeted: [], snapshot: Snapshot(roles: [Role(id: 1, name: "BAC PM"), Role(id: 2, name: "SudoSOS Admin"), Role(id: 3, name: "Empty Role")]))
        for c in plan.changes { print(c.change, "--", c.reason) }
        for r in plan.rejected { print("REJECT", r) }
        for w in plan.warnings { print("WARN", w) }
        #expect(!read.organGroups.isEmpty)
    }
}
