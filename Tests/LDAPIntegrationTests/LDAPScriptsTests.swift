import Foundation
import SyncEngine
import TestKit
import Testing

@testable import LDAPSource

/// People and groups whose CN, displayName, givenName and sn are Greek (monotonic, polytonic,
/// capitals with final sigma), Cyrillic, Vietnamese, CJK, Hangul and combining marks (NFD)
/// get exactly the accounts, memberships and roles the directory implies, in every mode:
/// Samba AD with the in-chain rule, Samba AD and slapd with `member` resolved here.
@Suite struct LDAPScriptsTests {
    enum Mode: String, CaseIterable, CustomStringConvertible {
        case adInChain, adMemberAttribute, slapdMemberAttribute
        var description: String { rawValue }
        var directory: TestDirectory { self == .slapdMemberAttribute ? .slapd : .activeDirectory }
    }

    typealias Person = ScratchOrganisation.Person

    /// Decomposed: e + U+0308, u + U+0308 (canonically equal to "Zoë Müller", other code points).
    static let nfdGiven = "Zoe\u{308}"
    static let nfdSn = "Mu\u{308}ller"

    /// "Ελευθερίου" with U+1F77 GREEK SMALL LETTER IOTA WITH OXIA.
    static let oxiaSn = "Ελευθερ\u{1F77}ου"

    static func people(_ mode: Mode) -> [Person] {
        var people: [Person] = [
            Person(key: "greek1", given: "Piet", sn: "Ελευθερίου", cn: "Piet Ελευθερίου"),
            Person(key: "greek2", given: "Αλέξης", sn: "Nguyễn", cn: "Αλέξης Nguyễn"),
            Person(key: "greekcaps", given: "Σοφία", sn: "Παπαδοπούλου", cn: "ΣΟΦΊΑ ΠΑΠΑΔΟΠΟΎΛΟΥ", display: "ΣΟΦΊΑ ΠΑΠΑΔΟΠΟΎΛΟΥ"),
            Person(key: "polytonic", given: "Ἀλέξανδρος", sn: "Χρῆστος", cn: "Ἀλέξανδρος Χρῆστος"),
            Person(key: "cyrillic", given: "Ёлка", sn: "Щукина-Жуковская", cn: "Ёлка Щукина-Жуковская"),
            Person(key: "viet", given: "Thị Minh Khai", sn: "Nguyễn", cn: "Nguyễn Thị Minh Khai"),
            Person(key: "cjk", given: "太郎", sn: "山田", cn: "山田 太郎", display: "山田太郎"),
            Person(key: "hangul", given: "민준", sn: "김", cn: "김 민준"),
            Person(key: "nfd", given: nfdGiven, sn: nfdSn, cn: "\(nfdGiven) \(nfdSn)"),
        ]
        // Samba keeps two DNs apart that differ only in normalisation (slapd, which normalises
        // DNs, refuses the second): two people, two accounts.
        // Greek the same way: ί with tonos (U+03AF) and with oxia (U+1F77, canonically the same
        // letter; polytonic keyboards type it), so "Ελευθερίου" twice.
        if mode != .slapdMemberAttribute {
            people.append(Person(key: "nfc", given: "Zoë", sn: "Müller", cn: "Zoë Müller"))
            people.append(Person(key: "oxia", given: "Piet", sn: oxiaSn, cn: "Piet \(oxiaSn)"))
        }
        return people
    }

    static func groups(_ mode: Mode) -> [ScratchOrganisation.Group] {
        [
            .init(key: "helper", ou: "Groups", cn: "Группа Ёж", members: ["cyrillic", "polytonic"]),
            .init(
                key: "organA", ou: "Shared", display: "Επιτροπή Άλφα", cn: "Επιτροπή Ά",
                members: ["helper", "greek1", "cjk"] + (mode == .slapdMemberAttribute ? [] : ["oxia"])),
            .init(
                key: "organB", ou: "Shared", display: "委员会 Bê", cn: "委员会",
                members: ["greek2", "viet", "hangul", "nfd"] + (mode == .slapdMemberAttribute ? [] : ["nfc"])),
            .init(
                key: "role", ou: "Roles", cn: "Ρόλος Ω",
                members: ["greek1", "greekcaps", "helper"] + (mode == .slapdMemberAttribute ? [] : ["oxia"])),
            .init(key: "SudoSOS Service Accounts", ou: "Groups", members: []),
        ]
    }

