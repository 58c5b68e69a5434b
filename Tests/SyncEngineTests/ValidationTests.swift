import Testing
@testable import SyncEngine

/// The record checks the source services run before planning.
@Suite struct ValidationTests {
    /// The rejection `body` throws, or nil when it passes.
    private func rejection(_ body: () throws -> Void) -> Rejection? {
        do {
            try body()
            return nil
        } catch {
            return error as? Rejection
        }
    }

    // MARK: text from raw bytes

    @Test func decodesValidUTF8() throws {
        let bytes = Array("Zoë Ångström".utf8)
        #expect(try Validation.text(bytes, field: "givenName", record: "cn=z") == "Zoë Ångström")
    }

    /// Guards against storing mojibake from a directory that hands out Latin-1 bytes.
    @Test func rejectsInvalidUTF8() {
        let latin1: [UInt8] = [0x5A, 0x6F, 0xEB]  // "Zoë" in Latin-1
        let r = rejection { _ = try Validation.text(latin1, field: "givenName", record: "cn=z,dc=x") }
        #expect(r?.reason == .invalidEncoding)
        #expect(r?.record == "cn=z,dc=x")
        #expect(r?.detail.contains("givenName") == true)
    }

    /// PostgreSQL cannot store NUL in text; the insert would fail the whole transaction.
    @Test func rejectsNUL() {
        let r = rejection { _ = try Validation.text([0x41, 0x00, 0x42], field: "sn", record: "r") }
        #expect(r?.reason == .invalidEncoding)
    }

    // MARK: names

    @Test func acceptsSixtyFourCharacters() throws {
        let name = String(repeating: "a", count: 64)
        #expect(try Validation.name(name, field: "firstName", record: "r") == name)
    }

    @Test func rejectsSixtyFiveCharacters() {
        let r = rejection { _ = try Validation.name(String(repeating: "a", count: 65), field: "lastName", record: "member 7") }
        #expect(r?.reason == .tooLong)
        #expect(r?.detail.contains("lastName") == true)
        #expect(r?.detail.contains("65") == true)
    }

    /// 64 two-byte characters are 128 bytes but 64 characters for PostgreSQL: allowed.
    @Test func countsCharactersNotBytes() throws {
        let name = String(repeating: "é", count: 64)
        #expect(name.utf8.count == 128)
        #expect(try Validation.name(name, field: "firstName", record: "r") == name)
    }

    /// PostgreSQL counts code points, Swift's `count` grapheme clusters: "e" + combining acute
    /// is one Swift Character but two PostgreSQL characters.
    @Test func countsCodePointsLikePostgreSQL() {
        let decomposed = String(repeating: "e\u{301}", count: 33)  // 33 Characters, 66 code points
        #expect(decomposed.count == 33)
        #expect(Validation.characterCount(decomposed) == 66)
        let r = rejection { _ = try Validation.name(decomposed, field: "firstName", record: "r") }
        #expect(r?.reason == .tooLong)
    }

    @Test func emptyNameIsAllowed() throws {
        #expect(try Validation.name("", field: "lastName", record: "r") == "")
    }

    // MARK: e-mail

    @Test(arguments: [
        "jan@example.org", "j.de.jong+bar@sub.example.nl", "a_b-c@x-y.example.com", "o'brien@example.ie",
    ])
    func acceptsAddresses(_ address: String) throws {
        #expect(try Validation.email(address, field: "email", record: "r") == address)
    }

    @Test(arguments: [
        "", "jan", "jan@", "@example.org", "jan@@example.org", "jan@example", "jan@exa mple.org", "jan @example.org",
        ".jan@example.org", "jan.@example.org", "j..an@example.org", "jan@-example.org", "jan@example-.org",
        "jan@example..org", "jan@example.org.", "\"jan\"@example.org", "jän@example.org", "jan@exämple.org",
        "a@b@example.org",
    ])
    func rejectsNonAddresses(_ value: String) {
        let r = rejection { _ = try Validation.email(value, field: "mail", record: "cn=jan") }
        #expect(r?.reason == .invalidEmail)
        #expect(r?.detail.hasPrefix("mail ") == true)
        if !value.isEmpty {
            #expect(r?.detail.contains(value) == false, "the detail must not repeat the address")
        }
    }

    @Test func rejectsLongAddressesAsInvalidEmail() {
        let address = String(repeating: "a", count: 53) + "@example.org"  // 65 characters
        let r = rejection { _ = try Validation.email(address, field: "email", record: "member 1") }
        #expect(r?.reason == .invalidEmail)
        #expect(r?.detail.contains("65 characters") == true)
        #expect(r?.detail.contains(address) == false)
        #expect(r?.detail.contains("email") == true)
    }

    /// No part of the address (local part or domain) may leak into the detail.
    @Test func detailNeverContainsTheAddress() {
        for value in ["secret.person@nowhere", "secret.person@bad_domain.org", "secret person@example.org"] {
            let r = rejection { _ = try Validation.email(value, field: "email", record: "member 2") }
            #expect(r != nil)
            #expect(r?.detail.contains("secret") == false)
            #expect(r?.detail.contains("nowhere") == false)
            #expect(r?.detail.contains("bad_domain") == false)
        }
    }

    // MARK: required attributes

    @Test func requiredPassesValues() throws {
        #expect(try Validation.required(Optional(42), field: "employeeNumber", record: "r") == 42)
        #expect(try Validation.required(Optional("x"), field: "displayName", record: "r") == "x")
    }

    @Test func requiredRejectsMissingAndEmpty() {
        let missing = rejection { _ = try Validation.required(Int?.none, field: "employeeNumber", record: "cn=a") }
        #expect(missing?.reason == .missingAttribute)
        #expect(missing?.detail.contains("employeeNumber") == true)
        let empty = rejection { _ = try Validation.required(Optional(""), field: "displayName", record: "cn=a") }
        #expect(empty?.reason == .missingAttribute)
    }

    // MARK: duplicate keys

    private struct Entry: Equatable {
        var dn: String
        var number: Int?
    }

    @Test func rejectsEveryRecordOfASharedKey() {
        let entries = [
            Entry(dn: "cn=a", number: 1), Entry(dn: "cn=b", number: 2), Entry(dn: "cn=c", number: 1),
            Entry(dn: "cn=d", number: nil), Entry(dn: "cn=e", number: nil), Entry(dn: "cn=f", number: 1),
        ]
        let (unique, rejected) = Validation.uniqueByKey(
            entries, field: "employeeNumber", key: { $0.number }, record: { $0.dn })
        #expect(unique.map(\.dn) == ["cn=b", "cn=d", "cn=e"])
        #expect(rejected.map(\.record) == ["cn=a", "cn=c", "cn=f"])
        #expect(rejected.allSatisfy { $0.reason == .duplicateKey })
        #expect(rejected.first?.detail == "employeeNumber is shared with 2 other records")
    }

    @Test func uniqueKeysPassUnchanged() {
        let entries = (1...5).map { (n: Int) in Entry(dn: "cn=\(n)", number: n) }
        let (unique, rejected) = Validation.uniqueByKey(entries, field: "n", key: { $0.number }, record: { $0.dn })
        #expect(unique == entries)
        #expect(rejected.isEmpty)
    }
}
