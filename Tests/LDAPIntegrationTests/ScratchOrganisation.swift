import Foundation
import TestKit

/// A small organisation of a test's own, under `OU=<tag>,OU=Scratch,<root>`, so tests that
/// change the directory never touch the shared fixture or each other. `destroy()` removes it.
struct ScratchOrganisation {
    let directory: TestDirectory
    let tag: String
    let org: String

    struct Person {
        var key: String
        var given: String
        var sn: String
        var employee: String? = nil
        /// The CN (and so the DN); the key when nil.
        var cn: String? = nil
        /// displayName; "given sn" when nil.
        var display: String? = nil
    }

    struct Group {
        var key: String
        var ou: String
        var display: String? = nil
        /// The CN (and so the DN); the key when nil.
        var cn: String? = nil
        /// Keys of people or of groups listed earlier.
        var members: [String]
    }

    /// Objects in `OU=People` that are not AD users: AD's contact and computer classes (on slapd,
    /// in OpenLDAP mode, a contact is an `inetOrgPerson` like any person, a computer a `device`).
    enum NonPerson: Hashable {
        case contact(given: String, sn: String)
        case computer
    }

    private(set) var people: [String: Person] = [:]
    private(set) var groups: [String: Group] = [:]
    private(set) var others: [String: NonPerson] = [:]

    static func create(
        _ directory: TestDirectory, people: [Person], others: [String: NonPerson] = [:], groups: [Group]
    ) throws -> ScratchOrganisation {
        let tag = "t" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        var scratch = ScratchOrganisation(directory: directory, tag: tag, org: "OU=\(tag),OU=Scratch,\(try directory.root)")
        var ldif = scratch.entry(scratch.org, [("objectClass", "organizationalUnit"), ("ou", tag)])
        for ou in ["People", "Groups", "Shared", "Roles"] {
            ldif += scratch.entry("OU=\(ou),\(scratch.org)", [("objectClass", "organizationalUnit"), ("ou", ou)])
        }
        for person in people {
            scratch.people[person.key] = person
            ldif += scratch.personEntry(person)
        }
        for (key, kind) in others.sorted(by: { $0.key < $1.key }) {
            scratch.others[key] = kind
            ldif += scratch.nonPersonEntry(key, kind)
        }
        for group in groups {
            scratch.groups[group.key] = group
            ldif += scratch.groupEntry(group)
        }
        try directory.modify(ldif, add: true)
        return scratch
    }

    func dn(_ key: String) -> String {
        if let person = people[key] { return "CN=\(Self.rdnValue(person.cn ?? key)),OU=People,\(org)" }
        if others[key] != nil { return "CN=\(Self.rdnValue(key)),OU=People,\(org)" }
        if let group = groups[key] { return "CN=\(Self.rdnValue(group.cn ?? key)),OU=\(group.ou),\(org)" }
        return "CN=\(key),OU=Groups,\(org)"
    }

    /// RFC 4514 escaping of an attribute value inside a DN.
    static func rdnValue(_ value: String) -> String {
        var out = ""
        let scalars = Array(value.unicodeScalars)
        for (i, c) in scalars.enumerated() {
            if ",+\"\\<>;=".unicodeScalars.contains(c) || (i == 0 && (c == " " || c == "#")) || (i == scalars.count - 1 && c == " ") {
                out += "\\"
            }
            out.unicodeScalars.append(c)
        }
        return out
    }

    /// The role name a role group of this organisation carries (its cn).
    func roleName(_ key: String) -> String { groups[key]?.cn ?? key }

    func addMember(_ member: String, to group: String) throws {
        try directory.modify("dn: \(dn(group))\nchangetype: modify\nadd: member\nmember: \(dn(member))\n-\n")
    }

    func removeMember(_ member: String, from group: String) throws {
        try directory.modify("dn: \(dn(group))\nchangetype: modify\ndelete: member\nmember: \(dn(member))\n-\n")
    }

    func setDisplayName(_ key: String, _ name: String) throws {
        try directory.modify("dn: \(dn(key))\nchangetype: modify\nreplace: displayName\n\(line("displayName", name))\n-\n")
    }

    func delete(_ key: String) throws {
        try directory.modify("dn: \(dn(key))\nchangetype: delete\n")
    }

