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
    /// quoted local parts, comments or address literals), at most 64 characters. Every
    /// rejection of an address, an over-long one too, is `invalidEmail`.
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
            throw reject("has \(count) characters, SudoSOS stores at most \(maxLength)")
        }
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw reject(parts.count < 2 ? "is not an address (no at sign)" : "is not an address (more than one at sign)")
        }
        let local = parts[0], domain = parts[1]
        guard isValidLocalPart(local) else { throw reject("is not an address (bad part before the at sign)") }
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

extension Validation {
    /// Plan validation, the runner's last check before the threshold: drops the changes that
    /// SudoSOS could not store and turns them into rejections, so one bad value cannot fail the
    /// transaction of everything else.
    ///
    /// - `createUser`: names over 64 characters or with NUL, a non-empty e-mail that is not an
    ///   address: the user is not created, nor anything that refers to it (`UserRef.new`).
    /// - `updateUser` / `deactivateUser` / `deleteUser`: a field whose new value cannot be stored
    ///   (too long, not an address, NUL, wrong type, unknown `acceptedToS`) is left out; an
    ///   update left without fields is dropped, a deactivation or deletion still happens.
    /// - `bind`: a UUID that is not 32 hex digits (`varchar(32)`) is dropped.
    ///
    /// Each rejected record counts once as `failed` (and no longer as `passed`).
    public static func validate(_ plan: Plan) -> Plan {
        var result = plan
        result.changes = []
        var rejections: [Rejection] = []
        var droppedRefs = Set<Int>()

        func check(_ value: FieldValue, _ field: UserField, record: String) -> Rejection? {
            do {
                switch (field, value) {
                case (.firstName, .text(let v)), (.lastName, .text(let v)):
                    _ = try name(v, field: field.rawValue, record: record)
                case (.email, .text(let v)):
                    if !v.isEmpty { _ = try email(v, field: field.rawValue, record: record) }
                case (.acceptedToS, .text(let v)):
                    if TermsOfServiceStatus(rawValue: v) == nil {
                        return Rejection(record: record, reason: .unparsable, detail: "acceptedToS is not a known value")
                    }
                case (.active, .flag), (.ofAge, .flag), (.deleted, .flag), (.canGoIntoDebt, .flag):
                    break
                default:
                    return Rejection(
                        record: record, reason: .unparsable, detail: "\(field.rawValue) has a value of the wrong type")
                }
                return nil
            } catch {
                return error
            }
        }

        func refersToDropped(_ ref: UserRef) -> Bool {
            if case .new(let n) = ref { return droppedRefs.contains(n) }
            return false
        }

        var rejectedRecords = Set<String>()
        func reject(_ rejection: Rejection) {
            rejections.append(rejection)
            rejectedRecords.insert(rejection.record)
        }

        for planned in plan.changes {
            switch planned.change {
            case .createUser(let user):
                let record = "new user #\(user.ref) (\(user.type.rawValue))"
                let problems = [
                    check(.text(user.firstName), .firstName, record: record),
                    check(.text(user.lastName), .lastName, record: record),
                    check(.text(user.email), .email, record: record),
                ].compactMap { $0 }
                if let first = problems.first {
                    reject(first)
                    droppedRefs.insert(user.ref)
                } else {
                    result.changes.append(planned)
                }
            case .updateUser(let id, let fields), .deactivateUser(let id, let fields), .deleteUser(let id, let fields):
                var kept: [FieldChange] = []
                for field in fields {
                    if let problem = check(field.new, field.field, record: "user \(id)") {
                        reject(problem)
                    } else {
                        kept.append(field)
                    }
                }
                switch planned.change {
                case .updateUser:
                    if !kept.isEmpty { result.changes.append(PlannedChange(.updateUser(userId: id, fields: kept), reason: planned.reason)) }
                case .deactivateUser:
                    result.changes.append(PlannedChange(.deactivateUser(userId: id, fields: kept), reason: planned.reason))
                default:
                    result.changes.append(PlannedChange(.deleteUser(userId: id, fields: kept), reason: planned.reason))
                }
            case .bind(let user, let uuid):
                if refersToDropped(user) { continue }
                let hex = uuid.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) || ("A"..."F").contains($0) }
                if uuid.unicodeScalars.count == 32 && hex {
                    result.changes.append(planned)
                } else {
                    reject(Rejection(record: "\(user)", reason: .unparsable, detail: "the directory UUID is not 32 hex digits"))
                }
            case .addRole(let user, _, _):
                if !refersToDropped(user) { result.changes.append(planned) }
            case .addMembership(let user, let organ, _):
                if !refersToDropped(user) && !refersToDropped(organ) { result.changes.append(planned) }
            case .unbind, .removeRole, .removeMembership, .notice:
                result.changes.append(planned)
            }
        }
        result.verdicts = plan.verdicts.filter { !refersToDropped($0.user) }
        result.rejected += rejections
        result.entities.failed += rejectedRecords.count
        result.entities.passed = max(0, result.entities.passed - rejectedRecords.count)
        return result
    }
}

/// A rejection is what the `Validation` checks throw.
extension Rejection: Error {}
