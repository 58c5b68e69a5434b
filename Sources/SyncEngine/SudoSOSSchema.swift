/// Which SudoSOS schema a database has, and which of its columns a run reads or writes.
///
/// SudoSOS's backend changes its schema with TypeORM migrations (recorded in its `migrations`
/// table). The daemon supports every schema from the squashed initial migration
/// (`1743601882766`) to the newest it knows (`SudoSOSSchema.newestKnownMigration`); the
/// differences that matter to it:
///
/// | migration | change |
/// | --- | --- |
/// | `1761324427011-member-authenticator` | `member_authenticator.authenticateAsId` becomes `organ_membership.organId` |
/// | `1761328648026-add-organ-membership-index` | `organ_membership.index` |
/// | `1763399087409-rename-gewis-to-external` | `gewis_user.gewisId` becomes `member_user.memberId` |
/// | `1781691836923-terms-of-service-versioning` | `user.acceptedToS` (text) becomes `user.tosRequired` (boolean) |
///
/// Everything here is pure: the store reads the facts (`SchemaFacts`), `SudoSOSSchema.resolve`
/// decides the variant and checks every column the run needs, and the store's readers and
/// writers take their table and column names from the variant.
public struct SudoSOSSchema: Sendable, Hashable, Codable {
    /// How the terms-of-service state is stored on `user`.
    public enum TermsOfService: String, Sendable, Hashable, Codable {
        /// `acceptedToS` varchar: `ACCEPTED`, `NOT_ACCEPTED`, `NOT_REQUIRED`.
        case acceptedToS
        /// `tosRequired` boolean (false where `acceptedToS` was `NOT_REQUIRED`); acceptances
        /// live in `terms_of_service_acceptance`, which the daemon never touches.
        case tosRequired
    }

    /// The table of organ memberships (`organ_membership`, formerly `member_authenticator`).
    public var membershipTable: String
    /// Its column naming the organ (`organId`, formerly `authenticateAsId`).
    public var membershipOrganColumn: String
    /// Whether it has the `index` column (stable order within an organ).
    public var membershipHasIndex: Bool
    /// The table of GEWIS member numbers (`member_user`, formerly `gewis_user`).
    public var memberTable: String
    /// Its member-number column (`memberId`, formerly `gewisId`).
    public var memberNumberColumn: String
    public var termsOfService: TermsOfService

    public init(
        membershipTable: String, membershipOrganColumn: String, membershipHasIndex: Bool, memberTable: String,
        memberNumberColumn: String, termsOfService: TermsOfService
    ) {
        self.membershipTable = membershipTable
        self.membershipOrganColumn = membershipOrganColumn
        self.membershipHasIndex = membershipHasIndex
        self.memberTable = memberTable
        self.memberNumberColumn = memberNumberColumn
        self.termsOfService = termsOfService
    }

    /// The squashed initial migration `1743601882766`.
    public static let initial = SudoSOSSchema(
        membershipTable: "member_authenticator", membershipOrganColumn: "authenticateAsId", membershipHasIndex: false,
        memberTable: "gewis_user", memberNumberColumn: "gewisId", termsOfService: .acceptedToS)
    /// From `1763399087409` to before `1781691836923` (the schema of May 2026).
    public static let may2026 = SudoSOSSchema(
        membershipTable: "organ_membership", membershipOrganColumn: "organId", membershipHasIndex: true,
        memberTable: "member_user", memberNumberColumn: "memberId", termsOfService: .acceptedToS)
    /// From `1781691836923` on, up to the newest migration known.
    public static let newest = SudoSOSSchema(
        membershipTable: "organ_membership", membershipOrganColumn: "organId", membershipHasIndex: true,
        memberTable: "member_user", memberNumberColumn: "memberId", termsOfService: .tosRequired)

    // MARK: - Migrations

