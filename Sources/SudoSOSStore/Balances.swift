import SyncEngine

/// SudoSOS's balance of a set of users in one statement, as its `BalanceService.getBalances`
/// computes it: the cached `balance` row plus every transaction and transfer created after the
/// cached ones (`lastTransactionId` / `lastTransferId`, compared by `createdAt`). A purchase is
/// `sub_transaction_row.amount × product_revision.priceInclVat` cents, taken from the buyer
/// (`transaction.fromId`) and given to the seller (`sub_transaction.toId`); a transfer moves
/// `amountInclVat` from `fromId` to `toId` (either may be null: deposits, payouts).
///
/// Where any of these tables is missing, every balance is `.unknown` (never guessed to be
/// zero, so nobody is deleted on a guess).
enum Balances {
    /// The tables the query reads.
    static let tables = SudoSOSSchema.balanceTables

    /// `$1`: an int array of user ids. One row per id: `id`, `cents`.
    static let sql = #"""
        WITH ids AS (SELECT DISTINCT unnest($1::int[]) AS id),
        cache AS (
          SELECT b."userId", b.amount, t."createdAt" AS "lastTransactionDate", tr."createdAt" AS "lastTransferDate"
          FROM balance b
          LEFT JOIN "transaction" t ON t.id = b."lastTransactionId"
          LEFT JOIN transfer tr ON tr.id = b."lastTransferId"
          WHERE b."userId" = ANY($1::int[])
        ),
        moves AS (
          SELECT t."fromId" AS id, -(str.amount::bigint * pr."priceInclVat") AS cents
          FROM "transaction" t
          JOIN sub_transaction st ON st."transactionId" = t.id
          JOIN sub_transaction_row str ON str."subTransactionId" = st.id
          JOIN product_revision pr ON pr."productId" = str."productProductId" AND pr.revision = str."productRevision"
          LEFT JOIN cache c ON c."userId" = t."fromId"
          WHERE t."fromId" = ANY($1::int[])
            AND (c."lastTransactionDate" IS NULL OR t."createdAt" > c."lastTransactionDate")
          UNION ALL
          SELECT st."toId", str.amount::bigint * pr."priceInclVat"
          FROM sub_transaction st
          JOIN "transaction" t ON t.id = st."transactionId"
          JOIN sub_transaction_row str ON str."subTransactionId" = st.id
          JOIN product_revision pr ON pr."productId" = str."productProductId" AND pr.revision = str."productRevision"
          LEFT JOIN cache c ON c."userId" = st."toId"
          WHERE st."toId" = ANY($1::int[])
            AND (c."lastTransactionDate" IS NULL OR t."createdAt" > c."lastTransactionDate")
          UNION ALL
          SELECT tr."fromId", -tr."amountInclVat"::bigint
          FROM transfer tr LEFT JOIN cache c ON c."userId" = tr."fromId"
          WHERE tr."fromId" = ANY($1::int[]) AND (c."lastTransferDate" IS NULL OR tr."createdAt" > c."lastTransferDate")
          UNION ALL
          SELECT tr."toId", tr."amountInclVat"::bigint
          FROM transfer tr LEFT JOIN cache c ON c."userId" = tr."toId"
          WHERE tr."toId" = ANY($1::int[]) AND (c."lastTransferDate" IS NULL OR tr."createdAt" > c."lastTransferDate")
        ),
        sums AS (SELECT id, sum(cents) AS cents FROM moves GROUP BY id)
        SELECT ids.id, (COALESCE(c.amount, 0) + COALESCE(s.cents, 0))::bigint AS cents
        FROM ids
        LEFT JOIN cache c ON c."userId" = ids.id
        LEFT JOIN sums s ON s.id = ids.id
        """#

    /// Whether every table the query reads exists (`to_regclass` on the search path).
    static let tablesPresentSQL =
        "SELECT bool_and(to_regclass(name) IS NOT NULL) AS ok FROM unnest($1::text[]) AS name"

    /// Balances of `userIds`: known cents when the tables exist, `.unknown` for all otherwise.
    static func read(_ userIds: [Int], connection: PGConnection) throws -> [Int: Balance] {
        var result = Dictionary(uniqueKeysWithValues: userIds.map { ($0, Balance.unknown) })
        guard !userIds.isEmpty else { return result }
        let present = try connection.query(
            tablesPresentSQL, [PGValue.textArray(tables)], what: "looking for SudoSOS's balance tables")
        guard let row = present.rows.first, try row.bool("ok") else { return result }
        let rows = try connection.query(sql, [PGValue.intArray(userIds)], what: "computing balances")
        for row in rows.rows {
            result[try row.int("id")] = .cents(Int(try row.int64("cents")))
        }
        return result
    }
}
