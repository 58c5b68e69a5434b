import CLDAP

/// Building LDAP search filters (RFC 4515) safely.
public enum LDAPFilter {
    /// Escapes a value for use inside a filter assertion: `*`, `(`, `)`, `\` and NUL become
    /// `\2a`, `\28`, `\29`, `\5c`, `\00`, as RFC 4515 §3 requires. Other characters, including
    /// non-ASCII UTF-8, are left as they are (RFC 4515 allows UTF-8 in assertion values).
    public static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "*": out += "\\2a"
            case "(": out += "\\28"
            case ")": out += "\\29"
            case "\\": out += "\\5c"
            case "\u{0}": out += "\\00"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Escapes raw bytes (a binary assertion value such as an objectGUID): every byte as `\xx`.
    public static func escape(bytes: [UInt8]) -> String {
        bytes.map { "\\" + String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// `(attribute=value)` with the value escaped.
    public static func equals(_ attribute: String, _ value: String) -> String {
        "(\(attribute)=\(escape(value)))"
    }

    /// AD's LDAP_MATCHING_RULE_IN_CHAIN: every object that is a member of `groupDN`, directly
    /// or through nested groups (resolved by the server).
    public static func memberOfInChain(_ groupDN: String) -> String {
        "(memberOf:1.2.840.113556.1.4.1941:=\(escape(groupDN)))"
    }
}

/// Distinguished names compared the way a directory compares them.
public enum DistinguishedName {
    /// A key under which equal DNs meet: libldap's LDAPv3 normal form (one spelling of every
    /// escape, no optional spaces), lowercased (attribute types and the naming attributes we
    /// use compare case-insensitively), with every non-ASCII character written as the `\xx`
    /// escapes of its UTF-8 bytes. Falls back to the lowercased text when libldap cannot parse
    /// the DN.
    ///
    /// The escapes make the key ASCII, so Swift compares it code point for code point: as
    /// Swift `String`s, `CN=Zoë` with a precomposed ë and `CN=Zoe\u{308}` with a combining
    /// diaeresis are *equal* (canonical equivalence), yet Active Directory keeps them as two
    /// different objects; keyed by the plain text they collapsed into one and a person was lost.
    public static func key(_ dn: String) -> String {
        var out: UnsafeMutablePointer<CChar>?
        let rc = ldap_dn_normalize(dn, UInt32(LDAP_DN_FORMAT_LDAP), &out, UInt32(LDAP_DN_FORMAT_LDAPV3 | LDAP_DN_PRETTY))
        guard rc == LDAP_SUCCESS, let out else { return asciiKey(dn.lowercased()) }
        defer { ldap_memfree(out) }
        return asciiKey(String(cString: out).lowercased())
    }

    private static func asciiKey(_ text: String) -> String {
        guard !text.utf8.allSatisfy({ $0 < 0x80 }) else { return text }
        var key = ""
        key.reserveCapacity(text.utf8.count * 3)
        for scalar in text.unicodeScalars {
            if scalar.isASCII {
                key.unicodeScalars.append(scalar)
            } else {
                for byte in String(scalar).utf8 { key += "\\" + String(byte, radix: 16).leftPadded(to: 2) }
            }
        }
        return key
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
