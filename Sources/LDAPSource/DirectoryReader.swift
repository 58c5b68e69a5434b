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
        add(everything, to: &directory)

        if let shared = settings.sharedAccountFilter {
            let groups = try await search("shared-account groups", base: shared, filter: "(&(cn=*)\(Self.groupFilter))")
            add(groups, to: &directory)
            directory.organGroups = groups.map(\.key).sorted()
        }
        if let roles = settings.roleFilter {
            let groups = try await search("role groups", base: roles, filter: "(&(cn=*)\(Self.groupFilter))")
            add(groups, to: &directory)
            directory.roleGroups = groups.map(\.key).sorted()
        }
        if let service = settings.serviceAccountFilter {
            let group = try await search("service-account group", base: service, scope: .base, filter: "(objectClass=*)")
            add(group, to: &directory)
            directory.serviceGroup = group.first.map(\.key)
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
                add(found, to: &directory)
                directory.members[group] = Set(found.map(\.key)).sorted()
            }
        }
        return directory
    }

    private func search(
        _ what: String, base: String, scope: LDAPScope = .subtree, filter: String
    ) async throws(SyncError) -> [DirectoryObject] {
        reporter.heartbeat(phase: "ldap: reading \(what)")
        let reporter = self.reporter
        let decoder = ObjectDecoder(guidAttribute: settings.guidAttribute.rawValue.lowercased(), members: settings.nestedGroups == .memberAttribute)
        let objects = try await client.search(
            base: base, scope: scope, filter: filter, attributes: attributes, pageSize: settings.pageSize,
            onRequest: { ok, seconds in
                reporter.sourceRequest(ok: ok, seconds: seconds)
                reporter.heartbeat(phase: "ldap: page of \(what)")
            }, decode: { (entry: LDAPEntryView) throws(SyncError) in try decoder.object(entry) })
        logger.debug("ldap search", metadata: ["what": "\(what)", "base": "\(base)", "entries": "\(objects.count)"])
        return objects
    }

    /// Adds the objects not there yet (the first one read of a DN wins).
    private func add(_ objects: [DirectoryObject], to directory: inout Directory) {
        if directory.objects.isEmpty {
            // Sized once, one hash per object; walked backwards so the first of a DN stays.
            var all = [String: DirectoryObject](minimumCapacity: objects.count)
            for object in objects.reversed() { all.updateValue(object, forKey: object.key) }
            directory.objects = all
            return
        }
        for object in objects where directory.objects[object.key] == nil { directory.objects[object.key] = object }
    }
}

/// Turns one entry of a search answer into a `DirectoryObject`, reading it in place (one pass
/// over its attributes; only the first value of each attribute the sync uses is copied).
struct ObjectDecoder: Sendable {
    /// The configured GUID attribute, lowercased (`objectguid` or `entryuuid`).
    let guidAttribute: String
    /// `member_attribute` mode: keep the `member` values (as DN keys).
    let members: Bool

    static let textAttributes = DirectoryAttributes.names

    func object(_ entry: LDAPEntryView) throws(SyncError) -> DirectoryObject {
        var dn = ""
        var isGroup = false
        // The first value of each slot (DirectoryAttributes.names, then the GUID), as views
        // into libldap's buffer until the one copy at the end.
        var slots = [UnsafeRawBufferPointer?](repeating: nil, count: Self.textAttributes.count + 1)
        var memberKeys: [String] = []
        var ranged = false
        let guidName = guidAttribute
        let wantMembers = members
        let guidSlot = Self.textAttributes.count
        try entry.read(dn: { bytes throws(SyncError) in dn = String(decoding: bytes, as: UTF8.self) }) {
            name, values throws(SyncError) in
            if Self.equalsASCIILowercase(name, "objectclass") {
                if !isGroup { isGroup = values.contains { Self.isGroupClass(LDAPEntryView.view($0)) } }
            } else if Self.equalsASCIILowercase(name, guidName) {
                if slots[guidSlot] == nil, let first = values.first { slots[guidSlot] = LDAPEntryView.view(first) }
            } else if wantMembers, Self.equalsASCIILowercase(name, "member") {
                memberKeys.reserveCapacity(memberKeys.count + values.count)
                for value in values {
                    memberKeys.append(DistinguishedName.key(String(decoding: LDAPEntryView.view(value), as: UTF8.self)))
                }
            } else if wantMembers, Self.hasASCIILowercasePrefix(name, "member;range=") {
                ranged = true
            } else if let i = Self.textAttributes.firstIndex(where: { Self.equalsASCIILowercase(name, $0) }) {
                if slots[i] == nil, let first = values.first { slots[i] = LDAPEntryView.view(first) }
            }
        }
        if ranged {
            throw .failed(
                "group \(dn) has more members than the server returns at once (ranged retrieval); "
                    + "use services.ldap.nested_groups: matching_rule_in_chain with Active Directory")
        }
        return DirectoryObject(
            dn: dn, key: DistinguishedName.key(dn), isGroup: isGroup, attributes: DirectoryAttributes(slots: slots),
            members: memberKeys)
    }

    static let groupClasses = ["group", "groupofnames", "groupofuniquenames"]

    static func isGroupClass(_ value: UnsafeRawBufferPointer) -> Bool {
        groupClasses.contains { equalsASCIILowercase(value, $0) }
    }

    /// `bytes`, ASCII letters folded to lower case, equals `lower` (an ASCII lowercase name).
    /// Non-ASCII bytes never match, as a full Unicode lowercasing of them could not give these
    /// names either (no `k`, the one letter a non-ASCII capital lowercases to).
    static func equalsASCIILowercase(_ bytes: UnsafeRawBufferPointer, _ lower: String) -> Bool {
        var lower = lower
        return lower.withUTF8 { want in
            guard want.count == bytes.count else { return false }
            for i in 0..<want.count where foldASCII(bytes[i]) != want[i] { return false }
            return true
        }
    }

    static func hasASCIILowercasePrefix(_ bytes: UnsafeRawBufferPointer, _ prefix: String) -> Bool {
        var prefix = prefix
        return prefix.withUTF8 { want in
            guard bytes.count >= want.count else { return false }
            return equalsASCIILowercase(UnsafeRawBufferPointer(rebasing: bytes[0..<want.count]), String(decoding: want, as: UTF8.self))
        }
    }

    @inline(__always) static func foldASCII(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }
}
