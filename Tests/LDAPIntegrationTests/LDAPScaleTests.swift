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

    var description: String {
        "people=\(people) first: searches=\(firstSearches) ldap_requests=\(firstRequests) sql_round_trips=\(firstRoundTrips) created=\(created)"
            + " | second: searches=\(secondSearches) ldap_requests=\(secondRequests) sql_round_trips=\(secondRoundTrips) changes=\(secondChanges)"
            + " | \(String(format: "%.1f", seconds))s"
    }

    /// Measured on a slapd of its own, so loading thousands of entries neither slows nor
    /// disturbs the other tests' server.
    static func measure(people count: Int, on slapd: OwnSlapd) async throws -> ScaleFigure {
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
        let f = try LDAPRunFixture()
        defer { f.drop() }
        try f.db.sql(#"INSERT INTO role ("version","name") VALUES (1,'R1'),(1,'R2')"#)
        let settings = try slapd.directory.settings(organisation: scratch.org)

        var figure = ScaleFigure(people: count)
        let started = ContinuousClock.now
        let first = SearchCounter()
        var trips = f.roundTrips
        let r1 = await f.run(settings, reporter: first)
        guard r1.exitCode == .success else { throw LDAPToolFailed(output: r1.summary.error ?? "first run failed") }
        figure.firstRoundTrips = f.roundTrips - trips
        figure.firstSearches = first.searches
        figure.firstRequests = first.requests
        figure.created = r1.plan?.count(.created) ?? 0

        let second = SearchCounter()
        trips = f.roundTrips
        let r2 = await f.run(settings, reporter: second)
        guard r2.exitCode == .success else { throw LDAPToolFailed(output: r2.summary.error ?? "second run failed") }
        figure.secondRoundTrips = f.roundTrips - trips
        figure.secondSearches = second.searches
        figure.secondRequests = second.requests
        figure.secondChanges = r2.plan?.changes.count ?? -1
        figure.seconds = ContinuousClock.now - started == .zero ? 0 : {
            let (s, a) = (ContinuousClock.now - started).components
            return Double(s) + Double(a) / 1e18
        }()
        return figure
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
