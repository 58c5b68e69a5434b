import Foundation
import TestKit
import Testing

/// `sudosos-sync once ldap` (the real binary) against a slapd of the test's own: a hung server
/// and certificate problems end the run with exit 69 and a message that says what to fix.
@Suite(.serialized) struct LDAPCommandLineTests {
    struct Outcome {
        var output: ProcessOutput
        var seconds: Double
        /// The `Error: ...` line of the report.
        var error: String { output.stdout.split(separator: "\n").first { $0.hasPrefix("Error: ") }.map(String.init) ?? "" }
    }

    /// Runs `once ldap` with `ldap` as the service's keys (plus the database's), timed from
    /// spawn to exit.
    static func once(database: String, _ ldap: String) async throws -> Outcome {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ldap-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = dir.appendingPathComponent("config.yaml")
        let yaml = "database: {url: '\(database)', connect_timeout: 5s}\nservices:\n  ldap:\n    enabled: true\n"
            + ldap.split(separator: "\n").map { "    \($0)\n" }.joined()
        try Data(yaml.utf8).write(to: config)
        let clock = ContinuousClock()
        let started = clock.now
        let output = try await runChild(
            TestEnvironment.executable("sudosos-sync"), ["once", "ldap", "--config", config.path],
            environment: ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"], timeout: .seconds(120))
        let (s, a) = (clock.now - started).components
        return Outcome(output: output, seconds: Double(s) + Double(a) / 1e18)
    }

    static func keys(_ slapd: OwnSlapd, url: String, extra: String = "") -> String {
        """
        server_url: '\(url)'
        base: 'DC=gewiswg,DC=test'
        bind_user: '\(slapd.bindDN)'
        bind_pw: '\(slapd.bindPassword)'
        shared_account_filter: 'OU=Organisation,DC=gewiswg,DC=test'
        guid_attribute: entryUUID
        nested_groups: member_attribute
        \(extra)
        """
    }

    /// Item: a SIGSTOPped slapd with `timeout: 10s` and the default network timeouts (10 s
    /// connect, 60 s per operation): the run ends within the 10 s, exit 69, nothing written,
    /// and the message says the bind got no answer.
    @Test func onceEndsWithinItsTimeoutWhenTheDirectoryHangs() async throws {
        let slapd = try OwnSlapd()
        defer { slapd.stop() }
        let db = try TemporaryDatabase.create()
        defer { db.drop() }
        slapd.signal(SIGSTOP)
        defer { slapd.signal(SIGCONT) }
        let before = try state(db)
        let run = try await Self.once(database: db.url, "timeout: 10s\n" + Self.keys(slapd, url: slapd.url))
        print("once ldap, frozen slapd: exit \(run.output.status) after \(String(format: "%.2f", run.seconds)) s: \(run.error)")
        #expect(run.output.status == 69, "\(run.output.stdout)\(run.output.stderr)")
        #expect(run.seconds < 10, "took \(run.seconds) s")
        #expect(run.error.contains("LDAP bind to \(slapd.url)"), "\(run.error)")
        #expect(run.error.contains("no answer within"), "\(run.error)")
        #expect(run.error.contains("services.ldap.timeout (10.0s)"), "\(run.error)")
        #expect(!run.output.stdout.contains(slapd.bindPassword) && !run.output.stderr.contains(slapd.bindPassword))
        #expect(try state(db) == before, "nothing written")
        #expect(try db.sql("SELECT outcome FROM sudosos_sync.run") == "failure", "the failed run is recorded")
        #expect(try db.sql("SELECT count(*) FROM sudosos_sync.audit") == "0")
    }

    func state(_ db: TemporaryDatabase) throws -> String {
        try db.sql(#"SELECT (SELECT count(*) FROM "user") || '|' || (SELECT count(*) FROM ldap_authenticator) || '|' || (SELECT count(*) FROM organ_membership)"#)
    }

    /// Item: with `ca_file` set to a CA that did not sign the server's certificate, with a
    /// certificate for another name, and with an expired one, the message says that
    /// certificate verification failed and why; exit 69. The right CA and name bind.
    @Test func certificateProblemsSayWhatIsWrong() async throws {
        let certs = try TestCertificates()
        defer { certs.remove() }
        let good = try OwnSlapd(tls: (certs.good, certs.key))
        defer { good.stop() }
        let wrongName = try OwnSlapd(tls: (certs.wrongName, certs.key))
        defer { wrongName.stop() }
        let expired = try OwnSlapd(tls: (certs.expired, certs.key))
        defer { expired.stop() }
        let db = try TemporaryDatabase.create()
        defer { db.drop() }

        let ok = try await Self.once(database: db.url, Self.keys(good, url: try #require(good.ldapsURL), extra: "ca_file: '\(certs.ca)'"))
        #expect(ok.output.status == 0, "the right CA and name: \(ok.output.stdout)\(ok.output.stderr)")

        let cases: [(String, OwnSlapd, String, Bool, [String])] = [
            ("a CA that did not sign it", good, certs.otherCA, false,
             ["TLS certificate verification failed", "is not signed by the CA of services.ldap.ca_file (\(certs.otherCA))", "0x42"]),
            ("the same over StartTLS", good, certs.otherCA, true,
             ["StartTLS", "TLS certificate verification failed", "is not signed by the CA of services.ldap.ca_file"]),
            ("a certificate for another name", wrongName, certs.ca, false,
             ["TLS certificate verification failed", "does not name the host of server_url", "wrong.example"]),
            ("an expired certificate", expired, certs.ca, false, ["TLS certificate verification failed", "has expired", "0x402"]),
        ]
        for (what, slapd, ca, startTLS, words) in cases {
            let url = startTLS ? slapd.url : try #require(slapd.ldapsURL)
            let run = try await Self.once(
                database: db.url, Self.keys(slapd, url: url, extra: "ca_file: '\(ca)'\nstart_tls: \(startTLS)"))
            print("once ldap, \(what): exit \(run.output.status) after \(String(format: "%.2f", run.seconds)) s: \(run.error)")
            #expect(run.output.status == 69, "\(what): \(run.output.stdout)\(run.output.stderr)")
            #expect(run.seconds < 10, "\(what): took \(run.seconds) s")
            for word in words { #expect(run.error.contains(word), "\(what): \(run.error)") }
            #expect(!run.error.contains("Can't contact LDAP server"), "\(what): \(run.error)")
        }
    }
}

/// A CA, a second CA, and certificates signed by the first: for 127.0.0.1, for another name
/// (`wrong.example`), and for 127.0.0.1 but expired (valid for one day in 2025). One key.
struct TestCertificates {
    let dir: String
    var ca: String { dir + "/ca.pem" }
    var otherCA: String { dir + "/other-ca.pem" }
    var key: String { dir + "/server-key.pem" }
    var good: String { dir + "/good.pem" }
    var wrongName: String { dir + "/wrong-name.pem" }
    var expired: String { dir + "/expired.pem" }

    init() throws {
        dir = NSTemporaryDirectory() + "ldap-certs-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/db", withIntermediateDirectories: true)
        try Data().write(to: URL(fileURLWithPath: dir + "/db/index"))
        try Data("01\n".utf8).write(to: URL(fileURLWithPath: dir + "/db/serial"))
        try Data("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".utf8).write(to: URL(fileURLWithPath: dir + "/ip.ext"))
        try Data("subjectAltName=DNS:wrong.example\nextendedKeyUsage=serverAuth\n".utf8).write(to: URL(fileURLWithPath: dir + "/name.ext"))
        // `openssl ca` (not `x509 -req`) because only it sets a start date in the past.
        let config = """
            [ca]
            default_ca = c
            [c]
            database = \(dir)/db/index
            new_certs_dir = \(dir)/db
            serial = \(dir)/db/serial
            default_md = sha256
            policy = p
            unique_subject = no
            [p]
            commonName = supplied
            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: dir + "/ca.cnf"))
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sudosos-sync test CA",
                     "-keyout", dir + "/ca-key.pem", "-out", ca])
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=some other CA",
                     "-keyout", dir + "/other-ca-key.pem", "-out", otherCA])
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", dir + "/ip.csr"])
        try openssl(["req", "-new", "-key", key, "-subj", "/CN=wrong.example", "-out", dir + "/name.csr"])
        try openssl(["x509", "-req", "-in", dir + "/ip.csr", "-CA", ca, "-CAkey", dir + "/ca-key.pem", "-CAcreateserial",
                     "-days", "2", "-extfile", dir + "/ip.ext", "-out", good])
        try openssl(["x509", "-req", "-in", dir + "/name.csr", "-CA", ca, "-CAkey", dir + "/ca-key.pem", "-CAcreateserial",
                     "-days", "2", "-extfile", dir + "/name.ext", "-out", wrongName])
        try openssl(["ca", "-batch", "-config", dir + "/ca.cnf", "-cert", ca, "-keyfile", dir + "/ca-key.pem",
                     "-in", dir + "/ip.csr", "-out", expired, "-startdate", "20250101000000Z", "-enddate", "20250102000000Z",
                     "-extfile", dir + "/ip.ext", "-notext"])
    }

    private func openssl(_ arguments: [String]) throws {
        let result = try runProcess("/usr/bin/openssl", arguments)
        guard result.status == 0 else { throw LDAPToolFailed(output: "openssl \(arguments.first ?? ""): \(result.stderr)") }
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }
}
