import Foundation
import SudoSOSStore
#if canImport(Glibc)
import Glibc
#endif

/// Where the integration tests find their services: `scripts/test` starts them and exports
/// their endpoints (`SUDOSOS_TEST_*`, see docs/testing.md).
public enum TestEnvironment {
    public struct Missing: Error, CustomStringConvertible {
        public var key: String
        public var description: String {
            "\(key) is not set: run the integration tests through scripts/test, which starts the services they use"
        }
    }

    /// The value of `key`; throws (failing the test) when the harness did not set it.
    public static func require(_ key: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[key], !value.isEmpty else { throw Missing(key: key) }
        return value
    }

    /// The folder holding the built products (`sudosos-sync`, `gewisdb-fake`).
    public static var productsDirectory: URL {
        // The test bundle lives in the products folder: .build/<triple>/debug/<name>.xctest
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = bundle.deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("sudosos-sync").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return Bundle.main.bundleURL
    }

    /// Path of a built executable of this package.
    public static func executable(_ name: String) -> String {
        productsDirectory.appendingPathComponent(name).path
    }

    /// The repository's root (for fixtures and scripts).
    public static var repositoryRoot: URL {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }
}

/// Waits until `condition` holds, polling; throws when `timeout` passes first.
/// Use this instead of sleeping for a guessed time.
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(10), poll: Duration = .milliseconds(20),
    _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while true {
        if try await condition() { return }
        if clock.now >= deadline { throw TimedOut(what: what, timeout: timeout) }
        try await Task.sleep(for: poll)
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public var what: String
    public var timeout: Duration
    public var description: String { "timed out after \(timeout) waiting for \(what)" }
}

/// The result of a finished child process.
public struct ProcessOutput: Sendable {
    public var status: Int32
    /// True when the process was ended by a signal (`status` is then the signal number).
    public var signalled: Bool
    public var stdout: String
    public var stderr: String
}

/// Runs an executable to completion and collects its output, blocking the calling thread
/// (see `runChild` for async code; it is the same spawn without Foundation's `Process`).
public func runProcess(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil
) throws -> ProcessOutput {
    try runChildBlocking(executable, arguments, environment: environment, stdin: stdin)
}

/// The database engines the store speaks; integration suites run against each
/// (`@Test(arguments: Engine.allCases)`).
public enum Engine: String, CaseIterable, Sendable, CustomStringConvertible {
    case mariadb, postgres

    public var description: String { rawValue }

    /// A boolean as the engine's command-line client prints it (`t`/`f`, `1`/`0`).
    public func bool(_ value: Bool) -> String {
        switch self {
        case .postgres: return value ? "t" : "f"
        case .mariadb: return value ? "1" : "0"
        }
    }
}

/// A database of its own for one test, with SudoSOS's tables (the harness's template, May 2026
/// schema). PostgreSQL clones the template database; MariaDB has no template databases, so
/// the harness dumps the template once and each test loads that dump into a database of its
/// own. Drop it when done (`drop()`); leftovers vanish with the throwaway server.
public struct TemporaryDatabase: Sendable {
    public let engine: Engine
    /// URL of the new database (`postgresql://` or `mariadb://`; superuser, no password, loopback).
    public let url: String
    public let name: String
    private let serverURL: String

