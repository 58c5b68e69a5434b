import Foundation
import SyncEngine
import TestKit
import Testing

/// One verdict per user across the services (issue 11 item 1), on the real binary: `sudosos-sync
/// once ldap` against slapd and Samba AD and `sudosos-sync once gewisdb` against `gewisdb-fake`,
/// one database, in both orders of the two services' runs: PostgreSQL with both directories,
/// MariaDB with slapd (the verdicts are the store's; the directory's part is the same).
@Suite(.serialized) struct CrossServiceTests {
    struct Case: CustomStringConvertible, Sendable {
        var directory: TestDirectory, order: Order, engine: Engine
        var description: String { "\(directory), \(order), \(engine)" }
    }

    static let cases: [Case] =
        [TestDirectory.slapd, .activeDirectory].flatMap { d in Order.allCases.map { Case(directory: d, order: $0, engine: .postgres) } }
        + Order.allCases.map { Case(directory: .slapd, order: $0, engine: .mariadb) }

    enum Order: String, CaseIterable, CustomStringConvertible, Sendable {
        case ldapFirst, gewisdbFirst
        var description: String { rawValue }
        var services: [String] { self == .ldapFirst ? ["ldap", "gewisdb"] : ["gewisdb", "ldap"] }
    }

    /// p1: expired in GEWISDB, still in the directory → not closed, still bound.
    /// p2: gone from the directory, valid in GEWISDB → keeps its binding, active.
    /// p3: gone from both → closed (zero balance: deleted) and unbound.
    @Test(arguments: cases)
    func aMemberIsClosedOnlyWhenNeitherServiceVouches(_ c: Case) async throws {
        let (directory, order) = (c.directory, c.order)
        let scratch = try ScratchOrganisation.create(
            directory,
            people: [
                .init(key: "p1", given: "Een", sn: "Verlopen", employee: "7001"),
                .init(key: "p2", given: "Twee", sn: "Weg", employee: "7002"),
                .init(key: "p3", given: "Drie", sn: "Beide", employee: "7003"),
            ],
            groups: [
                .init(key: "A", ou: "Shared", display: "Organ A", members: ["p1", "p2", "p3"]),
                .init(key: "SudoSOS Service Accounts", ou: "Groups", members: []),
            ])
        defer { scratch.destroy() }
        let f = try LDAPRunFixture(c.engine)
        defer { f.drop() }
        try f.db.sql(#"INSERT INTO server_setting (version, "key", "value") VALUES (1, 'allowGewisSyncDelete', 'true')"#)

        let work = NSTemporaryDirectory() + "cross-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let members = work + "/members.json"
        func writeMembers(expired: Set<Int>) throws {
            let people = [(7001, "Een", "Verlopen"), (7002, "Twee", "Weg"), (7003, "Drie", "Beide")]
            let list = people.map { lidnr, given, family -> [String: Any] in
                [
                    "lidnr": lidnr, "given_name": given, "middle_name": "", "family_name": family, "deleted": false,
                    "hidden": false, "expiration": expired.contains(lidnr) ? "2020-07-01T00:00:00+02:00" : "2099-07-01T00:00:00+02:00",
                ]
            }
            let data = try JSONSerialization.data(withJSONObject: ["healthy": true, "sync_paused": false, "members": list])
            try data.write(to: URL(fileURLWithPath: members), options: .atomic)
        }
        try writeMembers(expired: [])
        let fake = try await FakeGEWISDB.start(["--members", members])
        defer { fake.stop() }

        let config = work + "/config.yaml"
        try """
            database:
              url: \(f.db.url)
            services:
              ldap:
                enabled: true
                interval: 15m
                max_deletions: 50
                max_deletion_ratio: 1.0
            \(try scratch.ldapYAML(indent: 4))
              gewisdb:
                enabled: true
                interval: 1d
                max_deletions: 50
                max_deletion_ratio: 1.0
                api_url: '\(fake.apiURL)'
                api_key: '\(fake.apiKey)'
                concurrency: 2
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let environment = ["PATH": "/usr/bin:/bin", "LDAP_BIND_PW": try directory.env("BIND_PW")]
        let binary = TestEnvironment.executable("sudosos-sync")
        func once(_ service: String) async throws -> ProcessOutput {
            let result = try await runChild(binary, ["once", service, "--config", config], environment: environment, timeout: .seconds(60))
            #expect(result.status == 0, "\(service): \(result.stdout)\(result.stderr)")
            return result
        }

        // Both services vouch for everyone: accounts created, bound, linked, verdicts recorded.
        _ = try await once("ldap")
        _ = try await once("gewisdb")
        let (p1, p2, p3) = (try f.userId("Een"), try f.userId("Twee"), try f.userId("Drie"))
        let verdicts = c.engine == .postgres ? "sudosos_sync.verdict" : "sudosos_sync_verdict"
        #expect(try f.db.sql("SELECT \(f.agg("concat(service, ':', CASE WHEN vouches THEN 'true' ELSE 'false' END)", orderBy: "service")) FROM \(verdicts) WHERE user_id = \(p3)")
            == "gewisdb:true,ldap:true")

        // p1 and p3 expire in GEWISDB; p2 and p3 leave the directory.
        try writeMembers(expired: [7001, 7003])
        try await fake.reload()
        try scratch.delete("p2")
        try scratch.delete("p3")

        for service in order.services { _ = try await once(service) }

        func state(_ id: Int) throws -> String {
            func flag(_ column: String) -> String { "CASE WHEN u.\(column) THEN 'true' ELSE 'false' END" }
            return try f.db.sql(#"SELECT concat(\#(flag("active")), ',', \#(flag("deleted")), ',', (SELECT count(*) FROM ldap_authenticator a WHERE a."userId" = u.id)) FROM "user" u WHERE id = \#(id)"#)
        }
        #expect(try state(p1) == "true,false,1", "expired in GEWISDB but in the directory: not closed")
        #expect(try state(p2) == "true,false,1", "gone from the directory but valid in GEWISDB: binding kept")
        #expect(try state(p3) == "false,true,0", "gone from both: closed, deleted and unbound")
        #expect(try f.count("member_user") == 3, "member_user rows are kept")
        // Another round of both changes nothing more.
        let settled = try f.state()
        for service in order.services { _ = try await once(service) }
        #expect(try f.state() == settled)
    }
}
