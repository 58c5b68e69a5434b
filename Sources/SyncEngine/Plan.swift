/// A plan: every change one run would make, with the reason for each. A plain value, computed
/// by a service from its source and a `Snapshot`, checked (validation, deletion threshold),
/// then applied in one transaction or only printed.

/// A user the plan refers to: an existing row, or one the plan itself creates.
public enum UserRef: Sendable, Codable, Hashable, CustomStringConvertible {
    /// `"user".id` of an existing row.
    case existing(Int)
    /// The n-th `createUser` of this plan (its `NewUser.ref`).
    case new(Int)

    public var description: String {
        switch self {
        case .existing(let id): return "user \(id)"
        case .new(let n): return "new user #\(n)"
        }
    }
}

/// The columns of a user the plan creates.
public struct NewUser: Sendable, Codable, Hashable {
    /// Plan-local number, referred to by `UserRef.new(ref)`.
    public var ref: Int
    public var type: UserType
    public var firstName: String
    public var lastName: String
    public var email: String
    public var active: Bool
    public var ofAge: Bool
    public var acceptedToS: TermsOfServiceStatus
    public var canGoIntoDebt: Bool
    /// GEWIS member number to link in `member_user`, if any.
    public var memberId: Int?

    public init(
        ref: Int, type: UserType, firstName: String, lastName: String = "", email: String = "",
        active: Bool = true, ofAge: Bool = false, acceptedToS: TermsOfServiceStatus = .notRequired,
        canGoIntoDebt: Bool = false, memberId: Int? = nil
    ) {
        self.ref = ref
        self.type = type
        self.firstName = firstName
        self.lastName = lastName
        self.email = email
        self.active = active
        self.ofAge = ofAge
        self.acceptedToS = acceptedToS
        self.canGoIntoDebt = canGoIntoDebt
        self.memberId = memberId
    }
}

/// One column that changes: old and new value.
public struct FieldChange: Sendable, Codable, Hashable {
    public var field: UserField
    public var old: FieldValue
    public var new: FieldValue

    public init(field: UserField, old: FieldValue, new: FieldValue) {
        self.field = field
        self.old = old
        self.new = new
    }

    /// The field changes that turn `user` into one with `values`, skipping equal values.
    public static func diff(_ user: User, to values: [(UserField, FieldValue)]) -> [FieldChange] {
        values.compactMap { field, value in
            user[field] == value ? nil : FieldChange(field: field, old: user[field], new: value)
        }
    }
}

/// The kind of a change, as counted in reports and in `sudosos_sync_changes_total{action}`.
public enum ChangeAction: String, Sendable, Codable, CaseIterable, Hashable {
    case created
    case updated
    case deactivated
    case deleted
    case bound
    case unbound
    case roleAdded = "role_added"
    case roleRemoved = "role_removed"
    case membershipAdded = "membership_added"
    case membershipRemoved = "membership_removed"

    /// Removals are what the deletion threshold counts.
    public var isRemoval: Bool {
        switch self {
        case .deactivated, .deleted, .unbound, .roleRemoved, .membershipRemoved: return true
        case .created, .updated, .bound, .roleAdded, .membershipAdded: return false
        }
    }
}

/// One change to SudoSOS's tables.
public enum Change: Sendable, Codable, Hashable {
    /// Insert a `"user"` (version 1), and its `member_user` row when `memberId` is set.
    case createUser(NewUser)
    /// Update columns of an existing user (version + 1, updatedAt = now()).
    case updateUser(userId: Int, fields: [FieldChange])
    /// Close an account without deleting it: `active` false (and other listed fields).
    case deactivateUser(userId: Int, fields: [FieldChange])
    /// Close and soft-delete an account: `deleted` true, `active` false, `canGoIntoDebt` false.
    case deleteUser(userId: Int, fields: [FieldChange])
    /// Insert an `ldap_authenticator` row binding the user to a directory object.
    case bind(user: UserRef, uuid: String)
    /// Delete the `ldap_authenticator` row of a user.
    case unbind(userId: Int, uuid: String)
    /// Insert an `assigned_role` row.
    case addRole(user: UserRef, roleId: Int, roleName: String)
    /// Delete an `assigned_role` row.
    case removeRole(userId: Int, roleId: Int, roleName: String)
    /// Insert an `organ_membership` row.
    case addMembership(user: UserRef, organ: UserRef, index: Int)
    /// Delete an `organ_membership` row.
    case removeMembership(userId: Int, organId: Int)
    /// No row changes; recorded in the audit trail only (e.g. the closing notice the
    /// original SudoSOS e-mails to a member whose membership ended).
    case notice(userId: Int, kind: String, message: String)

