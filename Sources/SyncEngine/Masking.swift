/// Hiding e-mail addresses: reports show `j…@example.org` unless `--reveal` is given, and the
/// log handler masks anything that looks like an address as a safety net.
public enum Masking {
    /// The mark that replaces the hidden part.
    public static let ellipsis = "…"

    /// Masks one address: the first character of the local part, `…`, then `@` and the domain
    /// (`jan.jansen@example.org` → `j…@example.org`). A non-empty value without `@` becomes `…`;
    /// the empty string stays empty (SudoSOS stores `''` for "no address").
    public static func maskEmail(_ address: String) -> String {
        guard !address.isEmpty else { return "" }
        guard let at = address.lastIndex(of: "@") else { return ellipsis }
        let local = address[..<at]
        let domain = address[address.index(after: at)...]
        return (local.first.map(String.init) ?? "") + ellipsis + "@" + domain
    }

    /// Masks every substring of `text` that looks like an e-mail address (a local part, `@`,
    /// a domain), leaving the rest as it is. Idempotent: a masked address is not masked again.
    public static func scrub(_ text: String) -> String {
        guard text.contains("@") else { return text }
        let chars = Array(text)
        var output = ""
        output.reserveCapacity(text.utf8.count)
        var emitted = 0  // chars[..<emitted] are in `output`
        var i = 0
        while i < chars.count {
            guard chars[i] == "@" else { i += 1; continue }
            var start = i
            while start > emitted, isLocalCharacter(chars[start - 1]) { start -= 1 }
            // A malformed `a@@b.org` still hides its local part.
            var domainStart = i + 1
            while domainStart < chars.count, chars[domainStart] == "@" { domainStart += 1 }
            var end = domainStart
            while end < chars.count, isDomainCharacter(chars[end]) { end += 1 }
            // A sentence may end right after an address: trailing dots and dashes are not its.
            while end > domainStart, chars[end - 1] == "." || chars[end - 1] == "-" { end -= 1 }
            let domain = chars[domainStart..<end]
            guard start < i, !domain.isEmpty, domain.first != ".",
                domain.contains(where: { $0.isLetter || $0.isNumber })
            else { i += 1; continue }
            output.append(contentsOf: chars[emitted..<start])
            output.append(chars[start])
            output.append(ellipsis)
            output.append("@")
            output.append(contentsOf: domain)
            emitted = end
            i = end
        }
        output.append(contentsOf: chars[emitted...])
        return output
    }

    private static let localPunctuation: Set<Character> = [".", "_", "%", "+", "-", "!", "#", "$", "&", "*", "^", "~", "?"]

    private static func isLocalCharacter(_ c: Character) -> Bool {
        c.isLetter || c.isNumber || localPunctuation.contains(c)
    }

    private static func isDomainCharacter(_ c: Character) -> Bool {
        c.isLetter || c.isNumber || c == "-" || c == "."
    }
}
