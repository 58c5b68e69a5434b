import Testing

@testable import LDAPSource

/// libldap's `TLS:` debug lines (GnuTLS) put into words for the operator.
@Suite struct TLSDiagnosticsTests {
    @Test func gnuTLSStatusBitsBecomeReasons() {
        #expect(TLSDiagnostics.status(in: "TLS: peer cert untrusted or revoked (0x42)") == 0x42)
        let otherCA = TLSDiagnostics.explain(
            ["TLS: peer cert untrusted or revoked (0x42)", "TLS: can't connect: (unknown error code)."], caFile: "/etc/ca.pem")
        #expect(otherCA == "TLS certificate verification failed: the server's certificate is not signed by the CA of "
            + "services.ldap.ca_file (/etc/ca.pem) (libldap: TLS: peer cert untrusted or revoked (0x42))")
        let expired = TLSDiagnostics.explain(["TLS: peer cert untrusted or revoked (0x402)"], caFile: nil) ?? ""
        #expect(expired.contains("has expired") && !expired.contains("not signed"), "\(expired)")
        let both = TLSDiagnostics.explain(["TLS: peer cert untrusted or revoked (0x442)"], caFile: nil) ?? ""
        #expect(both.contains("is not signed by the system's CAs (services.ldap.ca_file is not set) and has expired"), "\(both)")
        let name = TLSDiagnostics.explain(
            ["TLS: hostname (10.0.0.5) does not match common name in certificate (dc.example.org)."], caFile: nil) ?? ""
        #expect(name.contains("does not name the host of server_url") && name.contains("dc.example.org"), "\(name)")
    }

    @Test func linesThatSayNothingAboutTheCertificateGiveNoReason() {
        #expect(TLSDiagnostics.explain([], caFile: nil) == nil)
        #expect(TLSDiagnostics.explain(["TLS: can't connect: (unknown error code)."], caFile: nil) == nil)
    }
}
