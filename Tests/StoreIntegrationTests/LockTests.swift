import Foundation
import Testing
import SudoSOSStore
import SyncEngine
import TestKit

/// Two instances never run the same service at once: the service lock (PostgreSQL advisory
/// lock, MariaDB `GET_LOCK()`), across processes, on each engine.
@Suite struct LockTests {
    /// A client child process (`psql` / `mariadb`) that takes the service's lock and keeps its
    /// session open until `release()` closes its stdin.
    final class LockHolder {
        let process = Process()
        let input = Pipe()

        init(_ f: StoreFixture, service: String) throws {
            let statement: String
            switch f.engine {
            case .postgres:
                process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
                process.arguments = ["-X", "-q", "-v", "ON_ERROR_STOP=1", f.db.url]
                statement = "SELECT pg_advisory_lock(\(AdvisoryLockKey.service(service)));\n"
            case .mariadb:
                let url = try #require(URLComponents(string: f.db.url))
                process.executableURL = URL(fileURLWithPath: "/usr/bin/mariadb")
                process.arguments = [
                    "--no-defaults", "--protocol=tcp", "-h", url.host!, "-P", String(url.port!), "-uroot", f.db.name,
                ]
                statement = "SELECT GET_LOCK('\(MariaDBStore.lockName(service: service, database: f.db.name))', 60);\n"
            }
            process.standardInput = input
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            input.fileHandleForWriting.write(Data(statement.utf8))
        }

        func release() {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
    }

    /// Whether some session holds `service`'s lock for the fixture's database.
    static func lockIsHeld(_ f: StoreFixture, service: String) throws -> Bool {
        switch f.engine {
        case .postgres:
            let bits = UInt64(bitPattern: AdvisoryLockKey.service(service))
            return try f.value(
                """
                SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND classid = \(bits >> 32) AND objid = \(bits & 0xffff_ffff) AND objsubid = 1
                """) == "1"
        case .mariadb:
            let name = MariaDBStore.lockName(service: service, database: f.db.name)
            return try f.value("SELECT IS_USED_LOCK('\(name)') IS NOT NULL") == "1"
        }
    }

    @Test(arguments: Engine.allCases) func anotherProcessHoldingTheLockGivesLockedAndExit75(_ engine: Engine) async throws {
        let f = try StoreFixture(engine)
        defer { f.drop() }
        try f.insertUser("Jan")
        let holder = try LockHolder(f, service: "test")
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
