/// SudoSOS fixture helpers for the integration tests (fixtures/sql/README.md).

/// Which of the fixtures' SudoSOS schemas a test database has (fixtures/sql/README.md).
public enum SudoSOSTestSchema: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The squashed initial migration 1743601882766.
    case oldest
    /// Every migration to May 2026 (1778769232000).
    case `default`
    /// The newest migration known (1785401380818): `tosRequired`, `productSelfService`.
    case newest

    /// The suffix of the harness variables naming this schema's template
    /// (`SUDOSOS_TEST_PG_TEMPLATE`, `SUDOSOS_TEST_PG_TEMPLATE_OLDEST`, ...).
    public var variableSuffix: String {
        switch self {
        case .oldest: return "_OLDEST"
        case .default: return ""
        case .newest: return "_NEWEST"
        }
    }

    public var description: String { rawValue }
}

extension TemporaryDatabase {
    /// What SudoSOS's foreign keys need before purchases can be recorded: a VAT group and a
    /// category (id 1), product `productId` owned by `owner` with one revision per price
    /// (revisions 1, 2, ...; cents), and container 1 with revision 1. Purchases then go in as
    /// `sub_transaction` ("containerContainerId", "containerRevision") = (1, 1). Once per
    /// database; plain SQL with double-quoted names (both engines' test clients take it).
    public func insertCatalog(owner: Int, productId: Int, prices: [Int]) throws {
        let revisions = prices.enumerated().map { n, price in
            "(1, \(productId), \(n + 1), 'Product \(productId)', \(price), 0, 1, 1)"
        }.joined(separator: ", ")
        try sql(
            #"""
            INSERT INTO vat_group (version, id, name, percentage) VALUES (1, 1, 'Hoog', 21);
            INSERT INTO product_category (version, id, name) VALUES (1, 1, 'Drinks');
            INSERT INTO product (version, id, "ownerId") VALUES (1, \#(productId), \#(owner));
            INSERT INTO product_revision (version, "productId", revision, name, "priceInclVat", "alcoholPercentage", "vatId", "categoryId")
              VALUES \#(revisions);
            INSERT INTO container (version, id, "ownerId") VALUES (1, 1, \#(owner));
            INSERT INTO container_revision (version, "containerId", revision, name) VALUES (1, 1, 1, 'Fridge');
            """#)
    }
}
