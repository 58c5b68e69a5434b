import SyncEngine
import Testing

@testable import LDAPSource

/// A small organisation built in memory (member_attribute style: members resolved here).
struct Org {
    static let root = "OU=Org,DC=example,DC=org"
    var objects: [DirectoryObject] = []
    var organs: [String] = []
    var roles: [String] = []
    var service: String?

    static func guid(_ n: Int) -> [UInt8] { (0..<16).map { UInt8(truncatingIfNeeded: n &* 31 &+ $0) } }
    static func hex(_ n: Int) -> String { LDAPPlanner.guidHex(guid(n), attribute: .objectGUID)! }

    @discardableResult
    mutating func person(
        _ cn: String, _ n: Int, given: String? = "Given", sn: String? = "Sn", mail: String? = nil,
        employee: String? = nil, ou: String = "People"
    ) -> String {
        let dn = "CN=\(cn),OU=\(ou),\(Self.root)"
        var text = ["cn": cn, "displayName": cn]
        if let given { text["givenName"] = given }
        if let sn { text["sn"] = sn }
        if let mail { text["mail"] = mail }
        if let employee { text["employeeNumber"] = employee }
        objects.append(DirectoryObject(dn: dn, isGroup: false, guid: Self.guid(n), text: text))
        return dn
    }

    @discardableResult
    mutating func group(_ cn: String, _ n: Int, ou: String, display: String? = nil, members: [String]) -> String {
        let dn = "CN=\(cn),OU=\(ou),\(Self.root)"
        var text = ["cn": cn]
        if let display { text["displayName"] = display }
        objects.append(DirectoryObject(dn: dn, isGroup: true, guid: Self.guid(n), text: text, members: members))
        switch ou {
        case "Shared": organs.append(dn)
        case "Roles": roles.append(dn)
        default: break
        }
        return dn
    }

    var directory: Directory {
        var d = Directory()
        for object in objects { d.objects[object.key] = object }
        d.organGroups = organs.map(DistinguishedName.key).sorted()
        d.roleGroups = roles.map(DistinguishedName.key).sorted()
        d.serviceGroup = service.map(DistinguishedName.key)
        for group in d.organGroups + d.roleGroups + (d.serviceGroup.map { [$0] } ?? []) {
            d.members[group] = d.closure(of: group)
        }
        return d
    }
}

func plan(_ org: Org, _ snapshot: Snapshot, guid: GUIDAttribute = .objectGUID) -> Plan {
    var planner = LDAPPlanner(directory: org.directory, snapshot: snapshot, guidAttribute: guid)
    return planner.makePlan()
}

extension Plan {
    func count(_ action: ChangeAction) -> Int { countsByAction[action] ?? 0 }
    var created: [NewUser] {
        changes.compactMap { if case .createUser(let u) = $0.change { return u } else { return nil } }
    }
}

@Suite struct LDAPPlannerTests {
    /// The fixture used by several tests: an organ with a nested group, a role, a service account.
    static func sample() -> Org {
        var org = Org()
        let anna = org.person("Anna", 1, given: "Anna", sn: "de Vries", mail: "anna@example.org", employee: "1001")
        let bram = org.person("Bram", 2, given: "Bram", sn: "Jansen")
        let chris = org.person("Chris", 3, given: "Chris", sn: "Zoë", employee: "1003")
        let svc = org.person("svc-pos", 4, ou: "Service")
        let nested = org.group("Tappers", 10, ou: "Groups", members: [chris])
        org.group("BAC", 11, ou: "Shared", display: "BAC – Borrel", members: [anna, bram, nested])
        org.group("BAC PM", 12, ou: "Roles", members: [anna, nested])
        org.service = org.group("Services", 13, ou: "Groups", members: [svc])
        return org
    }

    static let roles = [Role(id: 1, name: "BAC PM"), Role(id: 2, name: "Other")]

