import Foundation

/// A field GEWISDB may leave out (the API key lacks the permission), send as `null`, or send.
public enum Reported<Value: Sendable & Hashable>: Sendable, Hashable {
    /// The key is not in the answer: we know nothing, the stored value stays.
    case absent
    /// The key is there with `null`.
    case null
    case value(Value)

    /// The value, if one was sent.
    public var value: Value? {
        if case .value(let v) = self { return v }
        return nil
    }
}

/// `expiration` of a member: GEWISDB sends an ATOM date (`2023-07-01T00:00:00+02:00`).
public enum Expiration: Sendable, Hashable {
    case date(Date)
    /// No `expiration` key, or `null`.
    case missing
    /// There, but not a date; the text is kept for the rejection detail.
    case invalid(String)
}

/// One member as `GET /members/{lidnr}` answers it (`{"status":"success","data":{...}}`); only
/// the fields the sync uses. Optional fields keep the difference between absent and `null`.
public struct GEWISDBMember: Sendable, Hashable {
    public var lidnr: Int
    public var givenName: Reported<String>
    public var middleName: Reported<String>
    public var familyName: Reported<String>
    public var email: Reported<String>
    public var isEighteenPlus: Reported<Bool>
    /// Only true with the `MembersDeleted` permission; absent counts as false.
    public var deleted: Bool
    public var expiration: Expiration

    public init(
        lidnr: Int, givenName: Reported<String> = .absent, middleName: Reported<String> = .absent,
        familyName: Reported<String> = .absent, email: Reported<String> = .absent,
        isEighteenPlus: Reported<Bool> = .absent, deleted: Bool = false, expiration: Expiration = .missing
    ) {
        self.lidnr = lidnr
        self.givenName = givenName
        self.middleName = middleName
        self.familyName = familyName
        self.email = email
        self.isEighteenPlus = isEighteenPlus
        self.deleted = deleted
        self.expiration = expiration
    }

    /// A body that does not fit GEWISDB's member answer.
    public struct Unparsable: Error, Sendable, Hashable {
        /// One line, naming the problem (never personal data from the body).
        public var detail: String
    }

    /// Parses the body of a 200 answer to `GET /members/{lidnr}` for `expected`.
    public static func parse(_ body: Data, expected: Int) throws(Unparsable) -> GEWISDBMember {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: body, options: [])
        } catch {
            throw Unparsable(detail: "the answer is not JSON (\(body.count) bytes)")
        }
        guard let envelope = root as? [String: Any] else { throw Unparsable(detail: "the answer is not a JSON object") }
        if let status = envelope["status"] as? String, status != "success" {
            throw Unparsable(detail: "the answer has status \(status.prefix(20))")
        }
        guard let data = envelope["data"] as? [String: Any] else { throw Unparsable(detail: "the answer has no data object") }
        guard let lidnr = integer(data["lidnr"]) else { throw Unparsable(detail: "data.lidnr is missing or not a number") }
        guard lidnr == expected else { throw Unparsable(detail: "the answer is for member \(lidnr), not \(expected)") }

        var member = GEWISDBMember(lidnr: lidnr)
        member.givenName = try text(data, "given_name")
        member.middleName = try text(data, "middle_name")
        member.familyName = try text(data, "family_name")
        member.email = try text(data, "email")
        member.isEighteenPlus = try flag(data, "is_18_plus")
        switch try flag(data, "deleted") {
        case .value(let deleted): member.deleted = deleted
        case .absent, .null: member.deleted = false
        }
        switch data["expiration"] {
        case nil, is NSNull:
            member.expiration = .missing
        case let text as String:
            member.expiration = parseATOM(text).map(Expiration.date) ?? .invalid(String(text.prefix(40)))
        default:
            member.expiration = .invalid("not a string")
        }
        return member
    }

    /// `Y-m-d\TH:i:sP` (PHP's ATOM), also with a `Z` offset or fractional seconds.
    public static func parseATOM(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: .iso8601) { return date }
        return try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    private static func integer(_ value: Any?) -> Int? {
        guard let number = value as? NSNumber, !isBoolean(number) else { return nil }
        let double = number.doubleValue
        guard double.rounded() == double, abs(double) < 1e15 else { return nil }
        return number.intValue
    }

    /// JSON `true` / `false` arrive as boolean NSNumbers (Objective-C type `c`), numbers as others.
    private static func isBoolean(_ number: NSNumber) -> Bool {
        String(cString: number.objCType) == "c"
    }

    private static func text(_ data: [String: Any], _ key: String) throws(Unparsable) -> Reported<String> {
        switch data[key] {
        case nil: return .absent
        case is NSNull: return .null
        case let value as String: return .value(value)
        default: throw Unparsable(detail: "data.\(key) is not a string")
        }
    }

    private static func flag(_ data: [String: Any], _ key: String) throws(Unparsable) -> Reported<Bool> {
        switch data[key] {
        case nil: return .absent
        case is NSNull: return .null
        case let number as NSNumber where isBoolean(number): return .value(number.boolValue)
        default: throw Unparsable(detail: "data.\(key) is not true or false")
        }
    }
}
