import Foundation
import SyncEngine

/// The `ldap` service's semantics as a pure function of the directory and the SudoSOS rows
/// (docs/ldap.md): organs from shared-account groups, their memberships with a stable index,
/// roles, service accounts, member accounts for the people met, and the check of bound users.
/// Only differences become changes, so an unchanged directory gives an empty plan.
struct LDAPPlanner {
    let directory: Directory
    let snapshot: Snapshot
    let guidAttribute: GUIDAttribute

    // Derived once.
    /// Every readable GUID in the directory (what "still exists" means) → how many objects
    /// carry it (more than one: none of them can be used).
    private var guidCount: [GUIDValue: Int] = [:]
    /// GUID → DN key, for the GUIDs bound to targeted ORGAN and INTEGRATION users (the check of
    /// bound users looks their objects up; members are never refreshed from the directory).
    private var objectByGUID: [GUIDValue: String] = [:]
    /// GUID → bound user id.
    private var boundUser: [String: Int] = [:]

    // Built while planning.
    private var plan: Plan
    private var nextRef = 0
    private var accounts: [String: UserRef?] = [:]
    private var rejectedKeys: Set<String> = []
    private var creations: [PlannedChange] = []
    private var bindings: [PlannedChange] = []
    private var serviceMembers: Set<String> = []
    private var employeeNumberCount: [Int: Int] = [:]
    /// organ id → its `organ_membership` rows.
    private var membershipsOfOrgan: [Int: [OrganMembership]] = [:]
    /// member number → the users holding it in `member_user`, ascending.
    private var usersWithMemberNumber: [Int: [Int]] = [:]
    private var passed: Set<String> = []

    init(directory: Directory, snapshot: Snapshot, guidAttribute: GUIDAttribute, service: String = "ldap") {
        self.directory = directory
        self.snapshot = snapshot
        self.guidAttribute = guidAttribute
        self.plan = Plan(service: service)
    }

    /// The service whose verdict counts for members with a member number.
    static let memberDatabaseService = "gewisdb"

    /// The types the service syncs; deleted users are left alone.
    static let targetTypes: Set<UserType> = [.organ, .member, .integration]

    static func isTargeted(_ user: User) -> Bool { targetTypes.contains(user.type) && !user.deleted }

