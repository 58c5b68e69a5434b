import Foundation
import Logging
import SyncEngine

/// The `gewisdb` sync service: MEMBER users linked to a member number (`member_user`) are
/// checked against GEWISDB's HTTP API, one request per member with `concurrency` in flight;
/// profile fields are updated and members that are expired, deleted or unknown are closed
/// (see `GEWISDBPlanner` and docs/gewisdb.md).
public struct GEWISDBSyncService: SyncService {
    public typealias Source = GEWISDBAnswers
    public let settings: GEWISDBSettings
    /// The clock that decides expiry (injected by tests).
    private let now: @Sendable () -> Date
    /// The other services running here whose verdicts count (the ldap service, for bound members).
    public let peers: [PeerRequest]
    public var name: String { "gewisdb" }
    public var snapshotRequest: SnapshotRequest {
        SnapshotRequest(userTypes: [.member], includeBalances: true, writes: [.user], peers: peers)
    }

    public init(settings: GEWISDBSettings, peers: [PeerRequest] = []) {
        self.init(settings: settings, peers: peers, now: { Date() })
    }

    /// With an explicit clock: `now()` is read once per run, when the members have been fetched.
    public init(settings: GEWISDBSettings, peers: [PeerRequest] = [], now: @escaping @Sendable () -> Date) {
        self.settings = settings
        self.peers = peers
        self.now = now
    }

    /// Guard: MEMBER users, not deleted, with a member number.
    public func shouldSync(_ user: User, in snapshot: Snapshot) -> Bool {
        user.type == .member && !user.deleted && snapshot.memberNumbers[user.id] != nil
    }

    /// Pre hook: `GET /health` must say healthy and not `sync_paused`.
    public func prepare(context: RunContext) async throws {
        let client = try GEWISDBClient(settings: settings, deadline: context.deadline)
        context.reporter.heartbeat(phase: "health")
        try await client.checkHealth(reporter: context.reporter)
    }

    /// One `GET /members/{lidnr}` per distinct member number of the targeted users.
    public func fetch(targeted: [User], snapshot: Snapshot, context: RunContext) async throws -> GEWISDBAnswers {
        let client = try GEWISDBClient(settings: settings, deadline: context.deadline)
        var seen = Set<Int>()
        let lidnrs = targeted.sorted { $0.id < $1.id }.compactMap { snapshot.memberNumbers[$0.id] }.filter {
            seen.insert($0).inserted
        }
        context.logger.info("checking \(lidnrs.count) members against GEWISDB with \(settings.concurrency) requests in flight")
        let answers = try await client.fetchMembers(
            lidnrs, concurrency: settings.concurrency, maxFailedRatio: settings.maxFailedRatio, context: context)
        return GEWISDBAnswers(checkedAt: now(), answers: answers)
    }

    public func plan(source: GEWISDBAnswers, targeted: [User], snapshot: Snapshot) -> Plan {
        GEWISDBPlanner.plan(service: name, answers: source, targeted: targeted, snapshot: snapshot)
    }
}
