import Testing
@testable import SyncEngine

/// The pure schema description: which variant the `migrations` rows (or the columns) imply, and
/// the check that refuses a run before anything is written.
@Suite struct SudoSOSSchemaTests {
    static let initialMigrations = [SudoSOSSchema.initialMigration]
    static let mayMigrations = initialMigrations + [
        MigrationRecord(timestamp: 1761324427011, name: "MemberAuthenticator1761324427011"),
        MigrationRecord(timestamp: 1761328648026, name: "AddOrganMembershipIndex1761328648026"),
        MigrationRecord(timestamp: 1763399087409, name: "RenameGewisToExternal1763399087409"),
        MigrationRecord(timestamp: 1778769232000, name: "TaskQueue1778769232000"),
    ]
    static let newestMigrations = mayMigrations + [
        MigrationRecord(timestamp: 1781691836923, name: "TermsOfServiceVersioning1781691836923"),
        SudoSOSSchema.newestKnownMigration,
    ]

    /// Information-schema columns as MariaDB reports them (`int`, `tinyint`, `varchar`, `datetime`).
    static func mariadbColumns(_ schema: SudoSOSSchema) -> [String: [String: String]] {
        var user = [
            "id": "int", "version": "int", "createdAt": "datetime", "updatedAt": "datetime", "firstName": "varchar",
            "lastName": "varchar", "email": "varchar", "type": "varchar", "active": "tinyint", "ofAge": "tinyint",
            "deleted": "tinyint", "canGoIntoDebt": "tinyint",
        ]
        if schema.termsOfService == .acceptedToS { user["acceptedToS"] = "varchar" } else { user["tosRequired"] = "tinyint" }
        var membership = ["userId": "int", schema.membershipOrganColumn: "int", "version": "int"]
        if schema.membershipHasIndex { membership["index"] = "int" }
        return [
            "user": user,
            "ldap_authenticator": ["userId": "int", "UUID": "varchar", "version": "int"],
            schema.memberTable: ["userId": "int", schema.memberNumberColumn: "int"],
            schema.membershipTable: membership,
            "role": ["id": "int", "name": "varchar"],
            "assigned_role": ["userId": "int", "roleId": "int", "version": "int"],
            "server_setting": ["key": "varchar", "value": "text"],
            "balance": ["userId": "int", "amount": "int", "lastTransactionId": "int", "lastTransferId": "int"],
            "transaction": ["id": "int", "fromId": "int", "createdAt": "datetime"],
            "sub_transaction": ["id": "int", "toId": "int", "transactionId": "int"],
            "sub_transaction_row": ["amount": "int", "subTransactionId": "int", "productProductId": "int", "productRevision": "int"],
            "product_revision": ["productId": "int", "revision": "int", "priceInclVat": "int"],
            "transfer": ["id": "int", "fromId": "int", "toId": "int", "amountInclVat": "int", "createdAt": "datetime"],
        ]
    }

    static let gewisdb = SnapshotRequest(userTypes: [.member], includeBalances: true, writes: [.user])
    static let ldap = SnapshotRequest(userTypes: [.member, .organ, .integration])

    func refusal(_ facts: SchemaFacts, _ request: SnapshotRequest = ldap) -> SyncError? {
        do {
            _ = try SudoSOSSchema.resolve(facts, for: request)
            return nil
        } catch let error as SyncError {
            return error
        } catch {
            return .failed("\(error)")
        }
    }

