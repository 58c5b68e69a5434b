/// Writing mdoc(7) text.
enum MDoc {
    /// A line of running text: backslashes escaped, and a leading `.` or `'` (which would
    /// start a request) guarded.
    static func text(_ line: String) -> String {
        let escaped = line.replacingOccurrences(of: "\\", with: "\\e")
        if escaped.hasPrefix(".") || escaped.hasPrefix("'") { return "\\&" + escaped }
        return escaped
    }

    /// An argument of a macro line: quoted when it has blanks, with quotes and backslashes
    /// escaped.
    static func argument(_ value: String) -> String {
        let escaped = value.replacingOccurrences(of: "\\", with: "\\e").replacingOccurrences(of: "\"", with: "\\(dq")
        return escaped.contains(" ") || escaped.isEmpty ? "\"\(escaped)\"" : escaped
    }

    /// `.Ev A , B , C`: names separated by commas.
    static func list(_ macro: String, _ names: [String]) -> String {
        ".\(macro) " + names.map(argument).joined(separator: " , ")
    }
}