    mutating func makePlan() -> Plan {
        indexGUIDs()
        indexBindings()
        if let service = directory.serviceGroup { serviceMembers = Set(directory.members[service] ?? []) }
        countEmployeeNumbers()

        var updates: [PlannedChange] = []
        var closings: [PlannedChange] = []
        var membershipChanges: [PlannedChange] = []
        var roleChanges: [PlannedChange] = []
        var population = 0
        let memberDatabase = snapshot.peers[Self.memberDatabaseService]
        var keptByMemberDatabase = 0
        var memberDatabaseUnknown = 0
        var downButNotAllowed = 0

        // Organs and their memberships.
        for key in directory.organGroups {
            guard let organ = organAccount(key) else { continue }
            let wanted = (directory.members[key] ?? []).compactMap { person in account(person).map { (person, $0) } }
            let (changes, size) = memberships(of: organ, wanted: wanted, group: key)
            membershipChanges += changes
            population += size
        }
        // Service accounts (members of the service group), even if in no organ.
        if let service = directory.serviceGroup {
            for person in directory.members[service] ?? [] { _ = account(person) }
            passed.insert(service)
        }
        // Roles.
        var warnedRoleGroups: Set<String> = []
        for key in directory.roleGroups {
            guard let group = directory.objects[key] else { continue }
            let cn = group.attributes["cn"].map { String(decoding: $0, as: UTF8.self) } ?? ""
            guard let role = snapshot.roles.first(where: { $0.name == cn }) else {
                if warnedRoleGroups.insert(key).inserted {
                    plan.warnings.append("role group \(group.dn) has no SudoSOS role named \"\(cn)\"; skipped")
                    plan.entities.skipped += 1
                }
                continue
            }
            passed.insert(key)
            let wanted = (directory.members[key] ?? []).compactMap { person in account(person).map { (person, $0) } }
            let (changes, size) = roleAssignments(of: role, wanted: wanted, group: group.dn)
            roleChanges += changes
            population += size
        }
        // The check of bound users.
        for user in snapshot.users.values.sorted(by: { $0.id < $1.id }) where Self.isTargeted(user) {
            population += 1
            guard let uuid = snapshot.ldapBindings[user.id]?.lowercased() else { continue }
            let guid = GUIDValue(hex: uuid)
            let exists = guid.map { guidCount[$0] != nil } ?? false
            if user.type == .member {
                plan.verdicts.append(Verdict(user: .existing(user.id), vouches: exists))
            }
            guard let guid, exists else {
                let gone = "directory object \(uuid) no longer exists"
                switch user.type {
                case .member:
                    // A member with a member number is GEWISDB's too: the binding stays while the
                    // gewisdb service vouches, or while its verdict is missing or stale.
                    guard let lidnr = snapshot.memberNumbers[user.id], let memberDatabase else {
                        closings.append(PlannedChange(.unbind(userId: user.id, uuid: uuid), reason: gone))
                        continue
                    }
                    switch memberDatabase.say(about: user.id) {
                    case .vouches:
                        keptByMemberDatabase += 1
                    case .unknown:
                        memberDatabaseUnknown += 1
                    case .doesNotVouch:
                        // Neither vouches: the whole down, GEWISDB's part too (as the original
                        // runs down() on every service).
                        let why = "\(gone) and the gewisdb service does not vouch for member \(lidnr) either"
                        closings.append(PlannedChange(.unbind(userId: user.id, uuid: uuid), reason: why))
                        if MemberClosing.isAllowed(in: snapshot) {
                            closings += MemberClosing.changes(closing: user, why: why, snapshot: snapshot)
                        } else {
                            downButNotAllowed += 1
                        }
                    }
                default:
                    if user.active {
                        closings.append(PlannedChange(
                            .deactivateUser(
                                userId: user.id,
                                fields: FieldChange.diff(user, to: [(.active, .flag(false))])),
                            reason: "directory object \(uuid) no longer exists; binding kept, so a reappearing object is this account again"))
                    }
                }
                continue
            }
            guard user.type != .member, guidCount[guid] == 1, let key = objectByGUID[guid], let object = directory.objects[key]
            else { continue }
            guard let name = displayName(object) else { continue }
            // As the original refreshes organs and service accounts on every run: the name from
            // the directory, no last name, no debt, active, no terms to accept.
            let fields = FieldChange.diff(
                user,
                to: [
                    (.firstName, .text(name)), (.lastName, .text("")), (.canGoIntoDebt, .flag(false)), (.active, .flag(true)),
                    (.acceptedToS, .text(TermsOfServiceStatus.notRequired.rawValue)),
                ])
            if !fields.isEmpty {
                updates.append(PlannedChange(
                    .updateUser(userId: user.id, fields: fields), reason: "in step with \(object.dn)"))
            }
        }

        plan.changes = creations + bindings + updates + closings + membershipChanges + roleChanges
        // Members this run creates or binds: the directory vouches for them.
        for planned in creations {
            if case .createUser(let new) = planned.change, new.type == .member {
                plan.verdicts.append(Verdict(user: .new(new.ref), vouches: true))
            }
        }
        for planned in bindings {
            if case .bind(let user, _) = planned.change { plan.verdicts.append(Verdict(user: user, vouches: true)) }
        }
        if keptByMemberDatabase > 0 {
            plan.warnings.append(
                "\(keptByMemberDatabase) member(s) whose directory object is gone keep their binding: the gewisdb service "
                    + "still vouches for them")
        }
        if memberDatabaseUnknown > 0, let memberDatabase {
            plan.warnings.append(
                "\(memberDatabaseUnknown) member(s) whose directory object is gone keep their binding: the gewisdb service's "
                    + "verdict on them is missing or older than \(Int(memberDatabase.maxAgeSeconds / 3600))h")
        }
        if downButNotAllowed > 0 {
            plan.warnings.append(
                "\(downButNotAllowed) member(s) are vouched for by neither service, but the server setting "
                    + "\(MemberClosing.allowDeleteSetting) is not true: unbound, none closed")
        }
        // The base of max_deletion_ratio: the users this service syncs plus the membership and
        // role rows of the groups it syncs.
        plan.population = population
        plan.entities.passed = passed.count
        // Failed: the objects rejected whole (a dropped e-mail address leaves its person passed).
        plan.entities.failed = rejectedKeys.count
        return plan
    }

