import Logging
import SyncEngine

/// The `gewisdb` sync service: MEMBER users linked to a member number, checked against
/// GEWISDB's HTTP API. (Placeholder until the GEWISDB work lands.)
public struct GEWISDBSyncService: SyncService {
    public typealias Source = Void
    public let settings: GEWISDBSettings
    public var name: String { "gewisdb" }
    public var snapshotRequest: SnapshotRequest { SnapshotRequest(userTypes: [.member], includeBalances: true) }

    public init(settings: GEWISDBSettings) {
        self.settings = settings
    }

    public func shouldSync(_ user: User, in snapshot: Snapshot) -> Bool { false }

    public func fetch(targeted: [User], snapshot: Snapshot, context: RunContext) async throws {
        throw SyncError.failed("the gewisdb service is not implemented yet")
    }

    public func plan(source: Void, targeted: [User], snapshot: Snapshot) -> Plan { Plan(service: name) }
}
