import Foundation

/// The SudoSOS rows the sync services read, as plain values.
///
/// Column names follow SudoSOS's TypeORM entities (camelCase; the schema versions and their
/// names: docs/database.md, fixtures/sql/README.md).

/// `user.type` in SudoSOS.
public enum UserType: String, Sendable, Codable, CaseIterable, Hashable {
    case member = "MEMBER"
    case organ = "ORGAN"
    case voucher = "VOUCHER"
    case localUser = "LOCAL_USER"
    case localAdmin = "LOCAL_ADMIN"
    case invoice = "INVOICE"
    case pointOfSale = "POINT_OF_SALE"
    case integration = "INTEGRATION"
}

/// `user.acceptedToS` in SudoSOS.
public enum TermsOfServiceStatus: String, Sendable, Codable, CaseIterable, Hashable {
    case accepted = "ACCEPTED"
    case notAccepted = "NOT_ACCEPTED"
    case notRequired = "NOT_REQUIRED"
}

/// One row of SudoSOS's `"user"` table: the columns a sync may read or write.
public struct User: Sendable, Codable, Hashable {
    public var id: Int
    /// TypeORM's optimistic-locking column; bumped by one on every update we write.
    public var version: Int
    public var firstName: String
    public var lastName: String
    public var active: Bool
    public var ofAge: Bool
    public var email: String
    public var deleted: Bool
    public var type: UserType
    public var acceptedToS: TermsOfServiceStatus
    public var canGoIntoDebt: Bool

    public init(
        id: Int, version: Int = 1, firstName: String, lastName: String = "", active: Bool = true,
        ofAge: Bool = false, email: String = "", deleted: Bool = false, type: UserType,
        acceptedToS: TermsOfServiceStatus = .notAccepted, canGoIntoDebt: Bool = false
    ) {
        self.id = id
        self.version = version
        self.firstName = firstName
        self.lastName = lastName
        self.active = active
        self.ofAge = ofAge
        self.email = email
        self.deleted = deleted
        self.type = type
        self.acceptedToS = acceptedToS
        self.canGoIntoDebt = canGoIntoDebt
    }

    /// The value of one writable field.
    public subscript(field: UserField) -> FieldValue {
        get {
            switch field {
            case .firstName: return .text(firstName)
            case .lastName: return .text(lastName)
            case .email: return .text(email)
            case .active: return .flag(active)
            case .ofAge: return .flag(ofAge)
            case .deleted: return .flag(deleted)
            case .canGoIntoDebt: return .flag(canGoIntoDebt)
            case .acceptedToS: return .text(acceptedToS.rawValue)
            }
        }
        set {
            switch (field, newValue) {
            case (.firstName, .text(let v)): firstName = v
            case (.lastName, .text(let v)): lastName = v
            case (.email, .text(let v)): email = v
            case (.active, .flag(let v)): active = v
            case (.ofAge, .flag(let v)): ofAge = v
            case (.deleted, .flag(let v)): deleted = v
            case (.canGoIntoDebt, .flag(let v)): canGoIntoDebt = v
            case (.acceptedToS, .text(let v)): acceptedToS = TermsOfServiceStatus(rawValue: v) ?? acceptedToS
            default: preconditionFailure("field \(field) cannot hold \(newValue)")
            }
        }
    }
}

/// A writable column of `"user"`.
public enum UserField: String, Sendable, Codable, CaseIterable, Hashable {
    case firstName, lastName, email, active, ofAge, deleted, canGoIntoDebt, acceptedToS

    /// The column is an e-mail address: masked in reports unless revealed.
    public var isPersonalContact: Bool { self == .email }
}

/// A column value: SudoSOS's user columns are text or boolean.
public enum FieldValue: Sendable, Codable, Hashable, CustomStringConvertible {
    case text(String)
    case flag(Bool)

    public var description: String {
        switch self {
        case .text(let s): return s
        case .flag(let b): return b ? "true" : "false"
        }
    }
}

/// One `organ_membership` row: `userId` may act for the shared account `organId`.
public struct OrganMembership: Sendable, Codable, Hashable {
    public var userId: Int
    public var organId: Int
    /// Stable position of the member within the organ (kept for staying members,
    /// lowest free index for new ones).
    public var index: Int

