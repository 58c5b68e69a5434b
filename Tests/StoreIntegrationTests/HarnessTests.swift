import Testing
import TestKit

/// Guards against a harness that silently runs without its database.
@Suite struct HarnessTests {
    @Test func templateDatabaseHasTheSudoSOSTables() throws {
        let db = try TemporaryDatabase.create()
        defer { db.drop() }
        let tables = try db.sql(
            "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'")
        #expect(tables.split(separator: ",").contains("user"))
        #expect(tables.split(separator: ",").contains("ldap_authenticator"))
    }
}