    @Test func firstRunCreatesWhatTheDirectoryImpliesAndASecondRunNothing() {
        let org = Self.sample()
        let start = Snapshot(roles: Self.roles)
        let first = plan(org, start)
        #expect(first.rejected.isEmpty)
        #expect(first.count(.created) == 5)
        #expect(first.count(.bound) == 5)
        #expect(first.count(.membershipAdded) == 3)
        #expect(first.count(.roleAdded) == 2)
        let organ = first.created.first { $0.type == .organ }
        #expect(organ?.firstName == "BAC – Borrel")
        #expect(organ?.acceptedToS == .notRequired)
        let anna = first.created.first { $0.firstName == "Anna" }
        #expect(anna?.memberId == 1001 && anna?.lastName == "de Vries" && anna?.canGoIntoDebt == true)
        #expect(anna?.email == "anna@example.org" && anna?.type == .member)
        #expect(first.created.first { $0.type == .integration }?.firstName == "svc-pos")
        let indices = first.changes.compactMap { c -> Int? in
            if case .addMembership(_, _, let i) = c.change { return i } else { return nil }
        }
        #expect(indices.sorted() == [0, 1, 2])

        let after = apply(first, to: start)
        let second = plan(org, after)
        #expect(second.changes.isEmpty, "second plan: \(second.changes)")
        #expect(second.rejected.isEmpty)
    }

