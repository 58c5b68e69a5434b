import Foundation
import Testing
import TestKit

/// `once` end to end: a real database, the gewisdb service against `gewisdb-fake`, the report
/// on stdout with addresses masked (unless `--reveal`), and the change written only without
/// `--dry-run`. Serialized: the runs share one database.
@Suite(.serialized) struct CommandLineRunTests {
    @Test func onceReportsMaskedChangesAndAppliesThem() async throws {
        let apiKey = "Fake-Api-Key-5531"
        let fake = try await GEWISDBFake.start(apiKey: apiKey)
        defer { fake.stop() }
        let database = try TemporaryDatabase.create()
        defer { database.drop() }
        // Member 8000 (Timo de Teststudent, timo@example.org in the fixture) has an old address here.
        let id = try database.sql("""
            INSERT INTO "user" ("version", "firstName", "lastName", "email", "type", "active", "ofAge", "acceptedToS")
              VALUES (1, 'Timo', 'de Teststudent', 'old.timo@example.net', 'MEMBER', true, true, 'ACCEPTED') RETURNING "id";
            """)
        try database.sql(#"INSERT INTO "member_user" ("userId", "memberId") VALUES (\#(id), 8000)"#)
        let yaml = """
            database: {url: '\(database.url)'}
            services:
              gewisdb: {api_url: '\(fake.apiURL)', api_key: \(apiKey), concurrency: 2}
            """

        let dry = try await SudoSOSSync.run(["once", "gewisdb", "--dry-run", "--log-level", "debug"], yaml: yaml)
        #expect(dry.status == 0, "\(dry.stdout)\(dry.stderr)")
        #expect(dry.stdout.hasPrefix("sudosos-sync gewisdb: 1 change planned (dry run: nothing is written)\n"), "\(dry.stdout)")
        #expect(dry.stdout.contains("~ update user \(id): email o…@example.net → t…@example.org ("), "\(dry.stdout)")
        #expect(dry.stdout.contains("Outcome: success (exit 0)"))
        for output in [dry.stdout, dry.stderr] {
            #expect(!output.contains("old.timo@"))
            #expect(!output.contains("timo@example.org"))
            #expect(!output.contains(apiKey))
        }
        #expect(try database.sql(#"SELECT "email" FROM "user" WHERE "id" = \#(id)"#) == "old.timo@example.net")

        let revealed = try await SudoSOSSync.run(["once", "gewisdb", "--dry-run", "--reveal"], yaml: yaml)
        #expect(revealed.stdout.contains("email old.timo@example.net → timo@example.org"), "\(revealed.stdout)")
        #expect(!revealed.stderr.contains("timo@"), "logs mask addresses even with --reveal")

        let json = try await SudoSOSSync.run(["once", "gewisdb", "--dry-run", "--json"], yaml: yaml)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let changes = try #require(object["changes"] as? [[String: Any]])
        #expect(changes.count == 1)
        #expect(changes.first?["action"] as? String == "updated")
        let field = try #require((changes.first?["fields"] as? [[String: Any]])?.first)
        #expect(field["field"] as? String == "email" && field["new"] as? String == "t…@example.org")

        let applied = try await SudoSOSSync.run(["once", "gewisdb"], yaml: yaml)
        #expect(applied.status == 0, "\(applied.stdout)\(applied.stderr)")
        #expect(applied.stdout.hasPrefix("sudosos-sync gewisdb: 1 change applied\n"), "\(applied.stdout)")
        #expect(try database.sql(#"SELECT "email", "version" FROM "user" WHERE "id" = \#(id)"#) == "timo@example.org|2")

        let again = try await SudoSOSSync.run(["once", "gewisdb"], yaml: yaml)
        #expect(again.status == 0)
        #expect(again.stdout.contains("No changes. SudoSOS is in step with the source."), "\(again.stdout)")
    }
}
