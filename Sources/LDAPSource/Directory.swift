import SyncEngine

/// One person or group read from the directory, as the server sent it: values are raw bytes,
/// decoded and validated by the planner (so that broken entries become rejections there).
public struct DirectoryObject: Sendable, Hashable {
    public var dn: String
    /// `DistinguishedName.key(dn)`: how DNs are matched.
    public var key: String
    public var isGroup: Bool
    /// The raw value of the configured GUID attribute (objectGUID bytes or entryUUID text).
    public var guid: [UInt8]?
    /// First values of the attributes the sync uses (lowercased names): cn, displayname,
    /// givenname, sn, mail, employeenumber.
    public var attributes: [String: [UInt8]]
    /// Member DN keys (`member_attribute` mode only; empty otherwise).
    public var members: [String]

    public init(
        dn: String, key: String? = nil, isGroup: Bool, guid: [UInt8]?, attributes: [String: [UInt8]] = [:],
        members: [String] = []
    ) {
        self.dn = dn
        self.key = key ?? DistinguishedName.key(dn)
        self.isGroup = isGroup
        self.guid = guid
        self.attributes = attributes
        self.members = members
    }

    /// Convenience for tests and fixtures: text attributes.
    public init(
        dn: String, isGroup: Bool, guid: [UInt8]?, text: [String: String], members: [String] = []
    ) {
        self.init(
            dn: dn, isGroup: isGroup, guid: guid,
            attributes: Dictionary(uniqueKeysWithValues: text.map { ($0.key.lowercased(), Array($0.value.utf8)) }),
            members: members.map(DistinguishedName.key))
    }
}

/// What one run read from the directory: the source of the `ldap` service's plan.
public struct Directory: Sendable, Hashable {
    /// Every person and group under the base DN (and the configured groups), by DN key.
    public var objects: [String: DirectoryObject]
    /// DN keys of the shared-account (organ) groups.
    public var organGroups: [String]
    /// DN keys of the groups under the role base.
    public var roleGroups: [String]
    /// DN key of the service-account group, when configured and found.
    public var serviceGroup: String?
    /// For the organ groups, the role groups with a SudoSOS role and the service group: the
    /// DN keys of their transitive person members.
    public var members: [String: [String]]

    public init(
        objects: [String: DirectoryObject] = [:], organGroups: [String] = [], roleGroups: [String] = [],
        serviceGroup: String? = nil, members: [String: [String]] = [:]
    ) {
        self.objects = objects
        self.organGroups = organGroups
        self.roleGroups = roleGroups
        self.serviceGroup = serviceGroup
        self.members = members
    }

    /// The transitive person members of `group`, from the groups' `member` attributes:
    /// nested groups are followed, each group once, so cycles end. Members that are not in
    /// `objects` (outside the base) are ignored. Sorted by DN key.
    public func closure(of group: String) -> [String] {
        var seenGroups: Set<String> = [group]
        var people: Set<String> = []
        var stack = [group]
        while let current = stack.popLast() {
            guard let object = objects[current] else { continue }
            for member in object.members {
                guard let target = objects[member] else { continue }
                if target.isGroup {
                    if seenGroups.insert(member).inserted { stack.append(member) }
                } else {
                    people.insert(member)
                }
            }
        }
        return people.sorted()
    }
}
