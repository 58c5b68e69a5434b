import Foundation
import Logging
import Testing

import GEWISDBSource
import SudoSOSStore
import SyncEngine
import TestKit

/// A throwaway SudoSOS database with the users of `fixtures/gewisdb/members.json` linked to
/// their member numbers, balances set up through SudoSOS's own tables, and a store on it.
struct SyncFixture {
    let engine: Engine
    let db: TemporaryDatabase
    let store: any SudoSOSDatabase
    /// Member number → user id.
    var users: [Int: Int] = [:]

    /// The moment the tests run "at": members expiring in 2024 are expired, 2099 are valid.
    static let now = try! Date("2026-11-25T12:00:00+01:00", strategy: .iso8601)

    init(_ engine: Engine = .postgres, allowDelete: String? = "true") throws {
        self.engine = engine
        db = try TemporaryDatabase.create(engine)
        switch engine {
        case .postgres: store = PostgresStore(url: db.url, connectTimeout: .seconds(5), logger: Logger(label: "test.store"))
        case .mariadb: store = try MariaDBStore(url: db.url, connectTimeout: .seconds(5))
        }
        // (member number, firstName, lastName, email, ofAge) as stored before the first run.
        let rows: [(Int, String, String, String, Bool)] = [
            (8000, "Tim", "Teststudent", "old@example.org", false),  // update four fields
            (8001, "Anna", "Jansen", "anna@example.org", false),  // email null: kept; in step
            (8002, "Bram", "Bakker", "bram@example.org", true),  // expired, balance 0 (cache + newer purchase): delete
            (8003, "Cees", "Visser", "", false),  // deleted, balance 5.00 by a transfer: close + notice
            (8004, "Dirk", "Berg", "dirk@example.org", false),  // no optional fields: lastName only
            (8005, "Eva", "Smit", "eva@example.org", true),  // expiration unparsable: rejected
            (8006, "Frank", "de Vries", "frank@example.org", true),  // given name too long: rejected
            (8007, "Gert", "Mulder-Oud", "gert@example.org", false),  // invalid e-mail: address kept, the rest applied
            (8008, "Hanna", "Bos", "hanna@example.org", true),  // garbage answer: rejected
            (8009, "Ivo", "Kok", "ivo@example.org", true),  // flaky: retried, in step
            (8010, "Jan", "Dekker", "jan@example.org", true),  // expired, cached balance -2.50: close + notice
            (8011, "Karin", "Peters", "karin@example.org", true),  // expiration missing: rejected
            (9999, "Nobody", "Known", "nobody@example.org", true),  // 204, balance 0: delete
        ]
        for (lidnr, first, last, email, ofAge) in rows {
            let id = try db.sql(
                """
                INSERT INTO "user" (version, "firstName", "lastName", type, email, active, "ofAge", "canGoIntoDebt")
                VALUES (1, '\(first)', '\(last)', 'MEMBER', '\(email)', true, \(ofAge), true) RETURNING id
                """)
            users[lidnr] = Int(id)!
            try db.sql(#"INSERT INTO member_user ("userId", "memberId") VALUES (\#(id), \#(lidnr))"#)
        }
        if let allowDelete {
            try db.sql(
                #"INSERT INTO server_setting (version, "key", "value") VALUES (1, 'allowGewisSyncDelete', '\#(allowDelete)')"#)
        }
        // A seller, a product at 2.50, and the balances.
        let organ = try db.sql(
            #"INSERT INTO "user" (version, "firstName", type, active) VALUES (1, 'Bar', 'ORGAN', true) RETURNING id"#)
        try db.insertCatalog(owner: Int(organ)!, productId: 1, prices: [250])
        let bram = users[8002]!, cees = users[8003]!, jan = users[8010]!
        // Bram: 10.00 deposited and cached, then four beers bought after the cache: 0.
        let deposit = try db.sql(
            #"INSERT INTO transfer (version, "createdAt", "toId", "amountInclVat") VALUES (1, '2026-01-01', \#(bram), 1000) RETURNING id"#)
        try db.sql(#"INSERT INTO balance (version, "userId", amount, "lastTransferId") VALUES (1, \#(bram), 1000, \#(deposit))"#)
        let purchase = try db.sql(
            #"INSERT INTO "transaction" (version, "createdAt", "fromId", "createdById") VALUES (1, '2026-02-01', \#(bram), \#(bram)) RETURNING id"#)
        let sub = try db.sql(
            #"INSERT INTO sub_transaction (version, "toId", "containerContainerId", "containerRevision", "transactionId") VALUES (1, \#(organ), 1, 1, \#(purchase)) RETURNING id"#)
        try db.sql(
            #"INSERT INTO sub_transaction_row (version, "productProductId", "productRevision", amount, "subTransactionId") VALUES (1, 1, 1, 4, \#(sub))"#)
        // Cees: 5.00 deposited, no cache.
        try db.sql(#"INSERT INTO transfer (version, "toId", "amountInclVat") VALUES (1, \#(cees), 500)"#)
        // Jan: a cached debt of 2.50.
        try db.sql(#"INSERT INTO balance (version, "userId", amount) VALUES (1, \#(jan), -250)"#)
    }

    func drop() { db.drop() }

    func runner(maxDeletions: Int = 50, maxRatio: Double = 1.0) -> SyncRunner {
        SyncRunner(
            database: store, threshold: DeletionThreshold(maxDeletions: maxDeletions, maxRatio: maxRatio),
            logger: Logger(label: "test.runner"))
    }

    /// The fixture's garbage member (8008) is a failed request, one in 13: under the 0.1 here.
    func service(_ fake: FakeGEWISDB, maxFailedRatio: Double = 0.1) -> GEWISDBSyncService {
        GEWISDBSyncService(
            settings: GEWISDBSettings(
                apiURL: fake.apiURL, apiKey: fake.apiKey, concurrency: 4, requestTimeout: .seconds(5),
                maxFailedRatio: maxFailedRatio),
            now: { SyncFixture.now })
    }

    /// `firstName|lastName|email|active|ofAge|deleted|canGoIntoDebt|version` of a member's user
    /// (booleans as `t`/`f` on both engines).
    func row(_ lidnr: Int) throws -> String {
        func flag(_ column: String) -> String { #"CASE WHEN "\#(column)" THEN 't' ELSE 'f' END"# }
        return try db.sql(
            #"SELECT "firstName", "lastName", email, \#(flag("active")), \#(flag("ofAge")), \#(flag("deleted")), \#(flag("canGoIntoDebt")), version FROM "user" WHERE id = \#(users[lidnr]!)"#
        )
    }

    /// Our audit and run tables.
    var audit: String { engine == .postgres ? "sudosos_sync.audit" : "sudosos_sync_audit" }
    var runs: String { engine == .postgres ? "sudosos_sync.run" : "sudosos_sync_run" }

    /// Drops a SudoSOS table others point at.
    func dropTable(_ table: String) throws {
        try db.sql(engine == .postgres ? "DROP TABLE \(table) CASCADE" : "SET FOREIGN_KEY_CHECKS = 0; DROP TABLE \(table)")
    }

    /// Sum of all user versions: unchanged means nothing was written to `"user"`.
    func versions() throws -> Int { Int(try db.sql(#"SELECT sum(version) FROM "user""#))! }

    func auditCount() throws -> Int {
        Int(try db.sql("SELECT count(*) FROM \(audit)")) ?? 0
    }
}

/// The `gewisdb` service end to end: a real PostgreSQL and a real `gewisdb-fake` process.
@Suite(.serialized) struct GEWISDBSyncTests {
    @Test(arguments: Engine.allCases) func firstRunAppliesExactlyTheExpectedChangesAndSecondRunNone(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine)
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let service = fixture.service(fake)

        let first = await fixture.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(first.exitCode == .success, "\(first.summary.error ?? "")")
        #expect(first.summary.changes["updated"] == 3)
        #expect(first.summary.changes["deleted"] == 2)
        #expect(first.summary.changes["deactivated"] == 2)
        #expect(first.summary.rejected == ["unparsable": 2, "too_long": 1, "invalid_email": 1, "missing_attribute": 1])
        #expect(first.summary.entities.passed == 9)
        #expect(first.summary.entities.failed == 4)
        #expect(first.summary.entities.skipped == 0)

        #expect(try fixture.row(8000) == "Timo|de Teststudent|timo@example.org|t|t|f|t|2")
        #expect(try fixture.row(8001) == "Anna|Jansen|anna@example.org|t|f|f|t|1", "email null keeps the address")
        #expect(try fixture.row(8002) == "Bram|Bakker|bram@example.org|f|t|t|f|2", "zero balance: deleted")
        #expect(try fixture.row(8003) == "Cees|Visser||f|f|f|f|2", "balance 5.00: closed, not deleted")
        #expect(try fixture.row(8004) == "Dirk|van den Berg|dirk@example.org|t|f|f|t|2", "absent fields kept")
        #expect(try fixture.row(8007) == "Gert|Mulder|gert@example.org|t|t|f|t|2", "bad address dropped, the rest applied")
        for rejected in [8005, 8006, 8008, 8011] {
            #expect(try fixture.row(rejected).hasSuffix("|t|t|f|t|1"), "member \(rejected) left alone")
        }
        #expect(try fixture.row(8009) == "Ivo|Kok|ivo@example.org|t|t|f|t|1", "flaky answer retried, in step")
        #expect(try fixture.row(8010) == "Jan|Dekker|jan@example.org|f|t|f|f|2", "debt: closed, not deleted")
        #expect(try fixture.row(9999) == "Nobody|Known|nobody@example.org|f|t|t|f|2", "unknown, zero: deleted")
        // The closing notices are in the audit trail, one per closed-not-deleted member.
        let notices = try fixture.db.sql("SELECT count(*) FROM \(fixture.audit) WHERE action = 'notice'")
        #expect(notices == "2")
        #expect(try fixture.auditCount() == 9)
        // The member_user rows are kept.
        #expect(try fixture.db.sql("SELECT count(*) FROM member_user") == "13")

        let versions = try fixture.versions()
        let second = await fixture.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(second.exitCode == .success)
        #expect(second.plan?.changes.isEmpty == true, "second run plans nothing: \(second.plan?.changes ?? [])")
        #expect(try fixture.versions() == versions)
        #expect(try fixture.auditCount() == 9, "no second notice")
    }

    @Test(arguments: Engine.allCases) func dryRunWritesNothing(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine)
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let versions = try fixture.versions()
        let result = await fixture.runner().run(fixture.service(fake), dryRun: true, reporter: SilentReporter())
        #expect(result.exitCode == .success)
        #expect((result.plan?.changes.count ?? 0) == 9, "the same plan, only printed")
        #expect(try fixture.versions() == versions)
        #expect(try fixture.auditCount() == 0)
    }

    @Test(arguments: Engine.allCases) func closesOnlyWhenAllowGewisSyncDeleteIsTrue(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine, allowDelete: "false")
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let result = await fixture.runner().run(fixture.service(fake), dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .success)
        #expect(result.summary.changes["updated"] == 3)
        #expect(result.summary.changes["deleted"] == 0)
        #expect(result.summary.changes["deactivated"] == 0)
        for down in [8002, 8003, 8010, 9999] {
            #expect(try fixture.row(down).hasSuffix("|f|t|1"), "member \(down) not closed")
        }
        #expect(result.plan?.warnings.contains { $0.contains("allowGewisSyncDelete") } == true)
    }

    @Test(arguments: Engine.allCases) func deletionThresholdGuardsTheCloses(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine)
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let versions = try fixture.versions()
        // 4 closes of 13 members is over 10%.
        let result = await fixture.runner(maxRatio: 0.10).run(fixture.service(fake), dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .refused)
        #expect(result.summary.outcome == .refused)
        #expect(try fixture.versions() == versions)
    }

    @Test(arguments: Engine.allCases) func syncPausedWritesNothing(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine)
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture, "--sync-paused"])
        defer { fake.stop() }
        let versions = try fixture.versions()
        let result = await fixture.runner().run(fixture.service(fake), dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .temporary)
        #expect(result.summary.outcome == .notReady)
        #expect(try fixture.versions() == versions)
        let stats = try await fake.stats()
        #expect(stats["member_requests"] == 0, "no member is read while GEWISDB is paused")
    }

    @Test(arguments: Engine.allCases) func failuresAboveTheRatioWriteNothing(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine)
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture, "--fail-ratio", "0.5"])
        defer { fake.stop() }
        let versions = try fixture.versions()
        let result = await fixture.runner().run(fixture.service(fake), dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .failure)
        #expect(result.summary.error?.contains("max_failed_ratio") == true)
        #expect(try fixture.versions() == versions)
        #expect(try fixture.db.sql("SELECT outcome FROM \(fixture.runs)") == "failure")
    }

    @Test(arguments: Engine.allCases) func missingBalanceTablesNeverDelete(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine)
        defer { fixture.drop() }
        try fixture.dropTable("balance")
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let result = await fixture.runner().run(fixture.service(fake), dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .success)
        #expect(result.summary.changes["deleted"] == 0)
        #expect(result.summary.changes["deactivated"] == 4, "unknown balance: closed, never deleted")
    }
}
