import Foundation
import Logging
import Testing

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
