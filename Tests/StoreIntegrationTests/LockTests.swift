import Foundation
import Testing
import SudoSOSStore
import SyncEngine
import TestKit

/// Two instances never run the same service at once: the service lock (PostgreSQL advisory
/// lock, MariaDB `GET_LOCK()`), across processes, on each engine.
@Suite struct LockTests {
    /// A client process holding `service`'s lock on the fixture's database.
    typealias LockHolder = ServiceLockHolder

    /// Whether some session holds `service`'s lock for the fixture's database.
    static func lockIsHeld(_ f: StoreFixture, service: String) throws -> Bool {
        try ServiceLockHolder.isHeld(f.db, service: service)
    }

    @Test(arguments: Engine.allCases) func anotherProcessHoldingTheLockGivesLockedAndExit75(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
        defer { f.drop() }
        try f.insertUser("Jan")
        let holder = try LockHolder(f.db, service: "test")
        try await waitUntil("the client holds the lock") { try Self.lockIsHeld(f, service: "test") }

        let before = try f.sudososState()
        let service = PlannedService { _ in
            var plan = Plan(service: "test")
            plan.append(.createUser(NewUser(ref: 1, type: .member, firstName: "Piet")), reason: "r")
            return plan
        }
        // The holder keeps the lock until we release it below, so a run that waited for the
        // lock would never return: returning at all proves it did not wait.
        let result = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(try Self.lockIsHeld(f, service: "test"))
        #expect(result.summary.outcome == .locked)
        #expect(result.exitCode == .temporary)
        #expect(result.exitCode.rawValue == 75)
        #expect(result.summary.error?.contains("another instance is running service test") == true)
        #expect(result.summary.error?.contains(engine == .postgres ? "psql holds its lock" : "database connection") == true)
        #expect(try f.sudososState() == before)
        #expect(try f.rows("SELECT service, outcome FROM \(f.runs)") == [["test", "locked"]])

        // Once the other process lets go, the service runs again.
        holder.release()
        try await waitUntil("the lock is free") { try !Self.lockIsHeld(f, service: "test") }
        let second = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(second.summary.outcome == .success)
        #expect(try f.value(#"SELECT count(*) FROM "user" WHERE "firstName" = 'Piet'"#) == "1")
    }

    @Test(arguments: Engine.allCases) func theLockIsPerServiceAndHeldForTheWholeRun(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
        defer { f.drop() }
        let other = try StoreFixtureStore(f)
        try await f.store.withServiceLock("ldap") {
            #expect(try Self.lockIsHeld(f, service: "ldap"))
            // Same service from a second session: refused at once.
            let error = await #expect(throws: SyncError.self) {
                try await other.store.withServiceLock("ldap") { () }
            }
            #expect(error?.kind == .locked)
            // Another service is independent.
            try await other.store.withServiceLock("gewisdb") { () }
        }
        #expect(try !Self.lockIsHeld(f, service: "ldap"))
        try await other.store.withServiceLock("ldap") { () }
    }

    @Test(arguments: Engine.allCases) func theLockIsReleasedWhenTheRunThrows(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
        defer { f.drop() }
        await #expect(throws: SyncError.self) {
            try await f.store.withServiceLock("ldap") { throw SyncError.failed("boom") }
        }
        #expect(try !Self.lockIsHeld(f, service: "ldap"))
    }
}

/// A second store on the same database (another session).
struct StoreFixtureStore {
    let store: any SudoSOSDatabase
    init(_ f: StoreFixture) throws {
        switch f.engine {
        case .postgres: store = PostgresStore(url: f.db.url)
        case .mariadb: store = try MariaDBStore(url: f.db.url)
        }
    }
}
