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
}