    @Test func stayingMembersKeepTheirIndexNewOnesTakeTheLowestFree() {
        var org = Org()
        let people = (1...5).map { org.person("P\($0)", $0, employee: nil) }
        org.group("Organ", 50, ou: "Shared", members: [people[0], people[2], people[3], people[4]])
        var users: [Int: User] = [100: User(id: 100, firstName: "Organ", type: .organ, acceptedToS: .notRequired)]
        var bindings = [100: Org.hex(50)]
        for i in 1...5 {
            users[i] = User(id: i, firstName: "P\(i)", type: .member)
            bindings[i] = Org.hex(i)
        }
        // P1 at 0, P2 at 1 (leaves), P3 at 2 stay; P4 and P5 are new.
        let memberships = [
            OrganMembership(userId: 1, organId: 100, index: 0), OrganMembership(userId: 2, organId: 100, index: 1),
            OrganMembership(userId: 3, organId: 100, index: 2),
        ]
        let p = plan(org, Snapshot(users: users, ldapBindings: bindings, organMemberships: memberships))
        #expect(p.changes.map(\.change) == [
            .removeMembership(userId: 2, organId: 100),
            .addMembership(user: .existing(4), organ: .existing(100), index: 1),
            .addMembership(user: .existing(5), organ: .existing(100), index: 3),
        ])
    }

    /// Issue 11 item 4: a row of a user the service does not manage (a local user, an admin)
    /// keeps its index, and no newcomer takes it.
    @Test func newcomersNeverShareAnIndexWithRowsOfUnmanagedUsers() {
        var org = Org()
        let p1 = org.person("P1", 1)
        let p2 = org.person("P2", 2)
        let p3 = org.person("P3", 3)
        org.group("Organ", 50, ou: "Shared", members: [p1, p2, p3])
        var users: [Int: User] = [100: User(id: 100, firstName: "Organ", type: .organ, acceptedToS: .notRequired)]
        var bindings = [100: Org.hex(50)]
        for i in 1...3 {
            users[i] = User(id: i, firstName: "P\(i)", type: .member)
            bindings[i] = Org.hex(i)
        }
        // P1 stays at 1; local users 900 and 901 (not in the snapshot's users: not managed) hold 0 and 2.
        let memberships = [
            OrganMembership(userId: 900, organId: 100, index: 0), OrganMembership(userId: 1, organId: 100, index: 1),
            OrganMembership(userId: 901, organId: 100, index: 2),
        ]
        let p = plan(org, Snapshot(users: users, ldapBindings: bindings, organMemberships: memberships))
        #expect(p.changes.map(\.change) == [
            .addMembership(user: .existing(2), organ: .existing(100), index: 3),
            .addMembership(user: .existing(3), organ: .existing(100), index: 4),
        ])
        let after = apply(p, to: Snapshot(users: users, ldapBindings: bindings, organMemberships: memberships))
        let indices = after.organMemberships.filter { $0.organId == 100 }.map(\.index)
        #expect(Set(indices).count == indices.count, "two rows of one organ share an index: \(indices)")
    }

    /// Issue 11 item 3: organs and service accounts still in the directory are refreshed as the
    /// original does on every run: firstName = displayName, lastName '', canGoIntoDebt false,
    /// active, NOT_REQUIRED.
    @Test func organsAndServiceAccountsAreRefreshedAsTheOriginal() {
        var org = Org()
        let svc = org.person("svc-pos", 4, ou: "Service")
        org.group("Organ", 50, ou: "Shared", display: "Organ", members: [])
        org.service = org.group("Services", 13, ou: "Groups", members: [svc])
        let users = [
            100: User(id: 100, firstName: "Organ", lastName: "Stale", active: true, type: .organ, acceptedToS: .notRequired,
                      canGoIntoDebt: true),
            101: User(id: 101, firstName: "old name", lastName: "x", active: false, type: .integration,
                      acceptedToS: .accepted, canGoIntoDebt: true),
        ]
        let p = plan(org, Snapshot(users: users, ldapBindings: [100: Org.hex(50), 101: Org.hex(4)]))
        #expect(Set(p.changes.map(\.change)) == [
            .updateUser(userId: 100, fields: [
                FieldChange(field: .lastName, old: .text("Stale"), new: .text("")),
                FieldChange(field: .canGoIntoDebt, old: .flag(true), new: .flag(false)),
            ]),
            .updateUser(userId: 101, fields: [
                FieldChange(field: .firstName, old: .text("old name"), new: .text("svc-pos")),
                FieldChange(field: .lastName, old: .text("x"), new: .text("")),
                FieldChange(field: .canGoIntoDebt, old: .flag(true), new: .flag(false)),
                FieldChange(field: .active, old: .flag(false), new: .flag(true)),
                FieldChange(field: .acceptedToS, old: .text("ACCEPTED"), new: .text("NOT_REQUIRED")),
            ]),
        ])
        // Applied, a second run plans nothing.
        let after = apply(p, to: Snapshot(users: users, ldapBindings: [100: Org.hex(50), 101: Org.hex(4)]))
        #expect(plan(org, after).changes.isEmpty)
    }

    /// Issue 11 item 1: one verdict per user. A bound member whose directory object is gone keeps
    /// its binding while the gewisdb service vouches (or its verdict is missing or stale); when
    /// it does not vouch either, the whole down happens here: unbind and close. A member without
    /// a member number, or a deployment without the gewisdb service, is the directory's alone.
    @Test func aMemberGoneFromTheDirectoryKeepsItsBindingWhileGEWISDBVouches() {
        let org = Org()
        var users: [Int: User] = [:]
        var bindings: [Int: String] = [:]
        for i in 1...5 {
            users[i] = User(id: i, firstName: "P\(i)", type: .member, canGoIntoDebt: true)
            bindings[i] = Org.hex(i)
        }
        var snapshot = Snapshot(
            users: users, ldapBindings: bindings, memberNumbers: [1: 7001, 2: 7002, 3: 7003, 4: 7004],
            settings: ["allowGewisSyncDelete": "true"], balances: [2: .cents(250)])
        // 1 vouched for by GEWISDB; 2 not (balance 2.50); 3 vouched, 3 days ago; 4 no verdict; 5 no member number.
        snapshot.peers["gewisdb"] = PeerVerdicts(
            service: "gewisdb", maxAgeSeconds: 48 * 3600,
            verdicts: [
                1: RecordedVerdict(vouches: true, ageSeconds: 60, runId: 1),
                2: RecordedVerdict(vouches: false, ageSeconds: 60, runId: 1),
                3: RecordedVerdict(vouches: true, ageSeconds: 3 * 86400, runId: 1),
            ])
        let p = plan(org, snapshot)
        #expect(p.changes.map(\.change) == [
            .unbind(userId: 2, uuid: Org.hex(2)),
            .deactivateUser(userId: 2, fields: [
                FieldChange(field: .active, old: .flag(true), new: .flag(false)),
                FieldChange(field: .canGoIntoDebt, old: .flag(true), new: .flag(false)),
            ]),
            .notice(userId: 2, kind: "membership_expiry", message: p.changes.compactMap {
                if case .notice(_, _, let m) = $0.change { return m } else { return nil }
            }.first ?? ""),
            .unbind(userId: 5, uuid: Org.hex(5)),
        ])
        #expect(p.warnings.contains { $0.hasPrefix("1 member(s)") && $0.contains("still vouches") })
        #expect(p.warnings.contains { $0.hasPrefix("2 member(s)") && $0.contains("missing or older than 48h") })
        #expect(p.verdicts == (1...5).map { Verdict(user: .existing($0), vouches: false) })

        // Without the gewisdb service here, the directory decides alone: every binding goes, nobody is closed.
        snapshot.peers = [:]
        let alone = plan(org, snapshot)
        #expect(alone.count(.unbound) == 5 && alone.count(.deactivated) == 0 && alone.count(.deleted) == 0)
        // Not allowed to close: unbound only.
        snapshot.peers["gewisdb"] = PeerVerdicts(
            service: "gewisdb", maxAgeSeconds: 48 * 3600, verdicts: [2: RecordedVerdict(vouches: false, ageSeconds: 60, runId: 1)])
        snapshot.settings = [:]
        let notAllowed = plan(org, snapshot)
        #expect(notAllowed.changes.map(\.change) == [.unbind(userId: 2, uuid: Org.hex(2)), .unbind(userId: 5, uuid: Org.hex(5))])
    }

    /// The directory's verdicts: a bound member vouched for while its object exists; members
    /// created or bound by the run are vouched for too.
    @Test func verdictsOfTheDirectory() {
        var org = Org()
        let anna = org.person("Anna", 1, employee: "1234")
        let bram = org.person("Bram", 2)
        org.person("Chris", 3)
        org.group("Organ", 50, ou: "Shared", members: [anna, bram])
        let snapshot = Snapshot(
            users: [7: User(id: 7, firstName: "Anna", type: .member), 8: User(id: 8, firstName: "Chris", type: .member),
                    9: User(id: 9, firstName: "Gone", type: .member)],
            ldapBindings: [8: Org.hex(3), 9: Org.hex(9)], memberNumbers: [7: 1234])
        let p = plan(org, snapshot)
        #expect(Set(p.verdicts) == [
            Verdict(user: .existing(8), vouches: true), Verdict(user: .existing(9), vouches: false),
            Verdict(user: .existing(7), vouches: true), Verdict(user: .new(2), vouches: true),
        ])
    }

    @Test func aKnownMemberNumberBindsTheExistingMemberUser() {
        var org = Org()
        let anna = org.person("Anna", 1, employee: "1234")
        org.group("Organ", 50, ou: "Shared", members: [anna])
        let snapshot = Snapshot(users: [7: User(id: 7, firstName: "Anna", type: .member)], memberNumbers: [7: 1234])
        let p = plan(org, snapshot)
        #expect(p.created.map(\.type) == [.organ])
        #expect(p.changes.contains { $0.change == .bind(user: .existing(7), uuid: Org.hex(1)) })
        #expect(p.changes.contains { $0.change == .addMembership(user: .existing(7), organ: .new(1), index: 0) })
    }

    @Test func brokenEntriesAreRejectedWithAReasonAndTheRunGoesOn() {
        var org = Org()
        let ok = org.person("Good", 1)
        let badNumber = org.person("BadNumber", 2, employee: "m1234x")
        let long = org.person("Long", 3, given: String(repeating: "é", count: 65))
        let noGiven = org.person("NoGiven", 4, given: nil)
        let badMail = org.person("BadMail", 5, mail: "not-an-address")
        let dup1 = org.person("Dup1", 6)
        var dup2Object = DirectoryObject(dn: "CN=Dup2,OU=People,\(Org.root)", isGroup: false, guid: Org.guid(6), text: ["givenName": "D"])
        org.objects.append(dup2Object)
        dup2Object.key = DistinguishedName.key(dup2Object.dn)
        var invalid = DirectoryObject(dn: "CN=Invalid,OU=People,\(Org.root)", isGroup: false, guid: Org.guid(7), text: [:])
        invalid.attributes["givenname"] = [0x41, 0xFF, 0xFE]
        org.objects.append(invalid)
        org.group("Organ", 50, ou: "Shared", members: [ok, badNumber, long, noGiven, badMail, dup1, dup2Object.dn, invalid.dn])
        org.group("Too long", 51, ou: "Shared", display: String(repeating: "x", count: 65), members: [ok])
        let p = plan(org, Snapshot())
        let reasons = Dictionary(grouping: p.rejected, by: \.reason).mapValues(\.count)
        #expect(reasons == [.unparsable: 1, .tooLong: 2, .missingAttribute: 1, .invalidEmail: 1, .duplicateKey: 2, .invalidEncoding: 1])
        // BadMail is created without its address (issue 11 item 6).
        #expect(p.created.map(\.firstName).sorted() == ["Given", "Given", "Organ"])
        #expect(p.created.filter { $0.type == .member }.allSatisfy { $0.email.isEmpty })
        #expect(p.entities.failed == 7)
        #expect(!p.rejected.contains { $0.detail.contains("not-an-address") }, "no e-mail address in a rejection")
    }

    @Test func anOrganThatDisappearsIsDeactivatedKeepsItsBindingAndComesBack() {
        var org = Org()
        let anna = org.person("Anna", 1)
        let users = [
            100: User(id: 100, firstName: "Organ", type: .organ, acceptedToS: .notRequired),
            101: User(id: 101, firstName: "Anna", type: .member),
            102: User(id: 102, firstName: "Gone", type: .member),
            103: User(id: 103, firstName: "Svc", type: .integration, acceptedToS: .notRequired),
        ]
        let bindings = [100: Org.hex(50), 101: Org.hex(1), 102: Org.hex(2), 103: Org.hex(3)]
        let snapshot = Snapshot(users: users, ldapBindings: bindings)
        let gone = plan(org, snapshot)
        #expect(Set(gone.changes.map(\.change)) == [
            .deactivateUser(userId: 100, fields: [FieldChange(field: .active, old: .flag(true), new: .flag(false))]),
            .deactivateUser(userId: 103, fields: [FieldChange(field: .active, old: .flag(true), new: .flag(false))]),
            .unbind(userId: 102, uuid: Org.hex(2)),
        ])
        #expect(!gone.changes.contains { if case .deleteUser = $0.change { return true } else { return false } })
        // The group comes back: the same account, active again, nothing created.
        let after = apply(gone, to: snapshot)
        org.group("Organ", 50, ou: "Shared", display: "Organ", members: [anna])
        let back = plan(org, after)
        #expect(back.created.isEmpty)
        #expect(back.changes.map(\.change) == [
            .updateUser(userId: 100, fields: [FieldChange(field: .active, old: .flag(false), new: .flag(true))]),
            .addMembership(user: .existing(101), organ: .existing(100), index: 0),
        ])
    }

    @Test func aRenamedGroupUpdatesOnlyTheName() {
        var org = Self.sample()
        let start = Snapshot(roles: Self.roles)
        let after = apply(plan(org, start), to: start)
        let index = org.objects.firstIndex { $0.dn.hasPrefix("CN=BAC,") }!
        org.objects[index].attributes["displayname"] = Array("BAC (renamed)".utf8)
        let organId = after.users.values.first { $0.type == .organ }!.id
        #expect(plan(org, after).changes.map(\.change) == [
            .updateUser(userId: organId, fields: [FieldChange(field: .firstName, old: .text("BAC – Borrel"), new: .text("BAC (renamed)"))])
        ])
    }

    @Test func rolesFollowTheGroupExactlyAndUnknownGroupsAreWarnedOnce() {
        var org = Org()
        let anna = org.person("Anna", 1)
        let bram = org.person("Bram", 2)
        org.group("BAC PM", 12, ou: "Roles", members: [bram])
        org.group("No Such Role", 13, ou: "Roles", members: [anna])
        org.group("Other", 14, ou: "Roles", members: [])
        let users = [1: User(id: 1, firstName: "Anna", type: .member), 2: User(id: 2, firstName: "Bram", type: .member),
                     9: User(id: 9, firstName: "Admin", type: .localAdmin)]
        let snapshot = Snapshot(
            users: users, ldapBindings: [1: Org.hex(1), 2: Org.hex(2)], roles: Self.roles,
            roleAssignments: [RoleAssignment(userId: 1, roleId: 1), RoleAssignment(userId: 1, roleId: 2), RoleAssignment(userId: 42, roleId: 1)])
        let p = plan(org, snapshot)
        #expect(Set(p.changes.map(\.change)) == [
            .removeRole(userId: 1, roleId: 1, roleName: "BAC PM"),
            .addRole(user: .existing(2), roleId: 1, roleName: "BAC PM"),
            .removeRole(userId: 1, roleId: 2, roleName: "Other"),
        ])
        #expect(p.warnings.count == 1)
        #expect(p.warnings.first?.contains("No Such Role") == true)
    }

    @Test func deletedUsersAreLeftAlone() {
        var org = Org()
        let anna = org.person("Anna", 1)
        org.group("Organ", 50, ou: "Shared", members: [anna])
        let snapshot = Snapshot(
            users: [1: User(id: 1, firstName: "Anna", active: false, deleted: true, type: .member)], ldapBindings: [1: Org.hex(1)])
        let p = plan(org, snapshot)
        #expect(p.created.map(\.type) == [.organ])
        #expect(p.count(.membershipAdded) == 0)
        #expect(p.count(.unbound) == 0)
    }

    @Test func nestedGroupsResolveTransitivelyAndCyclesEnd() {
        var org = Org()
        let a = org.person("A", 1)
        let b = org.person("B", 2)
        let c = org.person("C", 3)
        let cycleA = "CN=Cycle A,OU=Groups,\(Org.root)"
        let cycleB = org.group("Cycle B", 21, ou: "Groups", members: [b, cycleA])
        org.group("Cycle A", 20, ou: "Groups", members: [a, cycleB])
        let deep = org.group("Deep", 22, ou: "Groups", members: [c, cycleA])
        let top = org.group("Top", 23, ou: "Shared", members: [deep])
        #expect(org.directory.closure(of: DistinguishedName.key(top)) == [a, b, c].map(DistinguishedName.key).sorted())
    }

    @Test func guidsAreStoredAsSudoSOSStoresThem() {
        let bytes: [UInt8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0xFF]
        #expect(LDAPPlanner.guidHex(bytes, attribute: .objectGUID) == "0123456789abcdef00112233445566ff")
        #expect(LDAPPlanner.guidHex(Array(bytes.prefix(15)), attribute: .objectGUID) == nil)
        #expect(LDAPPlanner.guidHex(Array("49350D9E-7D17-1041-83E3-29C15086A9ED".utf8), attribute: .entryUUID)
            == "49350d9e7d17104183e329c15086a9ed")
        #expect(LDAPPlanner.guidHex(Array("not-a-uuid".utf8), attribute: .entryUUID) == nil)
    }

    @Test func memberNumbersMustBeNumbers() {
        #expect(LDAPPlanner.memberNumber(Array("10001".utf8)) == 10001)
        #expect(LDAPPlanner.memberNumber(Array(" 42 ".utf8)) == 42)
        for bad in ["m1234x", "", "-5", "0", "１２", "12.5"] {
            #expect(LDAPPlanner.memberNumber(Array(bad.utf8)) == nil, "\(bad)")
        }
    }
}
