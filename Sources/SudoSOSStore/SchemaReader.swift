import SyncEngine

/// Reads `SchemaFacts` in two statements: the columns of SudoSOS's tables of interest (and of
/// TypeORM's `migrations` table) from `information_schema.columns` in the current schema, then,
/// when that table exists, its rows.
struct SchemaReader {
    let connection: PGConnection

    func read() throws -> SchemaFacts {
        let rows = try connection.query(
            """
            SELECT table_name::text AS t, column_name::text AS c, data_type::text AS d
            FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name = ANY($1::text[])
            """,
            [PGValue.textArray(SudoSOSSchema.tablesOfInterest + ["migrations"])],
            what: "reading SudoSOS's schema from information_schema")
        var columns: [String: [String: String]] = [:]
        for row in rows.rows {
            columns[try row.string("t"), default: [:]][try row.string("c")] = try row.string("d")
        }
        var migrations: [MigrationRecord]?
        if let table = columns.removeValue(forKey: "migrations") {
            guard table["timestamp"] != nil, table["name"] != nil else {
                throw SyncError.configuration("TypeORM's migrations table has no timestamp or name column")
            }
            migrations = try connection.query(
                #"SELECT "timestamp"::bigint AS ts, name::text AS name FROM migrations ORDER BY id"#,
                what: "reading TypeORM's migrations table"
            ).rows.map { MigrationRecord(timestamp: try $0.int64("ts"), name: try $0.string("name")) }
        }
        return SchemaFacts(columns: columns, migrations: migrations)
    }
}
