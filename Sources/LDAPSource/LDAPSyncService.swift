import Logging
import SyncEngine

/// The `ldap` sync service: organs, their members, roles, service accounts and member accounts
/// from LDAP / Active Directory. (Placeholder until the LDAP work lands.)
public struct LDAPSyncService: SyncService {
    public typealias Source = Void
    public let settings: LDAPSettings
    public var name: String { "ldap" }
    public var snapshotRequest: SnapshotRequest { SnapshotRequest(userTypes: [.organ, .member, .integration]) }

    public init(settings: LDAPSettings) {
        self.settings = settings
    }

    public func shouldSync(_ user: User, in snapshot: Snapshot) -> Bool { false }

    public func fetch(targeted: [User], snapshot: Snapshot, context: RunContext) async throws {
        throw SyncError.failed("the ldap service is not implemented yet")
    }

    public func plan(source: Void, targeted: [User], snapshot: Snapshot) -> Plan { Plan(service: name) }
}
