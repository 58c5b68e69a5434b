import Foundation
import SyncEngine
import TestKit
import Testing

@testable import LDAPSource

/// Counts what a run asks of its sources: LDAP searches (one heartbeat each), page requests.
final class SearchCounter: RunReporter, @unchecked Sendable {
    private let lock = NSLock()
    private var searchCount = 0
    private var requestCount = 0
    var searches: Int { lock.withLock { searchCount } }
    var requests: Int { lock.withLock { requestCount } }
    func heartbeat(phase: String) {
        if phase.hasPrefix("ldap: reading") { lock.withLock { searchCount += 1 } }
    }
    func sourceRequest(ok: Bool, seconds: Double) { lock.withLock { requestCount += 1 } }
}

/// One figure: a first run (everything created) and a second run (nothing to do) over an
/// organisation of `people` people in 10 organs (one nested group each) and 2 roles.
struct ScaleFigure: CustomStringConvertible {
    var people: Int
    var firstSearches = 0, firstRequests = 0, firstRoundTrips = 0, created = 0
    var secondSearches = 0, secondRequests = 0, secondRoundTrips = 0, secondChanges = 0
    var seconds = 0.0
    /// The first and the second run alone (the runner: lock, read, plan, write).
    var firstSeconds = 0.0, secondSeconds = 0.0

    var description: String {
        "people=\(people) first: searches=\(firstSearches) ldap_requests=\(firstRequests) sql_round_trips=\(firstRoundTrips) created=\(created)"
            + " | second: searches=\(secondSearches) ldap_requests=\(secondRequests) sql_round_trips=\(secondRoundTrips) changes=\(secondChanges)"
            + " | \(String(format: "%.1f", seconds))s"
    }

    /// Measured on a slapd of its own, so loading thousands of entries neither slows nor
    /// disturbs the other tests' server.
    static func measure(
        people count: Int, on slapd: OwnSlapd, engine: Engine = .postgres,
        afterwards: (LDAPRunFixture) throws -> Void = { _ in }
    ) async throws -> ScaleFigure {
        var people: [ScratchOrganisation.Person] = []
        for i in 0..<count {
            people.append(.init(key: "person\(i)", given: "Person", sn: "Nummer \(i)", employee: i % 2 == 0 ? "\(100_000 + i)" : nil))
        }
        var groups: [ScratchOrganisation.Group] = []
        for organ in 0..<10 {
            let mine = stride(from: organ, to: count, by: 10).map { "person\($0)" }
            let half = mine.count / 2
            groups.append(.init(key: "nested\(organ)", ou: "Groups", members: Array(mine[half...])))
            groups.append(.init(key: "organ\(organ)", ou: "Shared", display: "Organ \(organ)", members: Array(mine[..<half]) + ["nested\(organ)"]))
        }
        groups.append(.init(key: "R1", ou: "Roles", members: ["nested0", "nested1"]))
        groups.append(.init(key: "R2", ou: "Roles", members: ["organ2"]))
        groups.append(.init(key: "SudoSOS Service Accounts", ou: "Groups", members: []))
        let scratch = try ScratchOrganisation.create(slapd.directory, people: people, groups: groups)
        defer { scratch.destroy() }
        let f = try LDAPRunFixture(engine)
        defer { f.drop() }
        try f.db.sql(#"INSERT INTO role ("version","name") VALUES (1,'R1'),(1,'R2')"#)
        let settings = try slapd.directory.settings(organisation: scratch.org)

        var figure = ScaleFigure(people: count)
        let started = ContinuousClock.now
        let first = SearchCounter()
        var trips = f.roundTrips
        let r1 = await f.run(settings, reporter: first)
        guard r1.exitCode == .success else { throw LDAPToolFailed(output: r1.summary.error ?? "first run failed") }
        figure.firstSeconds = Self.seconds(since: started)
        figure.firstRoundTrips = f.roundTrips - trips
        figure.firstSearches = first.searches
        figure.firstRequests = first.requests
        figure.created = r1.plan?.count(.created) ?? 0

        let second = SearchCounter()
        trips = f.roundTrips
        let secondStarted = ContinuousClock.now
        let r2 = await f.run(settings, reporter: second)
        figure.secondSeconds = Self.seconds(since: secondStarted)
        guard r2.exitCode == .success else { throw LDAPToolFailed(output: r2.summary.error ?? "second run failed") }
        figure.secondRoundTrips = f.roundTrips - trips
        figure.secondSearches = second.searches
        figure.secondRequests = second.requests
        figure.secondChanges = r2.plan?.changes.count ?? -1
        figure.seconds = Self.seconds(since: started)
        try afterwards(f)
        return figure
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let (s, a) = (ContinuousClock.now - start).components
        return Double(s) + Double(a) / 1e18
    }
}

/// The number of LDAP searches and SQL round trips does not grow with the population (pages
/// aside). bench/ldap-figures.sh prints these figures.
@Suite(.serialized) struct LDAPScaleTests {
    @Test func searchesAndRoundTripsStayConstantFrom200To2000People() async throws {
        let slapd = try OwnSlapd()
        defer { slapd.stop() }
        let small = try await ScaleFigure.measure(people: 200, on: slapd)
        let large = try await ScaleFigure.measure(people: 2000, on: slapd)
        print("LDAP-FIGURE \(small)")
        print("LDAP-FIGURE \(large)")
        #expect(small.created == 210 && large.created == 2010, "the people and the 10 organs")
        #expect(small.secondChanges == 0 && large.secondChanges == 0)
        #expect(small.firstSearches == large.firstSearches)
        #expect(small.secondSearches == large.secondSearches)
        #expect(small.firstRoundTrips == large.firstRoundTrips)
        #expect(small.secondRoundTrips == large.secondRoundTrips)
        // Pages: 500 entries a page, so the larger directory needs more requests.
        #expect(large.firstRequests > small.firstRequests)
    }
}

/// The full LDAP sync of a large directory on MariaDB against the `mariadb` client loading
/// exactly the rows the daemon wrote (SudoSOS's and our audit, as `mariadb-dump` gives them)
/// in one transaction, on the same server in the same run. A benchmark, not part of the
/// suite: bench/mariadb-ldap.sh sets SUDOSOS_BENCH_MARIADB_PEOPLE (20,000) and prints the lines.
@Suite(.serialized) struct MariaDBLDAPBench {
    static var people: Int? { ProcessInfo.processInfo.environment["SUDOSOS_BENCH_MARIADB_PEOPLE"].flatMap { Int($0) } }