    public static func create(_ engine: Engine = .postgres, schema: SudoSOSTestSchema = .default) throws -> TemporaryDatabase {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        switch engine {
        case .postgres:
            let server = try TestEnvironment.require("SUDOSOS_TEST_PG_URL")
            let template = try TestEnvironment.require("SUDOSOS_TEST_PG_TEMPLATE" + schema.variableSuffix)
            try psql(server, "CREATE DATABASE \(name) TEMPLATE \(template)")
            guard let slash = server.lastIndex(of: "/") else { throw TestEnvironment.Missing(key: "SUDOSOS_TEST_PG_URL") }
            return TemporaryDatabase(engine: engine, url: server[..<slash] + "/" + name, name: String(name), serverURL: server)
        case .mariadb:
            let server = try TestEnvironment.require("SUDOSOS_TEST_MARIADB_URL")
            let dump = try TestEnvironment.require("SUDOSOS_TEST_MARIADB_DUMP" + schema.variableSuffix)
            guard let slash = server.lastIndex(of: "/") else { throw TestEnvironment.Missing(key: "SUDOSOS_TEST_MARIADB_URL") }
            let database = TemporaryDatabase(engine: engine, url: server[..<slash] + "/" + name, name: String(name), serverURL: server)
            try mariadb(server, "CREATE DATABASE \(name) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            try mariadb(database.url, nil, stdin: try String(contentsOfFile: dump, encoding: .utf8))
            return database
        }
    }

    /// Runs SQL against this database through the engine's client and returns its output:
    /// `|`-separated columns, one row a line, NULL as an empty string (psql's unaligned form).
    /// On MariaDB the session has `ANSI_QUOTES`, so `"user"."firstName"` quotes as on PostgreSQL.
    @discardableResult
    public func sql(_ statement: String) throws -> String {
        switch engine {
        case .postgres: return try psql(url, statement)
        case .mariadb: return try mariadb(url, statement)
        }
    }

    public func drop() {
        switch engine {
        case .postgres: _ = try? psql(serverURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
        case .mariadb: _ = try? mariadb(serverURL, "DROP DATABASE IF EXISTS \(name)")
        }
    }
}

/// Runs `statement` (or `stdin`) with the `mariadb` client on the database of a
/// `mariadb://root@HOST:PORT/DB` URL; output as `psql` gives it (see `TemporaryDatabase.sql`).
@discardableResult
func mariadb(_ url: String, _ statement: String?, stdin: String? = nil) throws -> String {
    guard let components = URLComponents(string: url), let host = components.host, let port = components.port else {
        throw TestEnvironment.Missing(key: "SUDOSOS_TEST_MARIADB_URL")
    }
    var arguments = [
        "--no-defaults", "--protocol=tcp", "-h", host, "-P", String(port), "-u", components.user ?? "root",
        "--batch", "--skip-column-names", "--raw", "--default-character-set=utf8mb4",
        "--init-command=SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'ANSI_QUOTES')",
    ]
    if let statement { arguments += ["-e", statement] }
    arguments.append(String(components.path.dropFirst()))
    let result = try runProcess("/usr/bin/mariadb", arguments, stdin: stdin)
    guard result.status == 0 else {
        throw PSQLFailed(statement: statement ?? "(script)", stderr: result.stderr)
    }
    // Only newlines are trimmed: trailing tabs are empty last columns.
    return result.stdout.trimmingCharacters(in: .newlines).split(separator: "\n", omittingEmptySubsequences: false)
        .map { line in
            line.split(separator: "\t", omittingEmptySubsequences: false).map { $0 == "NULL" ? "" : String($0) }
                .joined(separator: "|")
        }.joined(separator: "\n")
}

@discardableResult
func psql(_ url: String, _ statement: String) throws -> String {
    let result = try runProcess("/usr/bin/psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", statement])
    guard result.status == 0 else {
        throw PSQLFailed(statement: statement, stderr: result.stderr)
    }
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

public struct PSQLFailed: Error, CustomStringConvertible {
    public var statement: String
    public var stderr: String
    public var description: String { "psql failed: \(stderr) (statement: \(statement))" }
}

/// Another process holding a service's lock: a client child (`psql` / `mariadb`) that takes it
/// (`pg_advisory_lock` / `GET_LOCK()`) and keeps its session open until `release()` closes its
/// stdin. Wait for `isHeld()` before relying on it.
public final class ServiceLockHolder {
    private let process = Process()
    private let input = Pipe()
    private let database: TemporaryDatabase
    private let service: String

    public init(_ database: TemporaryDatabase, service: String) throws {
        self.database = database
        self.service = service
        let statement: String
        switch database.engine {
        case .postgres:
            process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
            process.arguments = ["-X", "-q", "-v", "ON_ERROR_STOP=1", database.url]
            statement = "SELECT pg_advisory_lock(\(AdvisoryLockKey.service(service)));\n"
        case .mariadb:
            guard let url = URLComponents(string: database.url), let host = url.host, let port = url.port else {
                throw TestEnvironment.Missing(key: "SUDOSOS_TEST_MARIADB_URL")
            }
            process.executableURL = URL(fileURLWithPath: "/usr/bin/mariadb")
            process.arguments = ["--no-defaults", "--protocol=tcp", "-h", host, "-P", String(port), "-uroot", database.name]
            statement = "SELECT GET_LOCK('\(MariaDBStore.lockName(service: service, database: database.name))', 60);\n"
        }
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(Data(statement.utf8))
    }

    /// Whether some session holds the service's lock for the database.
    public func isHeld() throws -> Bool { try Self.isHeld(database, service: service) }

    /// Whether some session holds `service`'s lock for `database`.
    public static func isHeld(_ database: TemporaryDatabase, service: String) throws -> Bool {
        switch database.engine {
        case .postgres:
            let bits = UInt64(bitPattern: AdvisoryLockKey.service(service))
            return try database.sql(
                """
                SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND classid = \(bits >> 32) AND objid = \(bits & 0xffff_ffff) AND objsubid = 1
                """) == "1"
        case .mariadb:
            let name = MariaDBStore.lockName(service: service, database: database.name)
            return try database.sql("SELECT IS_USED_LOCK('\(name)') IS NOT NULL") == "1"
        }
    }

    public func release() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