    // MARK: - GUIDs and bindings

    /// One pass over the directory, without strings: GUIDs counted, and the objects of the
    /// GUIDs the check of bound users looks up. What a GUID cannot be used for is worked out
    /// only for the objects the plan meets (`guid(of:)`).
    private mutating func indexGUIDs() {
        var looked: Set<GUIDValue> = []
        for (userId, uuid) in snapshot.ldapBindings {
            guard let user = snapshot.users[userId], Self.isTargeted(user), user.type != .member,
                let guid = GUIDValue(hex: uuid.lowercased())
            else { continue }
            looked.insert(guid)
        }
        guidCount.reserveCapacity(directory.objects.count)
        for (key, object) in directory.objects {
            guard let raw = object.guid, let guid = GUIDValue(raw, attribute: guidAttribute) else { continue }
            guidCount[guid, default: 0] += 1
            if looked.contains(guid) { objectByGUID[guid] = key }
        }
    }

    /// The object's GUID as 32 lowercase hex digits, or why it cannot be used.
    private func guid(of object: DirectoryObject) -> Result<String, Rejection> {
        guard let raw = object.guid else {
            return .failure(Rejection(
                record: object.dn, reason: .missingAttribute, detail: "\(guidAttribute.rawValue) is missing"))
        }
        guard let hex = Self.guidHex(raw, attribute: guidAttribute), let value = GUIDValue(hex: hex) else {
            return .failure(Rejection(
                record: object.dn, reason: .unparsable,
                detail: "\(guidAttribute.rawValue) is not a GUID (\(raw.count) bytes)"))
        }
        let count = guidCount[value] ?? 1
        guard count == 1 else {
            return .failure(Rejection(
                record: object.dn, reason: .duplicateKey,
                detail: "\(guidAttribute.rawValue) is shared with \(count - 1) other object\(count == 2 ? "" : "s")"))
        }
        return .success(hex)
    }

