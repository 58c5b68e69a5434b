import Foundation
import Logging
import Testing

import GEWISDBSource
import SudoSOSStore
import SyncEngine
import TestKit

/// The balances the store reads for the gewisdb service, computed as SudoSOS's BalanceService
/// does: cache plus newer transactions and transfers, buyer and seller side, on both engines.
@Suite struct BalanceTests {
    @Test(arguments: Engine.allCases) func cachePlusNewerTransactionsAndTransfers(_ engine: Engine) async throws {
        let db = try TemporaryDatabase.create(engine)
        defer { db.drop() }
        func user(_ name: String) throws -> Int {
            Int(try db.sql(#"INSERT INTO "user" (version, "firstName", type) VALUES (1, '\#(name)', 'MEMBER') RETURNING id"#))!
        }
        let nothing = try user("Nothing"), buyer = try user("Buyer"), seller = try user("Seller"), mover = try user("Mover")
        try db.insertCatalog(owner: seller, productId: 7, prices: [100, 250])
        func purchase(_ at: String, revision: Int, amount: Int) throws -> Int {
            let t = try db.sql(
                #"INSERT INTO "transaction" (version, "createdAt", "fromId", "createdById") VALUES (1, '\#(at)', \#(buyer), \#(buyer)) RETURNING id"#)
            let st = try db.sql(
                #"INSERT INTO sub_transaction (version, "toId", "containerContainerId", "containerRevision", "transactionId") VALUES (1, \#(seller), 1, 1, \#(t)) RETURNING id"#)
            try db.sql(
                #"INSERT INTO sub_transaction_row (version, "productProductId", "productRevision", amount, "subTransactionId") VALUES (1, 7, \#(revision), \#(amount), \#(st))"#)
            return Int(t)!
        }
        // Buyer: cached 3.00 up to a January purchase of 1 × 1.00 (already in the cache), then
        // 2 × 2.50 in March: 3.00 − 5.00 = −2.00. The seller has no cache: +1.00 + 5.00.
        let january = try purchase("2026-01-10", revision: 1, amount: 1)
        _ = try purchase("2026-03-10", revision: 2, amount: 2)
        try db.sql(#"INSERT INTO balance (version, "userId", amount, "lastTransactionId") VALUES (1, \#(buyer), 300, \#(january))"#)
        // Mover: 10.00 deposited (no sender), 1.00 paid out (no receiver).
        try db.sql(#"INSERT INTO transfer (version, "toId", "amountInclVat") VALUES (1, \#(mover), 1000)"#)
        try db.sql(#"INSERT INTO transfer (version, "fromId", "amountInclVat") VALUES (1, \#(mover), 100)"#)

        let store: any SudoSOSDatabase = engine == .postgres
            ? PostgresStore(url: db.url, connectTimeout: .seconds(5), logger: Logger(label: "test.store"))
            : try MariaDBStore(url: db.url, connectTimeout: .seconds(5))
        let snapshot = try await store.snapshot(SnapshotRequest(userTypes: [.member], includeBalances: true))
        #expect(snapshot.balance(of: nothing) == .cents(0))
        #expect(snapshot.balance(of: buyer) == .cents(-200))
        #expect(snapshot.balance(of: seller) == .cents(600))
        #expect(snapshot.balance(of: mover) == .cents(900))
    }

    @Test(arguments: Engine.allCases) func missingTablesMakeEveryBalanceUnknown(_ engine: Engine) async throws {
        let db = try TemporaryDatabase.create(engine)
        defer { db.drop() }
        let id = Int(try db.sql(#"INSERT INTO "user" (version, "firstName", type) VALUES (1, 'A', 'MEMBER') RETURNING id"#))!
        try db.sql("DROP TABLE sub_transaction_row")  // nothing points at it
        let store: any SudoSOSDatabase = engine == .postgres
            ? PostgresStore(url: db.url, connectTimeout: .seconds(5), logger: Logger(label: "test.store"))
            : try MariaDBStore(url: db.url, connectTimeout: .seconds(5))
        let snapshot = try await store.snapshot(SnapshotRequest(userTypes: [.member], includeBalances: true))
        #expect(snapshot.balance(of: id) == .unknown)
    }
}

/// A gewisdb service that, after the snapshot and before the apply, writes a purchase and a
/// transfer through SudoSOS's own tables (as the point of sale would while the run fetches).
struct WritesBetweenSnapshotAndApply: SyncService {
    let inner: GEWISDBSyncService
    let write: @Sendable () throws -> Void
    var name: String { inner.name }
    var snapshotRequest: SnapshotRequest { inner.snapshotRequest }
    func shouldSync(_ user: User, in snapshot: Snapshot) -> Bool { inner.shouldSync(user, in: snapshot) }
    func prepare(context: RunContext) async throws { try await inner.prepare(context: context) }
    func fetch(targeted: [User], snapshot: Snapshot, context: RunContext) async throws -> GEWISDBAnswers {
        let answers = try await inner.fetch(targeted: targeted, snapshot: snapshot, context: context)
        try write()
        return answers
    }
    func plan(source: GEWISDBAnswers, targeted: [User], snapshot: Snapshot) -> Plan {
        inner.plan(source: source, targeted: targeted, snapshot: snapshot)
    }
}

/// Issue 11 item 2: the balance that decides a deletion is computed inside the apply
/// transaction with the user's row locked, not taken from the snapshot.
@Suite(.serialized) struct BalanceAtApplyTests {
    @Test(arguments: Engine.allCases)
    func aPurchaseOrTransferAfterTheSnapshotTurnsTheDeleteIntoAClose(_ engine: Engine) async throws {
        let fixture = try SyncFixture(engine)
        defer { fixture.drop() }
        let fake = try await FakeGEWISDB.start(["--members", FakeGEWISDB.fixture])
        defer { fake.stop() }
        let bram = fixture.users[8002]!, nobody = fixture.users[9999]!
        let db = fixture.db
        // Both have a zero balance at the snapshot; Bram buys a beer (2.50), Nobody gets 1.00.
        let service = WritesBetweenSnapshotAndApply(inner: fixture.service(fake)) {
            let organ = try db.sql(#"SELECT id FROM "user" WHERE type = 'ORGAN' LIMIT 1"#)
            let purchase = try db.sql(
                #"INSERT INTO "transaction" (version, "fromId", "createdById") VALUES (1, \#(bram), \#(bram)) RETURNING id"#)
            let sub = try db.sql(
                #"INSERT INTO sub_transaction (version, "toId", "containerContainerId", "containerRevision", "transactionId") VALUES (1, \#(organ), 1, 1, \#(purchase)) RETURNING id"#)
            try db.sql(
                #"INSERT INTO sub_transaction_row (version, "productProductId", "productRevision", amount, "subTransactionId") VALUES (1, 1, 1, 1, \#(sub))"#)
            try db.sql(#"INSERT INTO transfer (version, "toId", "amountInclVat") VALUES (1, \#(nobody), 100)"#)
        }
        let result = await fixture.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .success, "\(result.summary.error ?? "")")
        #expect(result.summary.changes["deleted"] == 0, "\(result.summary.changes)")
        #expect(result.summary.changes["deactivated"] == 4)
        #expect(try fixture.row(8002) == "Bram|Bakker|bram@example.org|f|t|f|f|2", "closed, not deleted")
        #expect(try fixture.row(9999) == "Nobody|Known|nobody@example.org|f|t|f|f|2", "closed, not deleted")
        // The audit row says why, and the report (the plan as applied) shows it.
        func reason(_ id: Int) throws -> String {
            try db.sql(#"SELECT reason FROM \#(fixture.audit) WHERE action = 'deactivated' AND row_key = '{"id": \#(id)}'"#)
        }
        let reasons = try reason(bram) + " | " + reason(nobody)
        #expect(reasons.contains("at apply time the balance is -€2.50"), "\(reasons)")
        #expect(reasons.contains("at apply time the balance is €1.00"), "\(reasons)")
        #expect(result.plan?.warnings.contains { $0.contains("2 deletion(s) became closes") } == true)
        let report = PlanReport(result).text()
        #expect(report.contains("at apply time the balance is -€2.50"), "\(report)")
        // Both were active: the closing notice is recorded for them too.
        #expect(try db.sql("SELECT count(*) FROM \(fixture.audit) WHERE action = 'notice'") == "4")
    }
}