    /// The migrations (timestamp, class name) at which the daemon's view of the schema changes.
    public enum Boundary: Int64, CaseIterable, Sendable {
        case organMembership = 1761324427011
        case organMembershipIndex = 1761328648026
        case memberUser = 1763399087409
        case tosRequired = 1781691836923
    }

    /// The squashed initial migration, the oldest schema supported.
    public static let initialMigration = MigrationRecord(timestamp: 1743601882766, name: "InitialSQLMigration1743601882766")
    /// The newest migration this daemon was checked against (later ones are accepted as long as
    /// every column a run needs is still there).
    public static let newestKnownMigration = MigrationRecord(
        timestamp: 1785401380818, name: "AddProductSelfServiceToUser1785401380818")

    /// The variant the recorded migrations imply (by timestamp: TypeORM's migration identity).
    public static func variant(migrations: [MigrationRecord]) -> SudoSOSSchema {
        let ran = Set(migrations.map(\.timestamp))
        func has(_ boundary: Boundary) -> Bool { ran.contains(boundary.rawValue) }
        return SudoSOSSchema(
            organMembership: has(.organMembership), index: has(.organMembershipIndex), memberUser: has(.memberUser),
            tosRequired: has(.tosRequired))
    }

    /// The variant the columns imply, for a database without TypeORM's `migrations` table
    /// (a SudoSOS schema created by other means): whichever names exist.
    public static func variant(columns: [String: [String: String]]) -> SudoSOSSchema {
        let user = columns["user"] ?? [:]
        return SudoSOSSchema(
            organMembership: columns["member_authenticator"] == nil || columns["organ_membership"] != nil,
            index: columns["organ_membership"]?["index"] != nil,
            memberUser: columns["gewis_user"] == nil || columns["member_user"] != nil,
            tosRequired: user["tosRequired"] != nil && user["acceptedToS"] == nil)
    }

    /// The variant after (or before) each boundary migration.
    init(organMembership: Bool, index: Bool, memberUser: Bool, tosRequired: Bool) {
        self.init(
            membershipTable: organMembership ? "organ_membership" : "member_authenticator",
            membershipOrganColumn: organMembership ? "organId" : "authenticateAsId",
            membershipHasIndex: organMembership && index,
            memberTable: memberUser ? "member_user" : "gewis_user",
            memberNumberColumn: memberUser ? "memberId" : "gewisId",
            termsOfService: tosRequired ? .tosRequired : .acceptedToS)
    }

    /// Every table any variant may read or write (what the store asks the information schema about).
    public static let tablesOfInterest: [String] = [
        "user", "ldap_authenticator", "member_user", "gewis_user", "organ_membership", "member_authenticator",
        "role", "assigned_role", "server_setting",
    ] + balanceTables

    /// The tables a balance is computed from. When one of them is missing entirely, balances are
    /// unknown (never guessed to be zero); when all exist, their columns are checked like any other.
    public static let balanceTables = [
        "balance", "transaction", "sub_transaction", "sub_transaction_row", "product_revision", "transfer",
    ]

    // MARK: - Columns a run needs

    /// The `user` column holding the terms-of-service state, and its type.
    public var termsOfServiceColumn: ColumnRequirement {
        switch termsOfService {
        case .acceptedToS: return ColumnRequirement("user", "acceptedToS", .text)
        case .tosRequired: return ColumnRequirement("user", "tosRequired", .boolean)
        }
    }

    /// The `user` column a writable field is stored in, under this variant.
    public func userColumn(_ field: UserField) -> ColumnRequirement {
        switch field {
        case .firstName, .lastName, .email: return ColumnRequirement("user", field.rawValue, .text)
        case .active, .ofAge, .deleted, .canGoIntoDebt: return ColumnRequirement("user", field.rawValue, .boolean)
        case .acceptedToS: return termsOfServiceColumn
        }
    }

