import Logging
import SyncEngine

/// The `ldap` sync service: organs (shared accounts) and their members, roles, service
/// accounts and member accounts from LDAP / Active Directory, as SudoSOS's own LDAP sync does,
/// but read in bulk and planned as one transaction (docs/ldap.md).
public struct LDAPSyncService: SyncService {
    public typealias Source = Directory
    public let settings: LDAPSettings
    /// The other services running here whose verdicts count (gewisdb, for members with a member number).
    public let peers: [PeerRequest]
    public var name: String { "ldap" }
    /// Balances only when another service's verdict can make this run close a member.
    public var snapshotRequest: SnapshotRequest {
        SnapshotRequest(userTypes: LDAPPlanner.targetTypes, includeBalances: !peers.isEmpty, peers: peers)
    }

    public init(settings: LDAPSettings, peers: [PeerRequest] = []) {
        self.settings = settings
        self.peers = peers
    }

    /// ORGAN, MEMBER and INTEGRATION users that are not deleted.
    public func shouldSync(_ user: User, in snapshot: Snapshot) -> Bool { LDAPPlanner.isTargeted(user) }

    /// Connects and binds (what `check-config --connect` does); failures are `unavailable`.
    public func prepare(context: RunContext) async throws {
        let client = try makeClient(deadline: context.deadline)
        try await client.connect()
    }

    public func fetch(targeted: [User], snapshot: Snapshot, context: RunContext) async throws -> Directory {
        try await fetchDirectory(roleNames: Set(snapshot.roles.map(\.name)), context: context).directory
    }

    /// Reads the directory and says how many searches and page requests it took.
    public func fetchDirectory(
        roleNames: Set<String>, context: RunContext
    ) async throws(SyncError) -> (directory: Directory, searches: Int, requests: Int) {
        let client = try makeClient(deadline: context.deadline)
        context.reporter.heartbeat(phase: "ldap: binding")
        do {
            try await client.connect()
        } catch {
            context.reporter.sourceRequest(ok: false, seconds: 0)
            throw error
        }
        let reader = DirectoryReader(settings: settings, client: client, logger: context.logger, reporter: context.reporter)
        let directory = try await reader.read(roleNames: roleNames)
        context.logger.info(
            "ldap directory read",
            metadata: [
                "objects": "\(directory.objects.count)", "organ_groups": "\(directory.organGroups.count)",
                "role_groups": "\(directory.roleGroups.count)", "searches": "\(client.searches)",
                "requests": "\(client.requests)",
            ])
        return (directory, client.searches, client.requests)
    }

    public func plan(source: Directory, targeted: [User], snapshot: Snapshot) -> Plan {
        var planner = LDAPPlanner(directory: source, snapshot: snapshot, guidAttribute: settings.guidAttribute, service: name)
        return planner.makePlan()
    }

    func makeClient(deadline: RunDeadline? = nil) throws(SyncError) -> LDAPClient {
        try LDAPClient(options: LDAPConnectionOptions(
            url: settings.serverURL, startTLS: settings.startTLS, caFile: settings.caFile, bindDN: settings.bindUser,
            bindPassword: settings.bindPassword, networkTimeout: settings.networkTimeout,
            operationTimeout: settings.operationTimeout, deadline: deadline))
    }
}
