import Foundation
import SyncEngine
import TestKit
import Testing

/// `sudosos-sync once ldap` (the real binary) on the oldest and the newest SudoSOS schema the
/// fixtures know, and its refusal (exit 78, nothing written) of a schema missing a column it
/// needs. The directory is the shared slapd organisation (read-only). The SQL is plain enough for
/// both engines' test clients (double-quoted names, no casts, no string aggregates).
@Suite struct LDAPSchemaVersionTests {
    /// The table and column names of each fixture schema, for seeding and checking.
    struct Names {
        var memberships: String
        var organ: String
        var members: String
        var memberNumber: String
        var tosRequired: Bool

        init(_ schema: SudoSOSTestSchema) {
            let old = schema == .oldest
            memberships = old ? "member_authenticator" : "organ_membership"
            organ = old ? "authenticateAsId" : "organId"
            members = old ? "gewis_user" : "member_user"
            memberNumber = old ? "gewisId" : "memberId"
            tosRequired = schema == .newest
        }
    }

    /// The shared organisation's configuration for the binary, on database `url`.
    static func config(url: String) throws -> String {
        let directory = TestDirectory.slapd
        let org = "OU=Organisation,\(try directory.root)"
        return """
            database:
              url: \(url)
            services:
              ldap:
                enabled: true
                interval: 15m
                max_deletions: 50
                max_deletion_ratio: 1.0
                server_url: \(try directory.env("URL"))
                base: "\(org)"
                bind_user: "\(try directory.env("BIND_DN"))"
                shared_account_filter: "OU=Shared,\(org)"
                role_filter: "OU=Roles,\(org)"
                service_account_filter: "CN=SudoSOS Service Accounts,OU=Groups,\(org)"
                guid_attribute: objectGUID
                nested_groups: member_attribute
                directory_type: openldap
            """
    }

    /// Runs `sudosos-sync once ldap` on `db` and returns its output.
    static func once(_ db: TemporaryDatabase) throws -> ProcessOutput {
        let file = NSTemporaryDirectory() + "ldap-schema-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try config(url: db.url).write(toFile: file, atomically: true, encoding: .utf8)
        return try runProcess(
            TestEnvironment.executable("sudosos-sync"), ["once", "ldap", "--config", file],
            environment: ["PATH": "/usr/bin:/bin", "LDAP_BIND_PW": try TestDirectory.slapd.env("BIND_PW")])
    }

