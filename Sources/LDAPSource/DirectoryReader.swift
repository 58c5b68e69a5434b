import Logging
import SyncEngine

/// Reads a `Directory` with a constant number of searches, whatever the population:
///
/// 1. every person and group under the base DN (one paged search; also what the check of
///    bound users compares against);
/// 2. the groups under the shared-account base, 3. the groups under the role base,
/// 4. the service-account group (base scope);
/// 5. membership: in `member_attribute` mode nothing more (the `member` values read in 1–4 are
///    resolved here, transitively, safe against cycles); in `matching_rule_in_chain` mode one
///    search per organ, role and service group with AD's in-chain rule (the server resolves
///    nesting), so the count follows the number of groups, never the number of people.
///
/// Every search is paged; errors fail the run (never an empty answer taken for "all gone").
struct DirectoryReader {
    let settings: LDAPSettings
    let client: LDAPClient
    let logger: Logger
    let reporter: any RunReporter

    /// Who is a person: `directory_type` (AD: users of category person, as SudoSOS's own sync).
    var personFilter: String { settings.directoryType.personFilter }
    static let groupFilter = "(|(objectClass=group)(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
    static let groupClasses: Set<String> = ["group", "groupofnames", "groupofuniquenames"]

    var attributes: [String] {
        var list = [settings.guidAttribute.rawValue, "objectClass", "cn", "displayName", "givenName", "sn", "mail", "employeeNumber"]
        if settings.nestedGroups == .memberAttribute { list.append("member") }
        return list
    }

    /// `roleNames`: the SudoSOS role names; only role groups with one need their members.
    func read(roleNames: Set<String>) async throws(SyncError) -> Directory {
        var directory = Directory()
        let everything = try await search(
            "objects", base: settings.base, filter: "(|\(personFilter)\(Self.groupFilter))")
        try add(everything, to: &directory)

        if let shared = settings.sharedAccountFilter {
            let groups = try await search("shared-account groups", base: shared, filter: "(&(cn=*)\(Self.groupFilter))")
            try add(groups, to: &directory)
            directory.organGroups = groups.map { DistinguishedName.key($0.dn) }.sorted()
        }
        if let roles = settings.roleFilter {
            let groups = try await search("role groups", base: roles, filter: "(&(cn=*)\(Self.groupFilter))")
            try add(groups, to: &directory)
            directory.roleGroups = groups.map { DistinguishedName.key($0.dn) }.sorted()
        }
        if let service = settings.serviceAccountFilter {
            let group = try await search("service-account group", base: service, scope: .base, filter: "(objectClass=*)")
            try add(group, to: &directory)
            directory.serviceGroup = group.first.map { DistinguishedName.key($0.dn) }
        }

        // The groups whose members matter.
        var relevant = directory.organGroups
        relevant += directory.roleGroups.filter { key in
            guard let cn = directory.objects[key]?.attributes["cn"] else { return false }
            return roleNames.contains(String(decoding: cn, as: UTF8.self))
        }
        if let service = directory.serviceGroup { relevant.append(service) }

        switch settings.nestedGroups {
        case .memberAttribute:
            for group in relevant { directory.members[group] = directory.closure(of: group) }
        case .matchingRuleInChain:
            for group in relevant where directory.members[group] == nil {
                guard let dn = directory.objects[group]?.dn else { continue }
                let found = try await search(
                    "members of a group", base: settings.base,
                    filter: "(&\(personFilter)\(LDAPFilter.memberOfInChain(dn)))")
                try add(found, to: &directory)
                directory.members[group] = Set(found.map { DistinguishedName.key($0.dn) }).sorted()
            }
        }
        return directory
    }

    private func search(
        _ what: String, base: String, scope: LDAPScope = .subtree, filter: String
    ) async throws(SyncError) -> [LDAPEntry] {
        reporter.heartbeat(phase: "ldap: reading \(what)")
        let reporter = self.reporter
        let entries = try await client.search(
            base: base, scope: scope, filter: filter, attributes: attributes, pageSize: settings.pageSize
        ) { ok, seconds in
            reporter.sourceRequest(ok: ok, seconds: seconds)
            reporter.heartbeat(phase: "ldap: page of \(what)")
        }
        logger.debug("ldap search", metadata: ["what": "\(what)", "base": "\(base)", "entries": "\(entries.count)"])
        return entries
    }

    private func add(_ entries: [LDAPEntry], to directory: inout Directory) throws(SyncError) {
        for entry in entries {
            let key = DistinguishedName.key(entry.dn)
            if directory.objects[key] != nil { continue }
            directory.objects[key] = try object(entry, key: key)
        }
    }

    private func object(_ entry: LDAPEntry, key: String) throws(SyncError) -> DirectoryObject {
        let classes = Set(entry.values("objectClass").map { String(decoding: $0, as: UTF8.self).lowercased() })
        var attributes: [String: [UInt8]] = [:]
        for name in ["cn", "displayname", "givenname", "sn", "mail", "employeenumber"] {
            if let value = entry.first(name) { attributes[name] = value }
        }
        var members: [String] = []
        if settings.nestedGroups == .memberAttribute {
            if entry.attributes.keys.contains(where: { $0.hasPrefix("member;range=") }) {
                throw .failed(
                    "group \(entry.dn) has more members than the server returns at once (ranged retrieval); "
                        + "use services.ldap.nested_groups: matching_rule_in_chain with Active Directory")
            }
            members = entry.values("member").map { DistinguishedName.key(String(decoding: $0, as: UTF8.self)) }
        }
        return DirectoryObject(
            dn: entry.dn, key: key, isGroup: !classes.isDisjoint(with: Self.groupClasses),
            guid: entry.first(settings.guidAttribute.rawValue), attributes: attributes, members: members)
    }
}
