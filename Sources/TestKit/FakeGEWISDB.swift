import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A running `gewisdb-fake` process on a free loopback port, for one test (the GEWISDB and the
/// cross-service integration tests).
public final class FakeGEWISDB: @unchecked Sendable {
    public let process: Process
    public let port: Int
    public let apiKey: String
    private let directory: URL

    /// The API's base URL, with GEWISDB's `/api` prefix.
    public var apiURL: String { "http://127.0.0.1:\(port)/api" }

    /// Starts the fake with `arguments` (plus `--port 0 --port-file ... --api-key ...`) and waits
    /// until it has written its port.
    public static func start(_ arguments: [String], apiKey: String = "test-key") async throws -> FakeGEWISDB {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gewisdb-fake-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("port")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnvironment.executable("gewisdb-fake"))
        process.arguments = ["--port", "0", "--port-file", portFile.path, "--api-key", apiKey] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        do {
            try await waitUntil("gewisdb-fake to write its port", timeout: .seconds(20)) {
                guard process.isRunning else { throw FakeExited(status: process.terminationStatus) }
                return FileManager.default.fileExists(atPath: portFile.path)
            }
        } catch {
            process.terminate()
            throw error
        }
        let text = try String(contentsOf: portFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let port = Int(text) else { throw FakeExited(status: -1) }
        return FakeGEWISDB(process: process, port: port, apiKey: apiKey, directory: directory)
    }

    /// The repository's fixture of members.
    public static var fixture: String {
        TestEnvironment.repositoryRoot.appendingPathComponent("fixtures/gewisdb/members.json").path
    }

    private init(process: Process, port: Int, apiKey: String, directory: URL) {
        self.process = process
        self.port = port
        self.apiKey = apiKey
        self.directory = directory
    }

    public struct FakeExited: Error, CustomStringConvertible {
        public var status: Int32
        public var description: String { "gewisdb-fake exited early (status \(status))" }
    }

    public struct AdminFailed: Error {
        public var status: Int
    }

    /// `POST /_admin/set?...`: flips a switch of the running server.
    public func set(_ query: String) async throws {
        let (_, status) = try await request("POST", "/_admin/set?\(query)")
        guard status == 200 else { throw AdminFailed(status: status) }
    }

    /// `POST /_admin/reload`: re-reads the members file.
    public func reload() async throws {
        let (_, status) = try await request("POST", "/_admin/reload")
        guard status == 200 else { throw AdminFailed(status: status) }
    }

    /// `GET /_admin/stats`.
    public func stats() async throws -> [String: Int] {
        let (data, _) = try await request("GET", "/_admin/stats")
        return try JSONDecoder().decode([String: Int].self, from: data)
    }

    private func request(_ method: String, _ path: String) async throws -> (Data, Int) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        let (data, response) = try await URLSession.shared.data(for: request)
        return (data, (response as? HTTPURLResponse)?.statusCode ?? 0)
    }

    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}
