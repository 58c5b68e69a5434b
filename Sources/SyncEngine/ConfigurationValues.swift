import Foundation

/// The raw configuration as a flat map from key path to text, merged from the file, the
/// environment and credential files, before it is turned into typed values. Each value remembers
/// where it came from, so a message can name the variable that set a bad value.
struct ConfigurationValues {
    /// Where a value came from.
    enum Origin: Equatable {
        case file
        case variable(String)
        case credential(String)
    }

    struct Entry {
        /// `nil` for an explicit YAML null (`key:` or `key: ~`): as if absent.
        var text: String?
        var origin: Origin
    }

    private(set) var entries: [String: Entry] = [:]
    /// Sections written in the file, also empty ones (`ldap: {}`, `ldap:`).
    private(set) var sections: Set<String> = []

    mutating func set(_ path: String, _ text: String?, from origin: Origin) {
        entries[path] = Entry(text: text, origin: origin)
    }

    mutating func markSection(_ path: String) {
        sections.insert(path)
    }

    /// The value at `path`, if set to something other than null.
    func text(_ path: String) -> String? {
        entries[path]?.text
    }

    func origin(_ path: String) -> Origin? {
        entries[path]?.origin
    }

    /// True when the section or any key below it was set by the file or a variable (a
    /// credential file alone does not count: it only fills a secret).
    func hasAnything(under section: String) -> Bool {
        if sections.contains(section) { return true }
        return entries.contains { path, entry in
            guard path.hasPrefix(section + ".") else { return false }
            if case .credential = entry.origin { return false }
            return true
        }
    }
}

/// Reads typed values out of `ConfigurationValues`, collecting one line per problem instead of
/// stopping at the first, so `check-config` can list them all.
final class ConfigurationReader {
    private let values: ConfigurationValues
    private(set) var problems: [String] = []

    init(values: ConfigurationValues) {
        self.values = values
    }

    /// Records a problem with `path`: `services.ldap.interval: "15x" is not a duration`.
    func problem(_ path: String, _ message: String) {
        problems.append("\(name(path)): \(message)")
    }

    /// Records a problem that names no single key.
    func problem(_ line: String) {
        problems.append(line)
    }

    /// The key path, and the variable or credential that set it if one did.
    func name(_ path: String) -> String {
        switch values.origin(path) {
        case .variable(let variable)?: return "\(path) (from \(variable))"
        case .credential(let file)?: return "\(path) (from credential \(file))"
        case .file?, nil: return path
        }
    }

    func isSet(_ path: String) -> Bool { values.text(path) != nil }

    func hasAnything(under section: String) -> Bool { values.hasAnything(under: section) }

    /// The value as written, quoted for a message; e-mail addresses masked, secrets never shown.
    private func shown(_ path: String, _ text: String) -> String {
        guard ConfigurationSchema.leaves[path] == .plain else { return "the value" }
        let short = text.count > 80 ? String(text.prefix(77)) + "..." : text
        let escaped = short.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"" + Masking.scrub(escaped) + "\""
    }

    /// Records `"value" <message>` for the value at `path`.
    func bad(_ path: String, _ message: String) {
        problem(path, "\(shown(path, values.text(path) ?? "")) \(message)")
    }

    func string(_ path: String) -> String? {
        guard let text = values.text(path) else { return nil }
        return text
    }

    /// A value that must not be empty when set.
    func nonEmptyString(_ path: String) -> String? {
        guard let text = values.text(path) else { return nil }
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else {
            problem(path, "is empty")
            return nil
        }
        return text
    }

    func bool(_ path: String) -> Bool? {
        guard let text = values.text(path) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default:
            bad(path, "is not a boolean (use true or false)")
            return nil
        }
    }

    func int(_ path: String, in range: ClosedRange<Int>) -> Int? {
        guard let text = values.text(path) else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            bad(path, "is not a whole number")
            return nil
        }
        guard range.contains(value) else {
            bad(path, range.upperBound == Int.max ? "must be at least \(range.lowerBound)" : "must be between \(range.lowerBound) and \(range.upperBound)")
            return nil
        }
        return value
    }

    func double(_ path: String, in range: ClosedRange<Double>, what: String = "a number") -> Double? {
        guard let text = values.text(path) else { return nil }
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            bad(path, "is not \(what)")
            return nil
        }
        guard range.contains(value) else {
            bad(path, range.upperBound.isInfinite ? "must be at least \(range.lowerBound)" : "must be between \(range.lowerBound) and \(range.upperBound)")
            return nil
        }
        return value
    }

    /// A share between 0 and 1.
    func ratio(_ path: String) -> Double? {
        double(path, in: 0...1, what: "a ratio (a number from 0 to 1, e.g. 0.10)")
    }

    func duration(_ path: String, positive: Bool = true) -> Duration? {
        guard let text = values.text(path) else { return nil }
        guard let value = DurationText.parse(text) else {
            bad(path, "is not a duration (\(DurationText.hint))")
            return nil
        }
        if positive && value <= .zero {
            bad(path, "must be longer than 0")
            return nil
        }
        return value
    }

    func byteSize(_ path: String) -> UInt64? {
        guard let text = values.text(path) else { return nil }
        guard let value = ByteSize.parse(text), value > 0 else {
            bad(path, "is not a size (\(ByteSize.hint))")
            return nil
        }
        return value
    }

    func choice<E: RawRepresentable & CaseIterable>(_ path: String, of type: E.Type) -> E? where E.RawValue == String {
        guard let text = values.text(path) else { return nil }
        guard let value = E(rawValue: text) else {
            let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
            bad(path, "is not one of \(allowed)")
            return nil
        }
        return value
    }

    /// A URL with one of `schemes` and (unless the scheme is in `hostless`) a host.
    func url(_ path: String, schemes: Set<String>, hostless: Set<String> = []) -> String? {
        guard let text = nonEmptyString(path) else { return nil }
        guard Self.isURL(text, schemes: schemes, hostless: hostless) else {
            let list = schemes.sorted().map { $0 + "://HOST" }.joined(separator: " or ")
            bad(path, "is not a URL (use \(list))")
            return nil
        }
        return text
    }

    static func isURL(_ text: String, schemes: Set<String>, hostless: Set<String> = []) -> Bool {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            schemes.contains(scheme)
        else { return false }
        if hostless.contains(scheme) { return true }
        return !(components.host ?? "").isEmpty
    }
}