    /// How the change is counted; `nil` for audit-only notices.
    public var action: ChangeAction? {
        switch self {
        case .createUser: return .created
        case .updateUser: return .updated
        case .deactivateUser: return .deactivated
        case .deleteUser: return .deleted
        case .bind: return .bound
        case .unbind: return .unbound
        case .addRole: return .roleAdded
        case .removeRole: return .roleRemoved
        case .addMembership: return .membershipAdded
        case .removeMembership: return .membershipRemoved
        case .notice: return nil
        }
    }
}

/// A change with the reason it is planned (shown in reports, kept in the audit trail).
public struct PlannedChange: Sendable, Codable, Hashable {
    public var change: Change
    public var reason: String

    public init(_ change: Change, reason: String) {
        self.change = change
        self.reason = reason
    }
}

/// Why a source record was not used. Values are the `reason` label of
/// `sudosos_sync_rejected_records_total`.
public enum RejectionReason: String, Sendable, Codable, CaseIterable, Hashable {
    case tooLong = "too_long"
    case invalidEmail = "invalid_email"
    case invalidEncoding = "invalid_encoding"
    case missingAttribute = "missing_attribute"
    case duplicateKey = "duplicate_key"
    case unparsable
}

/// A source record that could not be stored; counted as `failed`, the run goes on.
public struct Rejection: Sendable, Codable, Hashable {
    /// What the record is, without personal contact data: a DN, `member 1234`, ...
    public var record: String
    public var reason: RejectionReason
    /// One line naming the field and the problem (never the e-mail address itself).
    public var detail: String

    public init(record: String, reason: RejectionReason, detail: String) {
        self.record = record
        self.reason = reason
        self.detail = detail
    }
}

/// Entities seen by a run: `sudosos_sync_entities_total{result}`.
public struct EntityCounts: Sendable, Codable, Hashable {
    /// Checked and in step (changed or not).
    public var passed: Int
    /// Rejected, or their source request failed.
    public var failed: Int
    /// Not targeted by the service (guard said no).
    public var skipped: Int

    public init(passed: Int = 0, failed: Int = 0, skipped: Int = 0) {
        self.passed = passed
        self.failed = failed
        self.skipped = skipped
    }
}

/// The plan of one run of one service.
public struct Plan: Sendable, Codable, Hashable {
    public var service: String
    public var changes: [PlannedChange]
    public var rejected: [Rejection]
    /// Things an operator should know that change nothing (e.g. a role group with no role).
    public var warnings: [String]
    /// The synced population: the base of `max_deletion_ratio`.
    public var population: Int
    public var entities: EntityCounts
    /// What this run says about each user it decided on, recorded for the other services
    /// (`sudosos_sync.verdict`, in the apply transaction; not on a dry or refused run).
    public var verdicts: [Verdict] = []

    public init(
        service: String, changes: [PlannedChange] = [], rejected: [Rejection] = [], warnings: [String] = [],
        population: Int = 0, entities: EntityCounts = EntityCounts()
    ) {
        self.service = service
        self.changes = changes
        self.rejected = rejected
        self.warnings = warnings
        self.population = population
        self.entities = entities
    }

    /// Number of changes per action (every action present, at 0 when absent).
    public var countsByAction: [ChangeAction: Int] {
        var counts = Dictionary(uniqueKeysWithValues: ChangeAction.allCases.map { ($0, 0) })
        for planned in changes {
            if let action = planned.change.action { counts[action, default: 0] += 1 }
        }
        return counts
    }

    /// Changes that remove access or data: what the deletion threshold counts.
    public var removals: [PlannedChange] {
        changes.filter { $0.change.action?.isRemoval == true }
    }

    /// True when applying the plan would write no row (audit notices aside).
    public var isEmpty: Bool { changes.allSatisfy { $0.change.action == nil } }

    public mutating func append(_ change: Change, reason: String) {
        changes.append(PlannedChange(change, reason: reason))
    }
}