    /// The connection and group keys of `services.ldap` for this organisation, as YAML lines
    /// indented by `indent` spaces (the bind password comes from `LDAP_BIND_PW`).
    func ldapYAML(indent: Int) throws -> String {
        var lines = [
            "server_url: \(try directory.env("URL"))",
            "base: \"\(org)\"",
            "bind_user: \"\(try directory.env("BIND_DN"))\"",
            "shared_account_filter: \"OU=Shared,\(org)\"",
            "role_filter: \"OU=Roles,\(org)\"",
            "service_account_filter: \"CN=SudoSOS Service Accounts,OU=Groups,\(org)\"",
            "guid_attribute: objectGUID",
            "nested_groups: \(directory.isSlapd ? "member_attribute" : "matching_rule_in_chain")",
            "directory_type: \(directory.isSlapd ? "openldap" : "active_directory")",
        ]
        if directory == .activeDirectory { lines.append("ca_file: \(try directory.env("CA"))") }
        let pad = String(repeating: " ", count: indent)
        return lines.map { pad + $0 }.joined(separator: "\n")
    }

    /// Removes the whole subtree (children first).
    func destroy() {
        // A test's own slapd goes away as a whole.
        if case .ownSlapd = directory { return }
        var environment = ProcessInfo.processInfo.environment
        if directory == .activeDirectory { environment["LDAPTLS_CACERT"] = try? directory.env("CA") }
        let admin = directory.isSlapd ? "ADMIN" : "BIND"
        guard let url = try? directory.env("URL"), let user = try? directory.env("\(admin)_DN"),
            let password = try? directory.env(directory.isSlapd ? "ADMIN_PW" : "BIND_PW")
        else { return }
        _ = try? runProcess(
            "/usr/bin/ldapdelete", ["-x", "-r", "-H", url, "-D", user, "-w", password, org], environment: environment)
    }

    // MARK: - LDIF

    private func personEntry(_ p: Person) -> String {
        var attrs: [(String, String)] = []
        if directory.isSlapd {
            attrs += [("objectClass", "inetOrgPerson"), ("objectClass", "adObject"), ("objectGUID::", randomGUID())]
        } else {
            attrs += [("objectClass", "user"), ("sAMAccountName", shortName(p.key))]
        }
        attrs += [("cn", p.cn ?? p.key), ("givenName", p.given), ("sn", p.sn), ("displayName", p.display ?? "\(p.given) \(p.sn)")]
        if let e = p.employee { attrs.append(("employeeNumber", e)) }
        return entry(dn(p.key), attrs)
    }

    private func nonPersonEntry(_ key: String, _ kind: NonPerson) -> String {
        var attrs: [(String, String)] = []
        switch (kind, directory.isSlapd) {
        case (.contact(let given, let sn), true):
            attrs += [("objectClass", "inetOrgPerson"), ("objectClass", "adObject"), ("objectGUID::", randomGUID()),
                      ("cn", key), ("givenName", given), ("sn", sn), ("displayName", "\(given) \(sn)")]
        case (.contact(let given, let sn), false):
            attrs += [("objectClass", "contact"), ("cn", key), ("givenName", given), ("sn", sn), ("displayName", "\(given) \(sn)")]
        case (.computer, true):
            attrs += [("objectClass", "device"), ("objectClass", "adObject"), ("objectGUID::", randomGUID()), ("cn", key)]
        case (.computer, false):
            attrs += [("objectClass", "computer"), ("cn", key), ("sAMAccountName", String(shortName(key).prefix(15)) + "$")]
        }
        return entry(dn(key), attrs)
    }

    private func groupEntry(_ g: Group) -> String {
        var attrs: [(String, String)] = [("objectClass", "group")]
        if directory.isSlapd {
            attrs += [("objectClass", "adObject"), ("objectGUID::", randomGUID())]
        } else {
            attrs.append(("sAMAccountName", shortName(g.key)))
        }
        attrs.append(("cn", g.cn ?? g.key))
        if let d = g.display { attrs.append(("displayName", d)) }
        for m in g.members { attrs.append(("member", dn(m))) }
        return entry(dn(g.key), attrs)
    }

    private func shortName(_ key: String) -> String {
        String((tag.suffix(8) + "-" + key.filter { $0.isLetter || $0.isNumber }).prefix(20))
    }

    private func randomGUID() -> String {
        Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    }

    private func entry(_ dn: String, _ attrs: [(String, String)]) -> String {
        ([line("dn", dn)] + attrs.map { $0.0.hasSuffix("::") ? "\($0.0) \($0.1)" : line($0.0, $0.1) }).joined(separator: "\n")
            + "\n\n"
    }

    private func line(_ attribute: String, _ value: String) -> String {
        let plain = value.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }
            && !value.hasPrefix(" ") && !value.hasPrefix(":") && !value.hasPrefix("<")
        return plain ? "\(attribute): \(value)" : "\(attribute):: \(Data(value.utf8).base64EncodedString())"
    }
}
