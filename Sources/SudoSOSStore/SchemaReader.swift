import SyncEngine

/// Reads `SchemaFacts` in two statements: the columns of SudoSOS's tables of interest (and of
/// TypeORM's `migrations` table) from `information_schema.columns` in the current schema, then,
/// when that table exists, its rows. The same statements on both engines (the current schema
/// is PostgreSQL's `current_schema()`, MariaDB's `DATABASE()`).
struct SchemaReader {
    let session: any SQLSession

    func read() throws -> SchemaFacts {
        let d = session.dialect
        let rows = try session.query(
            """
            SELECT \(raw: d.text("table_name")) AS t, \(raw: d.text("column_name")) AS c, \(raw: d.text("data_type")) AS d
            FROM information_schema.columns
            WHERE table_schema = \(raw: d.currentSchema)
              AND table_name IN (SELECT v FROM \(texts: SudoSOSSchema.tablesOfInterest + ["migrations"]) AS l)
            """,
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
            migrations = try session.query(
                #"SELECT \#(bigint: #""timestamp""#) AS ts, \#(raw: d.text("name")) AS name FROM migrations ORDER BY id"#,
                what: "reading TypeORM's migrations table"
            ).rows.map { MigrationRecord(timestamp: try $0.int64("ts"), name: try $0.string("name")) }
        }
        return SchemaFacts(columns: columns, migrations: migrations)
    }
}
