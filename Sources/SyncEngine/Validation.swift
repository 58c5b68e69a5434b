/// Checks a source service runs on each record before it goes into a plan. Each check returns
/// the usable value or throws the `Rejection` to put into `Plan.rejected`; a rejected record
/// counts as `failed` and the run goes on with the rest.
///
/// A `Rejection.detail` names the field and the problem, never the rejected value when that
/// could be an e-mail address, so rejections may be logged and reported as they are.
///
/// ```swift
/// do {
///     let first = try Validation.name(Validation.text(rawGivenName, field: "givenName", record: dn),
///                                     field: "givenName", record: dn)
///     ...
/// } catch {
///     plan.rejected.append(error)   // error is a Rejection (typed throws)
/// }
/// ```
public enum Validation {
    /// SudoSOS's name and e-mail columns are `varchar(64)`.
    public static let maxLength = 64

    /// Decodes raw attribute bytes as UTF-8 text.
    ///
    /// Rejects (`invalidEncoding`) bytes that are not valid UTF-8 and text holding a NUL
    /// character, which PostgreSQL's `text`/`varchar` cannot store.
    public static func text(
        _ bytes: some Collection<UInt8>, field: String, record: String
    ) throws(Rejection) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw Rejection(record: record, reason: .invalidEncoding, detail: "\(field) is not valid UTF-8")
        }
        if text.unicodeScalars.contains("\u{0}") {
            throw Rejection(record: record, reason: .invalidEncoding, detail: "\(field) contains a NUL character")
        }
        return text
    }

    /// The number of characters PostgreSQL counts for `varchar(n)` in a UTF-8 database:
    /// Unicode code points (not Swift's grapheme clusters, not bytes).
    public static func characterCount(_ value: String) -> Int {
        value.unicodeScalars.count
    }

    /// A name column (`firstName`, `lastName`, `nickname`): at most 64 characters as PostgreSQL
    /// counts them, no NUL. An empty name is allowed (use `required` to demand one).
    public static func name(_ value: String, field: String, record: String) throws(Rejection) -> String {
        if value.unicodeScalars.contains("\u{0}") {
            throw Rejection(record: record, reason: .invalidEncoding, detail: "\(field) contains a NUL character")
        }
        let count = characterCount(value)
        guard count <= maxLength else {
            throw Rejection(
                record: record, reason: .tooLong,
                detail: "\(field) has \(count) characters, SudoSOS stores at most \(maxLength)")
        }
        return value
    }

    /// An e-mail address: `local@domain` with a sane ASCII syntax (not all of RFC 5322: no
    /// quoted local parts, comments or address literals), at most 64 characters.
    ///
    /// The local part is dot-separated runs of letters, digits and ``!#$%&'*+/=?^_`{|}~-``;
    /// the domain has at least two dot-separated labels of letters, digits and inner hyphens,
    /// each at most 63 characters. The detail of a rejection never contains the address.
    public static func email(_ value: String, field: String, record: String) throws(Rejection) -> String {
        func reject(_ why: String) -> Rejection {
            Rejection(record: record, reason: .invalidEmail, detail: "\(field) \(why)")
        }
        if value.isEmpty { throw reject("is empty") }
        let count = characterCount(value)
        if count > maxLength {
            throw Rejection(
                record: record, reason: .tooLong,
                detail: "\(field) has \(count) characters, SudoSOS stores at most \(maxLength)")
        }
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw reject(parts.count < 2 ? "is not an address (no '@')" : "is not an address (more than one '@')")
        }
        let local = parts[0], domain = parts[1]
        guard isValidLocalPart(local) else { throw reject("is not an address (bad part before '@')") }
        guard isValidDomain(domain) else { throw reject("is not an address (bad domain)") }
        return value
    }

    /// A required attribute: its value, or a `missingAttribute` rejection when absent.
    /// An empty string counts as absent.
    public static func required<T>(_ value: T?, field: String, record: String) throws(Rejection) -> T {
        guard let value else {
            throw Rejection(record: record, reason: .missingAttribute, detail: "\(field) is missing")
        }
        if let text = value as? String, text.isEmpty {
            throw Rejection(record: record, reason: .missingAttribute, detail: "\(field) is empty")
        }
        return value
    }

    /// Splits records into those with a unique key and rejections for every record whose key
    /// another record shares. All records of a shared key are rejected: the source is ambiguous
    /// there, and picking one would be a guess. Records whose key is `nil` are kept (check
    /// them with `required` first if the key is mandatory). Order is preserved.
    ///
    /// The key's value is not put into the detail (it may be personal data); `record` names
    /// each record.
    public static func uniqueByKey<Record, Key: Hashable>(
        _ records: [Record], field: String, key: (Record) -> Key?, record: (Record) -> String
    ) -> (unique: [Record], rejected: [Rejection]) {
        var occurrences: [Key: Int] = [:]
        for item in records {
            if let k = key(item) { occurrences[k, default: 0] += 1 }
        }
        var unique: [Record] = []
        var rejected: [Rejection] = []
        for item in records {
            if let k = key(item), let n = occurrences[k], n > 1 {
                let others = n - 1
                rejected.append(
                    Rejection(
                        record: record(item), reason: .duplicateKey,
                        detail: "\(field) is shared with \(others) other record\(others == 1 ? "" : "s")"))
            } else {
                unique.append(item)
            }
        }
        return (unique, rejected)
    }

    // MARK: - E-mail syntax

    private static let localSpecials = Set("!#$%&'*+/=?^_`{|}~-".unicodeScalars)

    private static func isASCIIAlphanumeric(_ s: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s)
    }

    private static func isValidLocalPart(_ local: Substring) -> Bool {
        guard !local.isEmpty else { return false }
        let atoms = local.split(separator: ".", omittingEmptySubsequences: false)
        return atoms.allSatisfy { atom in
            !atom.isEmpty && atom.unicodeScalars.allSatisfy { isASCIIAlphanumeric($0) || localSpecials.contains($0) }
        }
    }

    private static func isValidDomain(_ domain: Substring) -> Bool {
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return false }
        return labels.allSatisfy { label in
            let scalars = label.unicodeScalars
            guard let first = scalars.first, let last = scalars.last, scalars.count <= 63 else { return false }
            return isASCIIAlphanumeric(first) && isASCIIAlphanumeric(last)
                && scalars.allSatisfy { isASCIIAlphanumeric($0) || $0 == "-" }
        }
    }
}

/// A rejection is what the `Validation` checks throw.
extension Rejection: Error {}