    /// Byte order, as PostgreSQL's "C" collation sorts.
    static func sortedBytes(_ lines: [String]) -> [String] { lines.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) } }

    @Test(arguments: Mode.allCases)
    func everyScriptGetsItsAccountMembershipsAndRoles(_ mode: Mode) async throws {
        let scratch = try ScratchOrganisation.create(mode.directory, people: Self.people(mode), groups: Self.groups(mode))
        defer { scratch.destroy() }
        let f = try LDAPRunFixture()
        defer { f.drop() }
        try f.db.sql(#"INSERT INTO role ("version","name") VALUES (1,'Ρόλος Ω')"#)
        var settings = try mode.directory.settings(organisation: scratch.org)
        if mode == .adMemberAttribute { settings.nestedGroups = .memberAttribute }

        let first = await f.run(settings)
        #expect(first.exitCode == .success, "\(first.summary.error ?? "")")
        #expect(first.plan?.rejected.isEmpty == true, "\(first.plan?.rejected ?? [])")

        let people = Self.people(mode)
        let name = Dictionary(uniqueKeysWithValues: people.map { ($0.key, "\($0.given) \($0.sn)") })
        // Every person met through a group has an account; hangul only through organ B.
        let users = Self.sortedBytes(
            ["ORGAN:Επιτροπή Άλφα|", "ORGAN:委员会 Bê|"] + people.map { "MEMBER:\($0.given)|\($0.sn)" })
        let userRows = try f.value(
            #"SELECT string_agg(type || ':' || "firstName" || '|' || "lastName", E'\n' ORDER BY (type || ':' || "firstName" || '|' || "lastName") COLLATE "C") FROM "user""#)
        #expect(userRows == users.joined(separator: "\n"), "\(userRows)")
        #expect(try f.count("ldap_authenticator") == users.count, "every account is bound")
        let organA = (["cyrillic", "polytonic", "greek1", "cjk"] + (mode == .slapdMemberAttribute ? [] : ["oxia"]))
            .map { "Επιτροπή Άλφα>\(name[$0]!)" }
        let organB = (["greek2", "viet", "hangul", "nfd"] + (mode == .slapdMemberAttribute ? [] : ["nfc"])).map { "委员会 Bê>\(name[$0]!)" }
        let membershipRows = try f.value(
            #"SELECT string_agg(o."firstName" || '>' || u."firstName" || ' ' || u."lastName", E'\n' ORDER BY (o."firstName" || '>' || u."firstName" || ' ' || u."lastName") COLLATE "C") FROM organ_membership m JOIN "user" o ON o.id = m."organId" JOIN "user" u ON u.id = m."userId""#)
        #expect(membershipRows == Self.sortedBytes(organA + organB).joined(separator: "\n"), "\(membershipRows)")
        let role = (["greek1", "greekcaps", "cyrillic", "polytonic"] + (mode == .slapdMemberAttribute ? [] : ["oxia"])).map { name[$0]! }
        let roleRows = try f.value(
            #"SELECT string_agg(u."firstName" || ' ' || u."lastName", E'\n' ORDER BY (u."firstName" || ' ' || u."lastName") COLLATE "C") FROM assigned_role a JOIN "user" u ON u.id = a."userId""#)
        #expect(roleRows == Self.sortedBytes(role).joined(separator: "\n"), "\(roleRows)")
        // The decomposed name is stored as it came, code point for code point.
        #expect(try f.value(#"SELECT encode(convert_to("firstName" || "lastName", 'UTF8'), 'hex') FROM "user" WHERE "lastName" = 'Mu\#u{308}ller'"#)
            == Data((Self.nfdGiven + Self.nfdSn).utf8).map { String(format: "%02x", $0) }.joined())

        // Nothing changed in the directory: nothing to do.
        let second = await f.run(settings)
        #expect(second.exitCode == .success, "\(second.summary.error ?? "")")
        #expect(second.plan?.changes.isEmpty == true, "\(second.plan?.changes.map(\.change) ?? [])")
    }
}