    /// The roles the directory names, and Bram: an existing member account with member number
    /// 10002 (bound by the run, not duplicated) holding the role of an empty group (cleared).
    static func seed(_ db: TemporaryDatabase, _ names: Names) throws {
        try db.sql(#"INSERT INTO role ("version","name") VALUES (1,'BAC PM'),(1,'SudoSOS Admin'),(1,'Empty Role')"#)
        let tos = names.tosRequired ? #""tosRequired""# : #""acceptedToS""#
        let accepted = names.tosRequired ? "true" : "'ACCEPTED'"
        try db.sql(
            #"INSERT INTO "user" ("version","firstName","lastName","type","active",\#(tos)) VALUES (1,'Bram','Jansen','MEMBER',true,\#(accepted))"#)
        try db.sql(
            #"INSERT INTO \#(names.members) ("userId","\#(names.memberNumber)") SELECT id, 10002 FROM "user" WHERE "firstName"='Bram'"#)
        try db.sql(
            #"INSERT INTO assigned_role ("version","userId","roleId") SELECT 1, u.id, r.id FROM "user" u, role r WHERE u."firstName"='Bram' AND r.name='Empty Role'"#)
    }

    /// Everything the ldap service writes, as one text (every user's id, version and active flag;
    /// the counts of the other tables).
    static func state(_ db: TemporaryDatabase, _ names: Names) throws -> String {
        try [
            #"SELECT id, version, CASE WHEN active THEN 1 ELSE 0 END FROM "user" ORDER BY id"#,
            "SELECT count(*) FROM ldap_authenticator", "SELECT count(*) FROM \(names.memberships)",
            "SELECT count(*) FROM assigned_role", "SELECT count(*) FROM \(names.members)",
        ].map { try db.sql($0) }.joined(separator: "\n")
    }

    /// A boolean column of one user, as yes/no.
    static func flag(_ db: TemporaryDatabase, _ column: String, of firstName: String) throws -> String {
        try db.sql(#"SELECT CASE WHEN "\#(column)" THEN 'yes' ELSE 'no' END FROM "user" WHERE "firstName" = '\#(firstName)'"#)
    }

    @Test(arguments: [SudoSOSTestSchema.oldest, .newest])
    func theBinarySyncsTheSchemaAndSettles(_ schema: SudoSOSTestSchema) throws {
        let db = try TemporaryDatabase.create(schema: schema)
        defer { db.drop() }
        let names = Names(schema)
        // The template is the schema it claims: its newest migration and its tables.
        let newest = try db.sql(#"SELECT name FROM migrations ORDER BY "timestamp" DESC, id DESC LIMIT 1"#)
        #expect(newest == (schema == .oldest ? "InitialSQLMigration1743601882766" : "AddProductSelfServiceToUser1785401380818"))
        try Self.seed(db, names)

        let first = try Self.once(db)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try db.sql(#"SELECT type, count(*) FROM "user" GROUP BY type ORDER BY type"#)
            == "INTEGRATION|2\nMEMBER|14\nORGAN|6", "Otto's bad address costs the address, not the account")
        #expect(try db.sql("SELECT count(*) FROM ldap_authenticator") == "22")
        #expect(try db.sql("SELECT count(*) FROM \(names.memberships)") == "15")
        #expect(try db.sql("SELECT count(*) FROM assigned_role") == "8")
        #expect(try db.sql(#"SELECT count(*) FROM \#(names.members) WHERE "\#(names.memberNumber)" = 10002"#) == "1")
        #expect(try db.sql(
            #"SELECT m."\#(names.memberNumber)" FROM \#(names.members) m JOIN "user" u ON u.id = m."userId" WHERE u."firstName" = 'Anna'"#)
            == "10001")
        // Organs and service accounts need no terms of service; new members do.
        if names.tosRequired {
            #expect(try Self.flag(db, "tosRequired", of: "Bestuur") == "no")
            #expect(try Self.flag(db, "productSelfService", of: "Bestuur") == "no")
            #expect(try Self.flag(db, "tosRequired", of: "Anna") == "yes")
            #expect(try db.sql(#"SELECT count(*) FROM "user" WHERE type IN ('ORGAN', 'INTEGRATION') AND "tosRequired""#) == "0")
            #expect(try Self.flag(db, "tosRequired", of: "Bram") == "yes", "Bram's own state is kept")
        } else {
            #expect(try db.sql(#"SELECT type, "acceptedToS" FROM "user" WHERE "firstName" = 'Bestuur'"#) == "ORGAN|NOT_REQUIRED")
            #expect(try db.sql(#"SELECT "acceptedToS" FROM "user" WHERE "firstName" = 'Anna'"#) == "NOT_ACCEPTED")
            #expect(try db.sql(#"SELECT "acceptedToS" FROM "user" WHERE "firstName" = 'Bram'"#) == "ACCEPTED")
        }
        let bac = try db.sql(#"SELECT id FROM "user" WHERE "firstName" = 'BAC – Borrel Activiteiten Commissie'"#)
        #expect(try db.sql(#"SELECT count(*) FROM \#(names.memberships) WHERE "\#(names.organ)" = \#(bac)"#) == "5")
        if schema == .newest {
            #expect(try db.sql(#"SELECT "index" FROM organ_membership WHERE "organId" = \#(bac) ORDER BY "index""#)
                == "0\n1\n2\n3\n4")
        }

        // Nothing changed in the directory: the second run writes nothing.
        let settled = try Self.state(db, names)
        let second = try Self.once(db)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("changes: none"), "\(second.stderr)")
        #expect(try Self.state(db, names) == settled)

        // The backend marked an organ as needing the terms of service: the run puts it back,
        // in the schema's own column, past the optimistic check of the value it read.
        let board = try db.sql(#"SELECT id FROM "user" WHERE "firstName" = 'Bestuur'"#)
        let version = try db.sql(#"SELECT version FROM "user" WHERE id = \#(board)"#)
        try db.sql(names.tosRequired
            ? #"UPDATE "user" SET "tosRequired" = true WHERE id = \#(board)"#
            : #"UPDATE "user" SET "acceptedToS" = 'ACCEPTED' WHERE id = \#(board)"#)
        let third = try Self.once(db)
        #expect(third.status == 0, "\(third.stderr)")
        #expect(try db.sql(#"SELECT version FROM "user" WHERE id = \#(board)"#) == String(Int(version)! + 1))
        #expect(try names.tosRequired
            ? Self.flag(db, "tosRequired", of: "Bestuur") == "no"
            : db.sql(#"SELECT "acceptedToS" FROM "user" WHERE id = \#(board)"#) == "NOT_REQUIRED")
        #expect(try db.sql("SELECT count(*) FROM sudosos_sync.audit WHERE action = 'updated'") == "1")
    }

    /// A needed column is gone (here `user.canGoIntoDebt` on the newest schema): one line naming
    /// the table, the column and the newest migration recorded; exit 78; nothing written.
    @Test func theBinaryRefusesASchemaMissingANeededColumn() throws {
        let db = try TemporaryDatabase.create(schema: .newest)
        defer { db.drop() }
        let names = Names(.newest)
        try Self.seed(db, names)
        try db.sql(#"ALTER TABLE "user" DROP COLUMN "canGoIntoDebt""#)
        let before = try Self.state(db, names)
        let refused = try Self.once(db)
        #expect(refused.status == 78, "\(refused.stderr)")
        let lines = (refused.stdout + refused.stderr).split(separator: "\n").filter {
            $0.contains("table user has no column canGoIntoDebt")
        }
        #expect(!lines.isEmpty, "\(refused.stderr)")
        #expect(lines.allSatisfy { $0.contains("newest migration recorded: AddProductSelfServiceToUser1785401380818") })
        #expect(try Self.state(db, names) == before)
        #expect(try db.sql("SELECT count(*) FROM sudosos_sync.audit") == "0")
        #expect(try db.sql("SELECT outcome FROM sudosos_sync.run") == "failure")
    }
}
