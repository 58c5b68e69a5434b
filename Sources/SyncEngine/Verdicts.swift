import Foundation

/// One verdict per user across the services (docs/ldap.md, "One verdict per user"): as in
/// SudoSOS's own sync manager, a user passes if any service that targets them vouches for them,
/// and nothing is closed, deleted or unbound while another service still vouches.
///
/// The services run in separate processes on their own schedules, so each run records its
/// verdict per user in `sudosos_sync.verdict` (in the apply transaction), and a run of the other
/// service reads the latest ones in its snapshot. A verdict that is missing or older than
/// `verdict_max_age` is *unknown*: the run does nothing to that user (no close, no unbind) and
/// says so in a warning, because a removal is hard to undo and a stale verdict means the other
/// service is failing, which is alerted on by itself.

/// What one run says about one user: the service vouches for them (directory object exists,
/// GEWISDB membership valid) or not.
public struct Verdict: Sendable, Codable, Hashable {
    public var user: UserRef
    public var vouches: Bool

    public init(user: UserRef, vouches: Bool) {
        self.user = user
        self.vouches = vouches
    }
}

/// A verdict as stored by another service's run, with its age when the snapshot read it.
public struct RecordedVerdict: Sendable, Codable, Hashable {
    public var vouches: Bool
    /// Seconds between the verdict's run writing it and the snapshot reading it (the database's clock).
    public var ageSeconds: Double
    public var runId: Int64

    public init(vouches: Bool, ageSeconds: Double, runId: Int64) {
        self.vouches = vouches
        self.ageSeconds = ageSeconds
        self.runId = runId
    }
}

/// What the other service says about a user, as far as this run can rely on it.
public enum PeerSay: Sendable, Hashable {
    case vouches
    case doesNotVouch
    /// No verdict, or one older than the maximum age: do nothing to the user.
    case unknown
}

/// The latest verdicts of another service that runs in this deployment.
public struct PeerVerdicts: Sendable, Codable, Hashable {
    public var service: String
    /// Older verdicts count as unknown.
    public var maxAgeSeconds: Double
    public var verdicts: [Int: RecordedVerdict]

    public init(service: String, maxAgeSeconds: Double, verdicts: [Int: RecordedVerdict] = [:]) {
        self.service = service
        self.maxAgeSeconds = maxAgeSeconds
        self.verdicts = verdicts
    }

    public func say(about userId: Int) -> PeerSay {
        guard let verdict = verdicts[userId], verdict.ageSeconds <= maxAgeSeconds else { return .unknown }
        return verdict.vouches ? .vouches : .doesNotVouch
    }
}

/// A peer service whose verdicts a run consults, and how old they may be.
public struct PeerRequest: Sendable, Hashable {
    public var service: String
    public var maxAge: Duration

    public init(service: String, maxAge: Duration) {
        self.service = service
        self.maxAge = maxAge
    }
}

/// Closing a MEMBER whom no service vouches for any more: the GEWISDB service's *down*, shared by
/// both services, since whichever run finds the last vouching gone does the whole down (as the
/// original runs `down()` on every service). Acts only when the server setting
/// `allowGewisSyncDelete` is `true`: balance known to be zero → closed and deleted; otherwise closed
/// without deleting (inactive, no debt), and when the user was still active the closing notice
/// the original e-mails is recorded. The `member_user` row is kept.
public enum MemberClosing {
    /// The server setting that allows closing members (SudoSOS stores JSON `true` / `false`).
    public static let allowDeleteSetting = "allowGewisSyncDelete"

    public static func isAllowed(in snapshot: Snapshot) -> Bool {
        snapshot.booleanSetting(allowDeleteSetting) == true
    }

    /// The changes that close `user`; empty when it is closed already. `why` starts the reasons.
    public static func changes(closing user: User, why: String, snapshot: Snapshot) -> [PlannedChange] {
        let balance = snapshot.balance(of: user.id)
        if balance.isKnownZero {
            let fields = FieldChange.diff(user, to: [(.deleted, .flag(true)), (.active, .flag(false)), (.canGoIntoDebt, .flag(false))])
            guard !fields.isEmpty else { return [] }
            return [PlannedChange(.deleteUser(userId: user.id, fields: fields), reason: "\(why); balance is zero: closed and deleted")]
        }
        let fields = FieldChange.diff(user, to: [(.active, .flag(false)), (.canGoIntoDebt, .flag(false))])
        guard !fields.isEmpty else { return [] }
        var changes = [
            PlannedChange(
                .deactivateUser(userId: user.id, fields: fields),
                reason: "\(why); balance is \(describe(balance)): closed, not deleted")
        ]
        if user.active {
            changes.append(PlannedChange(
                .notice(
                    userId: user.id, kind: "membership_expiry",
                    message: "\(why); the account is closed with balance \(describe(balance)). The original "
                        + "SudoSOS e-mails the member a MembershipExpiryNotification here; sudosos-sync sends no mail."),
                reason: "closing notice (recorded, not mailed)"))
        }
        return changes
    }

    /// The users `plan` deletes: a store locks their rows and recomputes their balances inside
    /// the apply transaction, then calls `checkingDeletions`.
    public static func deletedUsers(in plan: Plan) -> [Int] {
        plan.changes.compactMap { planned in
            if case .deleteUser(let id, _) = planned.change { return id } else { return nil }
        }
    }

    /// `plan` with every deletion whose balance at apply time is not exactly zero (or unknown)
    /// turned into a close without delete: the reason says why, the closing notice is recorded
    /// when the user was active, and one warning counts them. Pure; the stores share it.
    public static func checkingDeletions(_ plan: Plan, balancesNow: [Int: Balance]) -> Plan {
        var result = plan
        result.changes = []
        var demoted = 0
        for planned in plan.changes {
            guard case .deleteUser(let id, let fields) = planned.change, !(balancesNow[id] ?? .unknown).isKnownZero else {
                result.changes.append(planned)
                continue
            }
            demoted += 1
            let shown = describe(balancesNow[id] ?? .unknown)
            let why = "\(planned.reason); but at apply time the balance is \(shown) (a purchase or transfer since the "
                + "snapshot): closed, not deleted"
            result.changes.append(PlannedChange(.deactivateUser(userId: id, fields: fields.filter { $0.field != .deleted }), reason: why))
            if fields.contains(where: { $0.field == .active && $0.old == .flag(true) }) {
                result.changes.append(PlannedChange(
                    .notice(
                        userId: id, kind: "membership_expiry",
                        message: "the account is closed with balance \(shown). The original SudoSOS e-mails the member a "
                            + "MembershipExpiryNotification here; sudosos-sync sends no mail."),
                    reason: "closing notice (recorded, not mailed)"))
            }
        }
        if demoted > 0 {
            result.warnings.append("\(demoted) deletion(s) became closes without delete: the balance was not zero at apply time")
        }
        return result
    }

    public static func describe(_ balance: Balance) -> String {
        switch balance {
        case .unknown: return "unknown"
        case .cents(let cents):
            let sign = cents < 0 ? "-" : ""
            let magnitude = cents.magnitude
            let fraction = magnitude % 100
            return "\(sign)€\(magnitude / 100).\(fraction < 10 ? "0" : "")\(fraction)"
        }
    }
}
