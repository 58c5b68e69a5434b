import SyncEngine

/// One person or group read from the directory, as the server sent it: values are raw bytes,
/// decoded and validated by the planner (so that broken entries become rejections there).
public struct DirectoryObject: Sendable, Hashable {
    public var dn: String
    /// `DistinguishedName.key(dn)`: how DNs are matched.
    public var key: String
    public var isGroup: Bool
    /// The raw value of the configured GUID attribute (objectGUID bytes or entryUUID text).
    public var guid: [UInt8]? {
        get { attributes[DirectoryAttributes.guidSlot] }
        set { attributes[DirectoryAttributes.guidSlot] = newValue }
    }
    /// First values of the attributes the sync uses (lowercased names): cn, displayname,
    /// givenname, sn, mail, employeenumber (and the GUID, kept in the same buffer).
    public var attributes: DirectoryAttributes
    /// Member DN keys (`member_attribute` mode only; empty otherwise).
    public var members: [String]

    public init(
        dn: String, key: String? = nil, isGroup: Bool, guid: [UInt8]?, attributes: DirectoryAttributes = [:],
        members: [String] = []
    ) {
        self.dn = dn
        self.key = key ?? DistinguishedName.key(dn)
        self.isGroup = isGroup
        self.attributes = attributes
        self.members = members
        self.guid = guid
    }

    /// An object whose GUID is already in `attributes` (the decoder's path).
    init(dn: String, key: String, isGroup: Bool, attributes: DirectoryAttributes, members: [String]) {
        self.dn = dn
        self.key = key
        self.isGroup = isGroup
        self.attributes = attributes
        self.members = members
    }

    /// Convenience for tests and fixtures: text attributes.
    public init(
        dn: String, isGroup: Bool, guid: [UInt8]?, text: [String: String], members: [String] = []
    ) {
        self.init(
            dn: dn, isGroup: isGroup, guid: guid,
            attributes: DirectoryAttributes(Dictionary(uniqueKeysWithValues: text.map { ($0.key.lowercased(), Array($0.value.utf8)) })),
            members: members.map(DistinguishedName.key))
    }
}

/// The attribute values a `DirectoryObject` keeps, by lowercased name, as a dictionary would
/// hold them, but in one byte buffer: a directory of 20,000 people is 20,000 buffers, not
/// 160,000 arrays and dictionaries to build and free. Names other than the known ones go to a
/// plain dictionary.
public struct DirectoryAttributes: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    /// The known names, in slot order (the GUID's slot is not an attribute name).
    static let names = ["cn", "displayname", "givenname", "sn", "mail", "employeenumber"]
    static let guidSlot = "\u{0}guid"
    private static let slots = names + [guidSlot]

    /// The values of the present slots, in slot order, back to back.
    private var bytes: [UInt8] = []
    /// End offset in `bytes` of each slot's value (absent slots have length 0).
    private var ends = SIMD8<Int32>(repeating: 0)
    /// Bit i: slot i holds a value.
    private var present: UInt8 = 0
    private var extra: [String: [UInt8]] = [:]

    public init() {}

    public init(_ values: [String: [UInt8]]) {
        for (name, value) in values { self[name] = value }
    }

    public init(dictionaryLiteral elements: (String, [UInt8])...) {
        for (name, value) in elements { self[name] = value }
    }

    static func slot(_ name: String) -> Int? { slots.firstIndex(of: name) }

    public subscript(name: String) -> [UInt8]? {
        get {
            guard let i = Self.slot(name) else { return extra[name] }
            return self[slot: i].map(Array.init)
        }
        set {
            guard let i = Self.slot(name) else {
                extra[name] = newValue
                return
            }
            var values = (0..<Self.slots.count).map { self[slot: $0].map(Array.init) }
            values[i] = newValue
            self.set(values)
        }
    }

    /// Slot `i`'s bytes, without copying them.
    subscript(slot i: Int) -> ArraySlice<UInt8>? {
        guard present & (1 << i) != 0 else { return nil }
        let start = i == 0 ? 0 : Int(ends[i - 1])
        return bytes[start..<Int(ends[i])]
    }

    /// Every slot at once (nil: absent), in slot order.
    mutating func set(_ values: [[UInt8]?]) {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(values.reduce(0) { $0 + ($1?.count ?? 0) })
        var ends = SIMD8<Int32>(repeating: 0)
        var present: UInt8 = 0
        for (i, value) in values.enumerated() {
            if let value {
                buffer += value
                present |= 1 << i
            }
            ends[i] = Int32(buffer.count)
        }
        for i in values.count..<8 { ends[i] = Int32(buffer.count) }
        (bytes, self.ends, self.present) = (buffer, ends, present)
    }

    /// Builds the buffer from byte views (the decoder's path: one allocation, one copy).
    init(slots values: [UnsafeRawBufferPointer?]) {
        let total = values.reduce(0) { $0 + ($1?.count ?? 0) }
        var ends = SIMD8<Int32>(repeating: 0)
        var present: UInt8 = 0
        var offset = 0
        bytes = [UInt8](unsafeUninitializedCapacity: total) { buffer, count in
            for (i, value) in values.enumerated() {
                if let value {
                    if value.count > 0, let source = value.baseAddress, let target = buffer.baseAddress {
                        UnsafeMutableRawPointer(target + offset).copyMemory(from: source, byteCount: value.count)
                    }
                    offset += value.count
                    present |= 1 << i
                }
                ends[i] = Int32(offset)
            }
            count = total
        }
        for i in values.count..<8 { ends[i] = Int32(offset) }
        self.ends = ends
        self.present = present
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
