import Testing

@testable import LDAPSource

@Suite struct LDAPFilterTests {
    @Test func everySpecialCharacterIsEscapedPerRFC4515() {
        #expect(LDAPFilter.escape("a(b)c*d\\e\u{0}f") == "a\\28b\\29c\\2ad\\5ce\\00f")
        #expect(LDAPFilter.escape("Zoë 陈") == "Zoë 陈")
        #expect(LDAPFilter.escape("*)(objectClass=*") == "\\2a\\29\\28objectClass=\\2a")
        #expect(LDAPFilter.escape(bytes: [0x00, 0x0f, 0xff]) == "\\00\\0f\\ff")
    }

    @Test func aHostileGroupDNCannotWidenTheInChainFilter() {
        let dn = "CN=Hostile (x) * \\5C group)(|(cn=*),OU=Shared,DC=example,DC=org"
        let filter = LDAPFilter.memberOfInChain(dn)
        #expect(filter == "(memberOf:1.2.840.113556.1.4.1941:=CN=Hostile \\28x\\29 \\2a \\5c5C group\\29\\28|\\28cn=\\2a\\29,OU=Shared,DC=example,DC=org)")
        // Exactly one opening and one closing parenthesis survive: the assertion's own.
        #expect(filter.filter { $0 == "(" }.count == 1 && filter.filter { $0 == ")" }.count == 1)
    }

    @Test func equalDNsMeetUnderOneKey() {
        #expect(DistinguishedName.key("CN=Hostile (x) * \\5C group,OU=Shared,DC=x")
            == DistinguishedName.key("cn=hostile (x) * \\\\ group, ou=shared,dc=X"))
        #expect(DistinguishedName.key("CN=Zoë Dąbrowska,OU=People") == DistinguishedName.key("cn=ZOË DĄBROWSKA,ou=people"))
        #expect(DistinguishedName.key("CN=A\\,B,OU=X") != DistinguishedName.key("CN=A,OU=B,OU=X"))
    }

    /// Swift's String equality is canonical equivalence; a directory (Active Directory) keeps
    /// `Zoë` (precomposed) and `Zoe` + U+0308 apart, so their keys must differ. Case still folds,
    /// in every script.
    @Test func dnKeysCompareCodePointsAndFoldCaseInEveryScript() {
        let precomposed = DistinguishedName.key("CN=Zo\u{EB} M\u{FC}ller,OU=People")
        let decomposed = DistinguishedName.key("CN=Zoe\u{308} Mu\u{308}ller,OU=People")
        #expect("Zo\u{EB}" == "Zoe\u{308}", "Swift's own String equality")
        #expect(precomposed != decomposed)
        #expect(Set([precomposed, decomposed]).count == 2)
        #expect(precomposed.utf8.allSatisfy { $0 < 0x80 })
        #expect(DistinguishedName.key("CN=Piet Ελευθερίου,OU=X") == DistinguishedName.key("cn=PIET ΕΛΕΥΘΕΡΊΟΥ,ou=x"))
        #expect(DistinguishedName.key("CN=Ёлка Щукина,OU=X") == DistinguishedName.key("CN=ёлка щукина,OU=X"))
        #expect(DistinguishedName.key("CN=山田 太郎,OU=X") != DistinguishedName.key("CN=山田 太朗,OU=X"))
        #expect(DistinguishedName.key("CN=\\c3\\a9,OU=X") == DistinguishedName.key("CN=é,OU=X"), "a DN's hex escapes are its bytes")
        #expect(DistinguishedName.key("CN=\\\\c3\\\\a9,OU=X") != DistinguishedName.key("CN=é,OU=X"), "escaped backslashes are not escapes")
    }
}