    /// A field's value as its column stores it under this variant: on `tosRequired` schemas the
    /// terms-of-service state is a boolean (`NOT_REQUIRED` is false, anything else true).
    public func columnValue(_ value: FieldValue, of field: UserField) -> FieldValue {
        guard field == .acceptedToS, termsOfService == .tosRequired, case .text(let raw) = value else { return value }
        return .flag(raw != TermsOfServiceStatus.notRequired.rawValue)
    }

    /// The terms-of-service state read from the `tosRequired` column: false is `NOT_REQUIRED`;
    /// true (acceptance is recorded elsewhere) reads as `NOT_ACCEPTED`, which the services treat
    /// as "required" (they only ever set `NOT_REQUIRED`, or leave a member's state alone).
    public static func termsOfService(tosRequired: Bool) -> TermsOfServiceStatus {
        tosRequired ? .notAccepted : .notRequired
    }

    /// Every column a run with `request` reads (its snapshot) or writes (the tables in
    /// `request.writes`), with the type it expects; balance columns separately (`balanceColumns`).
    public func requiredColumns(for request: SnapshotRequest) -> [ColumnRequirement] {
        var needs: [ColumnRequirement] = [
            .init("user", "id", .integer), .init("user", "version", .integer), .init("user", "type", .text),
        ]
        needs += UserField.allCases.map(userColumn)
        needs += [
            .init("ldap_authenticator", "userId", .integer), .init("ldap_authenticator", "UUID", .text),
            .init(memberTable, "userId", .integer), .init(memberTable, memberNumberColumn, .integer),
            .init(membershipTable, "userId", .integer), .init(membershipTable, membershipOrganColumn, .integer),
            .init("role", "id", .integer), .init("role", "name", .text),
            .init("assigned_role", "userId", .integer), .init("assigned_role", "roleId", .integer),
            .init("server_setting", "key", .text), .init("server_setting", "value", .text),
        ]
        if membershipHasIndex { needs.append(.init(membershipTable, "index", .integer)) }
        for table in request.writes.sorted(by: { $0.rawValue < $1.rawValue }) {
            switch table {
            case .user: needs.append(.init("user", "updatedAt", .timestamp))
            case .ldapAuthenticator: needs.append(.init("ldap_authenticator", "version", .integer))
            case .memberNumber: break
            case .organMembership: needs.append(.init(membershipTable, "version", .integer))
            case .assignedRole: needs.append(.init("assigned_role", "version", .integer))
            }
        }
        var seen = Set<ColumnRequirement>()
        return needs.filter { seen.insert($0).inserted }
    }

    /// The columns the balance query reads (`transfer.amountInclVat`, not `amount`).
    public static let balanceColumns: [ColumnRequirement] = [
        .init("balance", "userId", .integer), .init("balance", "amount", .integer),
        .init("balance", "lastTransactionId", .integer), .init("balance", "lastTransferId", .integer),
        .init("transaction", "id", .integer), .init("transaction", "fromId", .integer),
        .init("transaction", "createdAt", .timestamp),
        .init("sub_transaction", "id", .integer), .init("sub_transaction", "toId", .integer),
        .init("sub_transaction", "transactionId", .integer),
        .init("sub_transaction_row", "amount", .integer), .init("sub_transaction_row", "subTransactionId", .integer),
        .init("sub_transaction_row", "productProductId", .integer), .init("sub_transaction_row", "productRevision", .integer),
        .init("product_revision", "productId", .integer), .init("product_revision", "revision", .integer),
        .init("product_revision", "priceInclVat", .integer),
        .init("transfer", "id", .integer), .init("transfer", "fromId", .integer), .init("transfer", "toId", .integer),
        .init("transfer", "amountInclVat", .integer), .init("transfer", "createdAt", .timestamp),
    ]

    // MARK: - The check