    public init(userId: Int, organId: Int, index: Int) {
        self.userId = userId
        self.organId = organId
        self.index = index
    }
}

/// One `role` row.
public struct Role: Sendable, Codable, Hashable {
    public var id: Int
    public var name: String

    public init(id: Int, name: String) {
        self.id = id
        self.name = name
    }
}

/// One `assigned_role` row.
public struct RoleAssignment: Sendable, Codable, Hashable {
    public var userId: Int
    public var roleId: Int

    public init(userId: Int, roleId: Int) {
        self.userId = userId
        self.roleId = roleId
    }
}

/// A user's balance in cents, or unknown (tables missing, or not computable): an unknown
/// balance is treated as non-zero, so nobody is deleted on a guess.
public enum Balance: Sendable, Codable, Hashable {
    case cents(Int)
    case unknown

    /// True only for a balance known to be exactly zero.
    public var isKnownZero: Bool { self == .cents(0) }
}

/// Everything a run reads from SudoSOS, read once per run (a constant number of queries).
public struct Snapshot: Sendable, Codable, Hashable {
    /// Users of the service's target types, deleted ones included, by id.
    public var users: [Int: User]
    /// `ldap_authenticator`: user id → lowercase hex UUID.
    public var ldapBindings: [Int: String]
    /// `member_user`: user id → GEWIS member number.
    public var memberNumbers: [Int: Int]
    public var organMemberships: [OrganMembership]
    public var roles: [Role]
    public var roleAssignments: Set<RoleAssignment>
    /// `server_setting`: key → raw JSON text value.
    public var settings: [String: String]
    /// Balances of the target users, when the service asked for them.
    public var balances: [Int: Balance]
    /// The latest verdicts of the other services that run in this deployment, by service
    /// (absent: that service does not run here, and has no say).
    public var peers: [String: PeerVerdicts] = [:]

    public init(
        users: [Int: User] = [:], ldapBindings: [Int: String] = [:], memberNumbers: [Int: Int] = [:],
        organMemberships: [OrganMembership] = [], roles: [Role] = [], roleAssignments: Set<RoleAssignment> = [],
        settings: [String: String] = [:], balances: [Int: Balance] = [:]
    ) {
        self.users = users
        self.ldapBindings = ldapBindings
        self.memberNumbers = memberNumbers
        self.organMemberships = organMemberships
        self.roles = roles
        self.roleAssignments = roleAssignments
        self.settings = settings
        self.balances = balances
    }

    /// The balance of a user; unknown when it was not read.
    public func balance(of userId: Int) -> Balance { balances[userId] ?? .unknown }

    /// `server_setting` as a boolean (SudoSOS stores JSON text `true` / `false`); `nil` when absent.
    public func booleanSetting(_ key: String) -> Bool? {
        guard let raw = settings[key]?.trimmingCharacters(in: .whitespacesAndNewlines) else { return nil }
        switch raw {
        case "true": return true
        case "false": return false
        default: return nil
        }
    }
}

/// What a service asks the store to read.
public struct SnapshotRequest: Sendable, Hashable {
    public var userTypes: Set<UserType>
    public var includeBalances: Bool
    /// The tables the service may write (their columns are checked before the run).
    public var writes: Set<WrittenTable>
    /// The schema variant to read and write: the runner sets the one `SudoSOSSchema.resolve`
    /// found before it asks for the snapshot, and the store writes the plan in the same variant.
    public var schema: SudoSOSSchema

    /// The other services whose latest verdicts to read (`sudosos_sync.verdict` /
    /// `sudosos_sync_verdict`).
    public var peers: [PeerRequest]

    public init(
        userTypes: Set<UserType>, includeBalances: Bool = false, writes: Set<WrittenTable> = Set(WrittenTable.allCases),
        schema: SudoSOSSchema = .may2026, peers: [PeerRequest] = []
    ) {
        self.userTypes = userTypes
        self.includeBalances = includeBalances
        self.writes = writes
        self.schema = schema
        self.peers = peers
    }
}