    @Test func theMigrationsDecideTheVariant() {
        #expect(SudoSOSSchema.variant(migrations: Self.initialMigrations) == .initial)
        #expect(SudoSOSSchema.variant(migrations: Self.mayMigrations) == .may2026)
        #expect(SudoSOSSchema.variant(migrations: Self.newestMigrations) == .newest)
        // Between the rename and the index column: organ_membership without index.
        let renamedOnly = SudoSOSSchema.variant(migrations: Array(Self.mayMigrations.prefix(2)))
        #expect(renamedOnly.membershipTable == "organ_membership")
        #expect(renamedOnly.membershipOrganColumn == "organId")
        #expect(!renamedOnly.membershipHasIndex)
        #expect(renamedOnly.memberTable == "gewis_user")
        // A migration newer than any known keeps the newest variant (the columns are still checked).
        let future = Self.newestMigrations + [MigrationRecord(timestamp: 1799999999999, name: "Future1799999999999")]
        #expect(SudoSOSSchema.variant(migrations: future) == .newest)
    }

    @Test func withoutAMigrationsTableTheColumnsDecide() {
        for schema in [SudoSOSSchema.initial, .may2026, .newest] {
            #expect(SudoSOSSchema.variant(columns: Self.mariadbColumns(schema)) == schema)
        }
    }

    @Test func everyKnownSchemaPassesForBothServices() throws {
        for (schema, migrations) in [
            (SudoSOSSchema.initial, Self.initialMigrations), (.may2026, Self.mayMigrations), (.newest, Self.newestMigrations),
        ] {
            let facts = SchemaFacts(columns: Self.mariadbColumns(schema), migrations: migrations)
            #expect(try SudoSOSSchema.resolve(facts, for: Self.ldap) == schema)
            #expect(try SudoSOSSchema.resolve(facts, for: Self.gewisdb) == schema)
        }
    }

    @Test func postgresTypesCountAsTheSameClasses() throws {
        var columns = Self.mariadbColumns(.may2026)
        let pg = ["int": "integer", "tinyint": "boolean", "varchar": "character varying", "datetime": "timestamp without time zone"]
        for (table, cols) in columns { columns[table] = cols.mapValues { pg[$0] ?? $0 } }
        #expect(try SudoSOSSchema.resolve(SchemaFacts(columns: columns, migrations: Self.mayMigrations), for: Self.gewisdb) == .may2026)
    }

    @Test func aDroppedColumnIsRefusedWithTableColumnAndNewestMigration() {
        // The newest migrations recorded, but a daemon-relevant column gone (here: tosRequired).
        var columns = Self.mariadbColumns(.newest)
        columns["user"]!["tosRequired"] = nil
        let error = refusal(SchemaFacts(columns: columns, migrations: Self.newestMigrations))
        #expect(error?.kind == .configuration)
        #expect(error?.exitCode == .configuration)
        #expect(error?.exitCode.rawValue == 78)
        #expect(error?.message.contains("table user has no column tosRequired") == true)
        #expect(error?.message.contains("newest migration recorded: AddProductSelfServiceToUser1785401380818") == true)
        #expect(error?.message.contains("\n") == false, "one line")
    }

    @Test func aSchemaThatMovedOnWithoutUsIsRefused() {
        // The May 2026 columns, but the migrations say acceptedToS is gone: reading it would fail.
        let error = refusal(SchemaFacts(columns: Self.mariadbColumns(.may2026), migrations: Self.newestMigrations))
        #expect(error?.message.contains("table user has no column tosRequired") == true)
    }

    @Test func aWrongTypeIsRefused() {
        var columns = Self.mariadbColumns(.may2026)
        columns["user"]!["active"] = "varchar"
        let error = refusal(SchemaFacts(columns: columns, migrations: Self.mayMigrations))
        #expect(error?.message.contains("column user.active is varchar, expected boolean") == true)
        #expect(error?.message.contains("TaskQueue1778769232000") == true)
    }

    @Test func aMissingTableIsRefused() {
        var columns = Self.mariadbColumns(.may2026)
        columns["member_user"] = nil
        let error = refusal(SchemaFacts(columns: columns, migrations: Self.mayMigrations))
        #expect(error?.message.contains("table member_user (column userId) does not exist") == true)
    }