    /// 32 lowercase hex digits: objectGUID's 16 bytes in wire order (as SudoSOS stores them),
    /// or entryUUID's text without dashes.
    static func guidHex(_ raw: [UInt8], attribute: GUIDAttribute) -> String? {
        switch attribute {
        case .objectGUID:
            guard raw.count == 16 else { return nil }
            return String(unsafeUninitializedCapacity: 32) { out in
                for (i, byte) in raw.enumerated() {
                    out[2 * i] = hexDigits[Int(byte >> 4)]
                    out[2 * i + 1] = hexDigits[Int(byte & 0xF)]
                }
                return 32
            }
        case .entryUUID:
            guard let text = String(validating: raw, as: UTF8.self) else { return nil }
            let digits = text.lowercased().filter { $0 != "-" }
            guard digits.count == 32, digits.allSatisfy({ $0.isASCII && $0.isHexDigit }) else { return nil }
            return digits
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func indexBindings() {
        for (userId, uuid) in snapshot.ldapBindings.sorted(by: { $0.key < $1.key }) {
            let hex = uuid.lowercased()
            if boundUser[hex] == nil { boundUser[hex] = userId }
        }
        for row in snapshot.organMemberships { membershipsOfOrgan[row.organId, default: []].append(row) }
        for (userId, number) in snapshot.memberNumbers.sorted(by: { $0.key < $1.key }) {
            usersWithMemberNumber[number, default: []].append(userId)
        }
    }

    private mutating func countEmployeeNumbers() {
        var met: Set<String> = []
        for (_, people) in directory.members { met.formUnion(people) }
        for key in met {
            guard let raw = directory.objects[key]?.attributes["employeenumber"],
                let number = Self.memberNumber(raw)
            else { continue }
            employeeNumberCount[number, default: 0] += 1
        }
    }

    static func memberNumber(_ raw: [UInt8]) -> Int? {
        guard let text = String(validating: raw, as: UTF8.self) else { return nil }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(trimmed), n > 0 else { return nil }
        return n
    }

    // MARK: - Accounts

    private mutating func reject(_ key: String, _ rejection: Rejection) {
        if rejectedKeys.insert(key).inserted { plan.rejected.append(rejection) }
    }

    /// A text attribute, validated as a name (UTF-8, no NUL, ≤ 64 characters).
    private mutating func name(_ object: DirectoryObject, _ attribute: String, field: String) throws(Rejection) -> String? {
        guard let raw = object.attributes[attribute] else { return nil }
        let text = try Validation.text(raw, field: field, record: object.dn)
        return try Validation.name(text, field: field, record: object.dn)
    }

    /// displayName, or cn when the object has none (AD groups often have no displayName).
    private mutating func displayName(_ object: DirectoryObject) -> String? {
        do throws(Rejection) {
            if let display = try name(object, "displayname", field: "displayName"), !display.isEmpty { return display }
            return try Validation.required(try name(object, "cn", field: "cn"), field: "displayName", record: object.dn)
        } catch {
            reject(object.key, error)
            return nil
        }
    }

    /// What a directory object is before the plan creates anything for it.
    private enum Binding {
        /// Unknown, without a usable GUID (rejected), or bound to an account this sync does not own.
        case unusable
        /// Bound to an existing account this sync owns (counted as passed).
        case bound(UserRef)
        /// Not bound yet: the object and its GUID.
        case unbound(DirectoryObject, String)
    }

    private mutating func binding(of key: String) -> Binding {
        guard let object = directory.objects[key] else { return .unusable }
        let guid: String
        switch self.guid(of: object) {
        case .success(let hex): guid = hex
        case .failure(let problem):
            reject(key, problem)
            return .unusable
        }
        if let userId = boundUser[guid] {
            guard let user = snapshot.users[userId], Self.isTargeted(user) else { return .unusable }
            passed.insert(key)
            return .bound(.existing(userId))
        }
        return .unbound(object, guid)
    }

    /// The organ account of a shared-account group: bound, or created now.
    private mutating func organAccount(_ key: String) -> UserRef? {
        let object: DirectoryObject, guid: String
        switch binding(of: key) {
        case .unusable: return nil
        case .bound(let ref): return ref
        case .unbound(let unboundObject, let unboundGUID): (object, guid) = (unboundObject, unboundGUID)
        }
        guard let name = displayName(object) else { return nil }
        passed.insert(key)
        let ref = create(NewUser(
            ref: 0, type: .organ, firstName: name, active: true, acceptedToS: .notRequired, canGoIntoDebt: false),
            guid: guid, reason: "new shared-account group \(object.dn)")
        return ref
    }

    /// The account of a person met through a group: bound, bound now to the member user with
    /// the same member number, or created now. nil when the person cannot be used (rejected,
    /// or bound to a deleted account).
    private mutating func account(_ key: String) -> UserRef? {
        if let known = accounts[key] { return known }
        let result = resolveAccount(key)
        accounts[key] = result
        return result
    }

    private mutating func resolveAccount(_ key: String) -> UserRef? {
        let object: DirectoryObject, guid: String
        switch binding(of: key) {
        case .unusable: return nil
        case .bound(let ref): return ref
        case .unbound(let unboundObject, let unboundGUID): (object, guid) = (unboundObject, unboundGUID)
        }
        if serviceMembers.contains(key) {
            guard let name = displayName(object) else { return nil }
            passed.insert(key)
            return create(NewUser(
                ref: 0, type: .integration, firstName: name, active: true, acceptedToS: .notRequired, canGoIntoDebt: false),
                guid: guid, reason: "new service account \(object.dn)")
        }
        do throws(Rejection) {
            var memberId: Int?
            if let raw = object.attributes["employeenumber"] {
                guard let number = Self.memberNumber(raw) else {
                    throw Rejection(record: object.dn, reason: .unparsable, detail: "employeeNumber is not a member number")
                }
                guard employeeNumberCount[number, default: 0] <= 1 else {
                    throw Rejection(
                        record: object.dn, reason: .duplicateKey,
                        detail: "employeeNumber \(number) is shared with another directory object")
                }
                let owners = usersWithMemberNumber[number] ?? []
                let live = owners.filter { snapshot.users[$0].map(Self.isTargeted) ?? false }
                if live.count > 1 {
                    throw Rejection(
                        record: object.dn, reason: .duplicateKey,
                        detail: "member \(number) belongs to \(live.count) SudoSOS users")
                }
                if let userId = live.first {
                    if let other = snapshot.ldapBindings[userId] {
                        throw Rejection(
                            record: object.dn, reason: .duplicateKey,
                            detail: "member \(number) (user \(userId)) is already bound to directory object \(other.lowercased())")
                    }
                    passed.insert(key)
                    bindings.append(PlannedChange(
                        .bind(user: .existing(userId), uuid: guid),
                        reason: "\(object.dn) has the member number of user \(userId)"))
                    boundUser[guid] = userId
                    return .existing(userId)
                }
                if !owners.isEmpty {
                    throw Rejection(
                        record: object.dn, reason: .duplicateKey,
                        detail: "member \(number) belongs to a deleted SudoSOS user")
                }
                memberId = number
            }
            let given = try Validation.required(try name(object, "givenname", field: "givenName"), field: "givenName", record: object.dn)
            let sn = try name(object, "sn", field: "sn") ?? ""
            // A bad address drops the address, not the person: the account is created with an
            // empty e-mail and the field's rejection is counted (the person still passes).
            var email = ""
            if let raw = object.attributes["mail"] {
                do throws(Rejection) {
                    email = try Validation.email(try Validation.text(raw, field: "mail", record: object.dn), field: "mail", record: object.dn)
                } catch {
                    plan.rejected.append(Rejection(record: error.record, reason: .invalidEmail, detail: error.detail))
                }
            }
            passed.insert(key)
            return create(NewUser(
                ref: 0, type: .member, firstName: given, lastName: sn, email: email, active: true, ofAge: false,
                acceptedToS: .notAccepted, canGoIntoDebt: true, memberId: memberId),
                guid: guid, reason: "\(object.dn) is in a synced group and has no account")
        } catch {
            reject(key, error)
            return nil
        }
    }

    private mutating func create(_ user: NewUser, guid: String, reason: String) -> UserRef {
        nextRef += 1
        var user = user
        user.ref = nextRef
        creations.append(PlannedChange(.createUser(user), reason: reason))
        creations.append(PlannedChange(.bind(user: .new(nextRef), uuid: guid), reason: reason))
        return .new(nextRef)
    }

    // MARK: - Memberships and roles

    /// Organ memberships: staying members keep their index; new members get the lowest free
    /// indices, in DN order; members no longer in the group are removed. Rows of users this
    /// service does not sync (e.g. local users) are left alone. Returns the changes and the
    /// number of existing rows (for the deletion ratio).
    private func memberships(of organ: UserRef, wanted: [(String, UserRef)], group: String) -> ([PlannedChange], Int) {
        let dn = directory.objects[group]?.dn ?? group
        var current: [Int: Int] = [:]
        if case .existing(let organId) = organ {
            for row in membershipsOfOrgan[organId] ?? [] { current[row.userId] = row.index }
        }
        var changes: [PlannedChange] = []
        var wantedExisting: Set<Int> = []
        var used: Set<Int> = []
        var newcomers: [(String, UserRef)] = []
        var seen: Set<UserRef> = []
        for (key, ref) in wanted.sorted(by: { $0.0 < $1.0 }) where seen.insert(ref).inserted {
            if case .existing(let id) = ref, let index = current[id] {
                wantedExisting.insert(id)
                used.insert(index)
            } else {
                newcomers.append((key, ref))
            }
        }
        if case .existing(let organId) = organ {
            for (userId, index) in current.sorted(by: { $0.key < $1.key }) where !wantedExisting.contains(userId) {
                // A row of a user this service does not manage stays, and so does its index:
                // a newcomer must not share it.
                guard snapshot.users[userId] != nil else {
                    used.insert(index)
                    continue
                }
                changes.append(PlannedChange(
                    .removeMembership(userId: userId, organId: organId), reason: "no longer a member of \(dn)"))
            }
        }
        var next = 0
        for (key, ref) in newcomers {
            while used.contains(next) { next += 1 }
            used.insert(next)
            let who = directory.objects[key]?.dn ?? key
            changes.append(PlannedChange(
                .addMembership(user: ref, organ: organ, index: next), reason: "\(who) is a member of \(dn)"))
        }
        return (changes, current.count)
    }

    /// Role assignments: exactly the group's transitive members (of the users this service
    /// syncs; assignments of other users are left alone).
    private func roleAssignments(of role: Role, wanted: [(String, UserRef)], group dn: String) -> ([PlannedChange], Int) {
        let current = Set(snapshot.roleAssignments.filter { $0.roleId == role.id && snapshot.users[$0.userId] != nil }.map(\.userId))
        var changes: [PlannedChange] = []
        var keep: Set<Int> = []
        var seen: Set<UserRef> = []
        var additions: [PlannedChange] = []
        for (key, ref) in wanted.sorted(by: { $0.0 < $1.0 }) where seen.insert(ref).inserted {
            if case .existing(let id) = ref, current.contains(id) {
                keep.insert(id)
                continue
            }
            let who = directory.objects[key]?.dn ?? key
            additions.append(PlannedChange(
                .addRole(user: ref, roleId: role.id, roleName: role.name), reason: "\(who) is a member of \(dn)"))
        }
        for userId in current.sorted() where !keep.contains(userId) {
            changes.append(PlannedChange(
                .removeRole(userId: userId, roleId: role.id, roleName: role.name), reason: "no longer a member of \(dn)"))
        }
        return (changes + additions, current.count)
    }
}

/// A GUID's 16 bytes, in the order of its 32 hex digits: a cheap key (no string) for indexing
/// every object of a directory.
struct GUIDValue: Hashable {
    var high: UInt64
    var low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From the configured attribute's raw value (nil when it is not a GUID).
    init?(_ raw: [UInt8], attribute: GUIDAttribute) {
        switch attribute {
        case .objectGUID:
            guard raw.count == 16 else { return nil }
            var high: UInt64 = 0, low: UInt64 = 0
            for i in 0..<8 { high = high << 8 | UInt64(raw[i]) }
            for i in 8..<16 { low = low << 8 | UInt64(raw[i]) }
            self.init(high: high, low: low)
        case .entryUUID:
            guard let hex = LDAPPlanner.guidHex(raw, attribute: .entryUUID) else { return nil }
            self.init(hex: hex)
        }
    }

    /// From exactly 32 lowercase hex digits (nil otherwise).
    init?(hex: String) {
        var high: UInt64 = 0, low: UInt64 = 0, count = 0
        for byte in hex.utf8 {
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            guard count < 32 else { return nil }
            if count < 16 { high = high << 4 | UInt64(nibble) } else { low = low << 4 | UInt64(nibble) }
            count += 1
        }
        guard count == 32 else { return nil }
        self.init(high: high, low: low)
    }
}