    /// The variant of the database `facts` describe, after checking that every column a run
    /// with `request` needs exists with the expected type. Throws `SyncError.configuration`
    /// (exit 78) with one line naming the table, the column and the newest migration recorded.
    public static func resolve(_ facts: SchemaFacts, for request: SnapshotRequest) throws -> SudoSOSSchema {
        let schema = facts.migrations.map { variant(migrations: $0) } ?? variant(columns: facts.columns)
        var needs = schema.requiredColumns(for: request)
        if request.includeBalances && balanceTables.allSatisfy({ facts.columns[$0] != nil }) {
            needs += balanceColumns
        }
        for need in needs {
            guard let columns = facts.columns[need.table] else {
                throw refusal("table \(need.table) (column \(need.column)) does not exist", facts: facts)
            }
            guard let type = columns[need.column] else {
                throw refusal("table \(need.table) has no column \(need.column)", facts: facts)
            }
            guard ColumnType(informationSchemaType: type) == need.type else {
                throw refusal("column \(need.table).\(need.column) is \(type), expected \(need.type.rawValue)", facts: facts)
            }
        }
        return schema
    }

    private static func refusal(_ problem: String, facts: SchemaFacts) -> SyncError {
        let newest = facts.newestMigration.map { "newest migration recorded: \($0.name)" }
            ?? (facts.migrations == nil ? "no migrations table" : "no migration recorded")
        return .configuration(
            "SudoSOS schema not supported: \(problem) (\(newest); supported: \(initialMigration.name) "
                + "to \(newestKnownMigration.name)); nothing was written")
    }
}

/// A SudoSOS table a run may write to.
public enum WrittenTable: String, Sendable, Hashable, Codable, CaseIterable {
    case user, ldapAuthenticator, memberNumber, organMembership, assignedRole
}

/// The class of a column's type, the same on both engines (MariaDB's `tinyint` booleans,
/// PostgreSQL's `boolean`).
public enum ColumnType: String, Sendable, Hashable, Codable {
    case integer, text, boolean, timestamp, decimal

    /// The class of an `information_schema.columns.data_type` of MariaDB/MySQL or PostgreSQL;
    /// nil for anything else.
    public init?(informationSchemaType: String) {
        switch informationSchemaType.lowercased() {
        case "int", "integer", "bigint", "smallint", "mediumint": self = .integer
        case "tinyint", "boolean", "bool", "bit": self = .boolean
        case "varchar", "character varying", "char", "character", "text", "tinytext", "mediumtext", "longtext":
            self = .text
        case "datetime", "timestamp", "timestamp without time zone", "timestamp with time zone": self = .timestamp
        case "decimal", "numeric": self = .decimal
        default: return nil
        }
    }
}

/// One column a run needs, with the type it expects.
public struct ColumnRequirement: Sendable, Hashable, Codable, CustomStringConvertible {
    public var table: String
    public var column: String
    public var type: ColumnType

    public init(_ table: String, _ column: String, _ type: ColumnType) {
        self.table = table
        self.column = column
        self.type = type
    }

    public var description: String { "\(table).\(column) (\(type.rawValue))" }
}

/// One row of TypeORM's `migrations` table.
public struct MigrationRecord: Sendable, Hashable, Codable {
    public var timestamp: Int64
    public var name: String

    public init(timestamp: Int64, name: String) {
        self.timestamp = timestamp
        self.name = name
    }
}

/// What the store read about the database's schema (`SudoSOSDatabase.schemaFacts`).
public struct SchemaFacts: Sendable, Hashable, Codable {
    /// Table → column → `information_schema.columns.data_type`, for the tables of
    /// `SudoSOSSchema.tablesOfInterest` that exist.
    public var columns: [String: [String: String]]
    /// TypeORM's `migrations` rows; nil when the database has no `migrations` table.
    public var migrations: [MigrationRecord]?

    public init(columns: [String: [String: String]], migrations: [MigrationRecord]?) {
        self.columns = columns
        self.migrations = migrations
    }

    /// The newest migration recorded (largest timestamp; the later row among equal ones).
    public var newestMigration: MigrationRecord? {
        migrations?.enumerated().max { ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset) }?.element
    }
}
