import SyncEngine

/// SudoSOS's balance of a set of users in one statement, as its `BalanceService.getBalances`
/// computes it: the cached `balance` row plus every transaction and transfer created after the
/// cached ones (`lastTransactionId` / `lastTransferId`, compared by `createdAt`). A purchase is
/// `sub_transaction_row.amount × product_revision.priceInclVat` cents, taken from the buyer
/// (`transaction.fromId`) and given to the seller (`sub_transaction.toId`); a transfer moves
/// `amountInclVat` from `fromId` to `toId` (either may be null: deposits, payouts).
/// The statement is shared by both engines (`SharedSQL`).
///
/// Where any of these tables is missing, every balance is `.unknown` (never guessed to be
/// zero, so nobody is deleted on a guess).
enum Balances {
    /// The tables the query reads.
    static let tables = SudoSOSSchema.balanceTables

    /// One row per id of `userIds`: `id`, `cents`. The same statement on both engines.
    static func sql(_ userIds: [Int]) -> SharedSQL {
        """
        WITH ids AS (SELECT DISTINCT v AS id FROM \(ints: userIds) AS l),
        cache AS (
          SELECT b."userId", b.amount, t."createdAt" AS "lastTransactionDate", tr."createdAt" AS "lastTransferDate"
          FROM balance b
          LEFT JOIN "transaction" t ON t.id = b."lastTransactionId"
          LEFT JOIN transfer tr ON tr.id = b."lastTransferId"
          WHERE b."userId" IN (SELECT id FROM ids)
        ),
        moves AS (
          SELECT t."fromId" AS id, -\(bigint: #"str.amount * pr."priceInclVat""#) AS cents
          FROM "transaction" t
          JOIN sub_transaction st ON st."transactionId" = t.id
          JOIN sub_transaction_row str ON str."subTransactionId" = st.id
          JOIN product_revision pr ON pr."productId" = str."productProductId" AND pr.revision = str."productRevision"
          LEFT JOIN cache c ON c."userId" = t."fromId"
          WHERE t."fromId" IN (SELECT id FROM ids)
            AND (c."lastTransactionDate" IS NULL OR t."createdAt" > c."lastTransactionDate")
          UNION ALL
          SELECT st."toId", \(bigint: #"str.amount * pr."priceInclVat""#)
          FROM sub_transaction st
          JOIN "transaction" t ON t.id = st."transactionId"
          JOIN sub_transaction_row str ON str."subTransactionId" = st.id
          JOIN product_revision pr ON pr."productId" = str."productProductId" AND pr.revision = str."productRevision"
          LEFT JOIN cache c ON c."userId" = st."toId"
          WHERE st."toId" IN (SELECT id FROM ids)
            AND (c."lastTransactionDate" IS NULL OR t."createdAt" > c."lastTransactionDate")
          UNION ALL
          SELECT tr."fromId", -\(bigint: #"tr."amountInclVat""#)
          FROM transfer tr LEFT JOIN cache c ON c."userId" = tr."fromId"
          WHERE tr."fromId" IN (SELECT id FROM ids) AND (c."lastTransferDate" IS NULL OR tr."createdAt" > c."lastTransferDate")
          UNION ALL
          SELECT tr."toId", \(bigint: #"tr."amountInclVat""#)
          FROM transfer tr LEFT JOIN cache c ON c."userId" = tr."toId"
          WHERE tr."toId" IN (SELECT id FROM ids) AND (c."lastTransferDate" IS NULL OR tr."createdAt" > c."lastTransferDate")
        ),
        sums AS (SELECT id, sum(cents) AS cents FROM moves GROUP BY id)
        SELECT ids.id, \(bigint: "COALESCE(c.amount, 0) + COALESCE(s.cents, 0)") AS cents
        FROM ids
        LEFT JOIN cache c ON c."userId" = ids.id
        LEFT JOIN sums s ON s.id = ids.id
        """
    }

    /// Balances of `userIds`: known cents when the tables exist, `.unknown` for all otherwise.
    static func read(_ userIds: [Int], session: any SQLSession) throws -> [Int: Balance] {
        guard !userIds.isEmpty, try tablesPresent(session) else {
            return Dictionary(uniqueKeysWithValues: userIds.map { ($0, Balance.unknown) })
        }
        return try compute(userIds, session: session)
    }

    /// Whether every balance table exists.
    private static func tablesPresent(_ session: any SQLSession) throws -> Bool {
        let check = session.dialect.tablesPresent(tables)
        let present = try session.query(check.sql, check.parameters, what: "looking for SudoSOS's balance tables")
        guard let row = present.rows.first, try row.optionalString("ok") != nil else { return false }
        return try row.bool("ok")
    }

    /// The balances of `userIds` (the tables exist).
    private static func compute(_ userIds: [Int], session: any SQLSession) throws -> [Int: Balance] {
        var result = Dictionary(uniqueKeysWithValues: userIds.map { ($0, Balance.unknown) })
        let rows = try session.query(sql(userIds), what: "computing balances")
        for row in rows.rows {
            result[try row.int("id")] = .cents(Int(try row.int64("cents")))
        }
        return result
    }

    /// Locks the rows of the users `plan` deletes, then their cached balance rows (`FOR UPDATE`;
    /// a purchase or transfer for them checks its foreign key with a shared lock on the user's
    /// row, so it waits for this transaction: KEY SHARE on PostgreSQL, S on InnoDB) and
    /// computes their balances inside the caller's transaction. A deletion whose balance is not
    /// exactly zero now becomes a close without delete (`MemberClosing.checkingDeletions`).
    /// Call first in the apply transaction: on MariaDB's REPEATABLE READ the read view is taken
    /// by the first plain read, which then comes after the locks. The same statements on both
    /// engines, four whatever the number of deletions.
    static func checkingDeletions(_ plan: Plan, session: any SQLSession) throws -> Plan {
        let deleted = MemberClosing.deletedUsers(in: plan)
        guard !deleted.isEmpty else { return plan }
        try session.query(
            #"SELECT id FROM "user" WHERE id IN (SELECT v FROM \#(ints: deleted) AS l) ORDER BY id FOR UPDATE"#,
            what: "locking the users to delete")
        var balances = Dictionary(uniqueKeysWithValues: deleted.map { ($0, Balance.unknown) })
        if try tablesPresent(session) {
            try session.query(
                #"SELECT "userId" FROM balance WHERE "userId" IN (SELECT v FROM \#(ints: deleted) AS l) FOR UPDATE"#,
                what: "locking the balances of the users to delete")
            balances = try compute(deleted, session: session)
        }
        return MemberClosing.checkingDeletions(plan, balancesNow: balances)
    }
}
