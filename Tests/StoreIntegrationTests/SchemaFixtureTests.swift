import Foundation
import Logging
import Testing

import SudoSOSStore
import SyncEngine
import TestKit

/// The fixtures against the daemon's own description of what it needs: for each fixture schema
/// (oldest, May 2026, newest), every column a run reads or writes exists with the expected type,
/// read back through the store's own `schemaFacts` (information_schema and TypeORM's
/// `migrations`), so a misnamed column fails here and not in production.
///
/// On both engines (`TestKit.Engine`).
@Suite struct SchemaFixtureTests {
    /// A store on a temporary database of the given schema, on `engine`.
    static func database(_ engine: Engine, _ schema: SudoSOSTestSchema) throws -> (TemporaryDatabase, any SudoSOSDatabase) {
        let db = try TemporaryDatabase.create(engine, schema: schema)
        switch engine {
        case .postgres: return (db, PostgresStore(url: db.url, connectTimeout: .seconds(5), logger: Logger(label: "test.store")))
        case .mariadb: return (db, try MariaDBStore(url: db.url, connectTimeout: .seconds(5)))
        }
    }

    static func expected(_ schema: SudoSOSTestSchema) -> SudoSOSSchema {
        switch schema {
        case .oldest: return .initial
        case .default: return .may2026
        case .newest: return .newest
        }
    }

    /// Every service, every table written, balances included.
    static let everything = SnapshotRequest(userTypes: Set(UserType.allCases), includeBalances: true)

    @Test(arguments: Engine.allCases, SudoSOSTestSchema.allCases)
    func everyColumnTheDaemonReadsOrWritesExistsWithItsType(_ engine: Engine, _ schema: SudoSOSTestSchema) async throws {
        let (db, store) = try Self.database(engine, schema)
        defer { db.drop() }
        let facts = try await store.schemaFacts()
        let expected = Self.expected(schema)
        let migrations = try #require(facts.migrations, "\(engine) \(schema): no migrations table")
        #expect(SudoSOSSchema.variant(migrations: migrations) == expected)
        #expect(SudoSOSSchema.variant(columns: facts.columns) == expected, "the columns tell the same story")
        #expect(migrations.first == SudoSOSSchema.initialMigration)
        if schema == .newest { #expect(facts.newestMigration == SudoSOSSchema.newestKnownMigration) }

        for table in SudoSOSSchema.balanceTables {
            #expect(facts.columns[table] != nil, "\(engine) \(schema): balance table \(table) missing")
        }
        for need in expected.requiredColumns(for: Self.everything) + SudoSOSSchema.balanceColumns {
            let type = facts.columns[need.table]?[need.column]
            #expect(
                type.flatMap(ColumnType.init(informationSchemaType:)) == need.type,
                "\(engine) \(schema): \(need) is \(type ?? "missing")")
        }
        #expect(facts.columns["transfer"]?["amount"] == nil, "SudoSOS's transfer column is amountInclVat")
        // The check every run makes agrees.
        #expect(try SudoSOSSchema.resolve(facts, for: Self.everything) == expected)
    }
}