    @Test func balanceColumnsAreCheckedWhenTheBalanceTablesExist() {
        var columns = Self.mariadbColumns(.may2026)
        columns["transfer"]!["amountInclVat"] = nil
        columns["transfer"]!["amount"] = "int"
        let facts = SchemaFacts(columns: columns, migrations: Self.mayMigrations)
        #expect(refusal(facts, Self.gewisdb)?.message.contains("table transfer has no column amountInclVat") == true)
        #expect(refusal(facts, Self.ldap) == nil, "the ldap service reads no balances")
        // Without the balance tables at all, balances are unknown: not a schema error.
        columns["balance"] = nil
        #expect(refusal(SchemaFacts(columns: columns, migrations: Self.mayMigrations), Self.gewisdb) == nil)
    }

    @Test func onlyTheTablesARunWritesNeedTheirWriteColumns() {
        var columns = Self.mariadbColumns(.may2026)
        columns["assigned_role"]!["version"] = nil
        let facts = SchemaFacts(columns: columns, migrations: Self.mayMigrations)
        #expect(refusal(facts, Self.gewisdb) == nil)
        #expect(refusal(facts, Self.ldap)?.message.contains("table assigned_role has no column version") == true)
    }

    @Test func withoutMigrationsTheRefusalSaysSo() {
        var columns = Self.mariadbColumns(.may2026)
        columns["user"]!["email"] = nil
        #expect(refusal(SchemaFacts(columns: columns, migrations: nil))?.message.contains("no migrations table") == true)
        #expect(refusal(SchemaFacts(columns: columns, migrations: []))?.message.contains("no migration recorded") == true)
    }

    @Test func theTermsOfServiceTranslateToTosRequired() {
        let newest = SudoSOSSchema.newest
        #expect(newest.userColumn(.acceptedToS) == ColumnRequirement("user", "tosRequired", .boolean))
        #expect(newest.columnValue(.text("NOT_REQUIRED"), of: .acceptedToS) == .flag(false))
        #expect(newest.columnValue(.text("NOT_ACCEPTED"), of: .acceptedToS) == .flag(true))
        #expect(newest.columnValue(.text("ACCEPTED"), of: .acceptedToS) == .flag(true))
        #expect(newest.columnValue(.text("Ann"), of: .firstName) == .text("Ann"))
        #expect(SudoSOSSchema.may2026.columnValue(.text("NOT_REQUIRED"), of: .acceptedToS) == .text("NOT_REQUIRED"))
        #expect(SudoSOSSchema.termsOfService(tosRequired: false) == .notRequired)
        // Read back and written again, a value keeps its column value (the optimistic check holds).
        for required in [false, true] {
            let status = SudoSOSSchema.termsOfService(tosRequired: required)
            #expect(newest.columnValue(.text(status.rawValue), of: .acceptedToS) == .flag(required))
        }
    }

    @Test func typeClassesOfBothEngines() {
        #expect(ColumnType(informationSchemaType: "tinyint") == .boolean)
        #expect(ColumnType(informationSchemaType: "boolean") == .boolean)
        #expect(ColumnType(informationSchemaType: "int") == .integer)
        #expect(ColumnType(informationSchemaType: "integer") == .integer)
        #expect(ColumnType(informationSchemaType: "character varying") == .text)
        #expect(ColumnType(informationSchemaType: "VARCHAR") == .text)
        #expect(ColumnType(informationSchemaType: "datetime") == .timestamp)
        #expect(ColumnType(informationSchemaType: "timestamp without time zone") == .timestamp)
        #expect(ColumnType(informationSchemaType: "json") == nil)
    }

    @Test func theNewestMigrationIsTheLatestTimestamp() {
        let facts = SchemaFacts(columns: [:], migrations: [
            MigrationRecord(timestamp: 3, name: "C3"), MigrationRecord(timestamp: 1, name: "A1"),
            MigrationRecord(timestamp: 3, name: "D3"),
        ])
        #expect(facts.newestMigration?.name == "D3")
        #expect(SchemaFacts(columns: [:], migrations: nil).newestMigration == nil)
    }
}
