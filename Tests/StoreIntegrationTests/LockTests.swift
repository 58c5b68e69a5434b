import Foundation
import Testing
import SudoSOSStore
import SyncEngine
import TestKit

/// Two instances never run the same service at once: the advisory lock, across processes.
@Suite struct LockTests {
    /// A `psql` child process that takes an advisory lock and keeps its session open until
    /// `release()` closes its stdin.
    final class LockHolder {
        let process = Process()
        let input = Pipe()

        init(url: String, key: Int64) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
            process.arguments = ["-X", "-q", "-v", "ON_ERROR_STOP=1", url]
            process.standardInput = input
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            input.fileHandleForWriting.write(Data("SELECT pg_advisory_lock(\(key));\n".utf8))
        }

        func release() {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    /// Whether some session holds advisory lock `key` in the fixture's database.
    static func lockIsHeld(_ f: StoreFixture, key: Int64) throws -> Bool {
        let bits = UInt64(bitPattern: key)
        return try f.value(
            """
            SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND classid = \(bits >> 32) AND objid = \(bits & 0xffff_ffff) AND objsubid = 1
            """) == "1"
    }

    @Test func anotherProcessHoldingTheLockGivesLockedAndExit75() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        try f.insertUser("Jan")
        let key = AdvisoryLockKey.service("test")
        let holder = try LockHolder(url: f.db.url, key: key)
        try await waitUntil("psql holds the lock") { try Self.lockIsHeld(f, key: key) }

        let before = try f.sudososState()
        let service = PlannedService { _ in
            var plan = Plan(service: "test")
            plan.append(.createUser(NewUser(ref: 1, type: .member, firstName: "Piet")), reason: "r")
            return plan
        }
        // The holder keeps the lock until we release it below, so a run that waited for the
        // lock would never return: returning at all proves it did not wait.
        let result = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(try Self.lockIsHeld(f, key: key))
        #expect(result.summary.outcome == .locked)
        #expect(result.exitCode == .temporary)
        #expect(result.exitCode.rawValue == 75)
        #expect(result.summary.error?.contains("another instance is running service test") == true)
        #expect(result.summary.error?.contains("psql holds its lock") == true)
        #expect(try f.sudososState() == before)
        #expect(try f.rows("SELECT service, outcome FROM sudosos_sync.run") == [["test", "locked"]])

        // Once the other process lets go, the service runs again.
        holder.release()
        try await waitUntil("the lock is free") { try !Self.lockIsHeld(f, key: key) }
        let second = await f.runner().run(service, dryRun: false, reporter: SilentReporter())
        #expect(second.summary.outcome == .success)
        #expect(try f.value(#"SELECT count(*) FROM "user" WHERE "firstName" = 'Piet'"#) == "1")
    }

    @Test func theLockIsPerServiceAndHeldForTheWholeRun() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let other = StoreFixtureStore(url: f.db.url)
        try await f.store.withServiceLock("ldap") {
            #expect(try Self.lockIsHeld(f, key: AdvisoryLockKey.service("ldap")))
            // Same service from a second session: refused at once.
            let error = await #expect(throws: SyncError.self) {
                try await other.store.withServiceLock("ldap") { () }
            }
            #expect(error?.kind == .locked)
            // Another service is independent.
            try await other.store.withServiceLock("gewisdb") { () }
        }
        #expect(try !Self.lockIsHeld(f, key: AdvisoryLockKey.service("ldap")))
        try await other.store.withServiceLock("ldap") { () }
    }

    @Test func theLockIsReleasedWhenTheRunThrows() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        await #expect(throws: SyncError.self) {
            try await f.store.withServiceLock("ldap") { throw SyncError.failed("boom") }
        }
        #expect(try !Self.lockIsHeld(f, key: AdvisoryLockKey.service("ldap")))
    }
}

/// A second store on the same database (another session).
struct StoreFixtureStore {
    let store: PostgresStore
    init(url: String) { store = PostgresStore(url: url) }
}