    @Test(.enabled(if: people != nil, "only under bench/mariadb-ldap.sh"))
    func fullSyncAndResyncBesideTheClientLoadingTheSameRows() async throws {
        let count = try #require(Self.people)
        let slapd = try OwnSlapd()
        defer { slapd.stop() }
        var load = 0.0, rows = 0
        let figure = try await ScaleFigure.measure(people: count, on: slapd, engine: .mariadb) { f in
            // The rows the first run wrote, dumped and loaded into a fresh copy of the template
            // (with the run rows, which the audit points at) in one transaction by the client.
            let url = try #require(URLComponents(string: f.db.url))
            let tables = ["user", "member_user", "ldap_authenticator", "organ_membership", "assigned_role",
                          "sudosos_sync_run", "sudosos_sync_audit"]
            let dump = try runProcess("/usr/bin/mariadb-dump", [
                "--no-defaults", "--protocol=tcp", "-h", url.host!, "-P", String(url.port!), "-uroot",
                "--no-create-info", "--skip-triggers", "--skip-comments", "--compact", f.db.name,
            ] + tables)
            #expect(dump.status == 0, "\(dump.stderr)")
            let target = try TemporaryDatabase.create(.mariadb)
            defer { target.drop() }
            try target.sql("CREATE TABLE sudosos_sync_run LIKE \(f.db.name).sudosos_sync_run; CREATE TABLE sudosos_sync_audit LIKE \(f.db.name).sudosos_sync_audit; DELETE FROM role")
            let script = "SET FOREIGN_KEY_CHECKS = 0; START TRANSACTION;\n" + dump.stdout + "\nCOMMIT;\n"
            let started = ContinuousClock.now
            let loaded = try runProcess("/usr/bin/mariadb", [
                "--no-defaults", "--protocol=tcp", "-h", url.host!, "-P", String(url.port!), "-uroot", target.name,
            ], stdin: script)
            load = ScaleFigure.seconds(since: started)
            #expect(loaded.status == 0, "\(loaded.stderr)")
            rows = tables.reduce(0) { sum, table in sum + (Int((try? target.sql(#"SELECT count(*) FROM "\#(table)""#)) ?? "") ?? 0) }
            let source = tables.reduce(0) { sum, table in sum + (Int((try? f.db.sql(#"SELECT count(*) FROM "\#(table)""#)) ?? "") ?? 0) }
            #expect(rows == source, "the client loaded the same rows")
        }
        print("MARIADB-BENCH people=\(count) created=\(figure.created) sql_round_trips=\(figure.firstRoundTrips)")
        print(String(format: "MARIADB-BENCH daemon: full sync %.2fs, no-change resync %.2fs (%d changes)",
                     figure.firstSeconds, figure.secondSeconds, figure.secondChanges))
        print(String(format: "MARIADB-BENCH mariadb client: the same %d rows in one transaction %.2fs", rows, load))
        #expect(figure.secondChanges == 0)
    }
}
