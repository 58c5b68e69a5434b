import Foundation
import TestKit

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// A folder under /tmp removed at the end of a test.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("sudosos-obs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
}

/// A child process that announces on stdout when it serves; stopped with SIGTERM (SIGKILL if
/// it lingers).
final class ServedProcess: @unchecked Sendable {
    let process: Process
    /// The line that started with the ready prefix.
    let readyLine: String
    private let stderrFile: URL?

    private init(process: Process, readyLine: String, stderrFile: URL?) {
        self.process = process
        self.readyLine = readyLine
        self.stderrFile = stderrFile
    }

    /// Starts `executable` and waits (up to `timeout`) for a stdout line starting with
    /// `readyPrefix`.
    static func start(
        _ executable: String, _ arguments: [String], readyPrefix: String, timeout: TimeInterval = 30
    ) async throws -> ServedProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let found = LineWaiter(handle: out.fileHandleForReading, prefix: readyPrefix)
        let deadline = Date().addingTimeInterval(timeout)
        while found.line == nil && !found.closed && Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        guard let line = found.line else {
            process.terminate()
            process.waitUntilExit()
            throw TestFailure(description: "\(executable) did not print \(readyPrefix) within \(timeout) s")
        }
        return ServedProcess(process: process, readyLine: line, stderrFile: nil)
    }

    /// A process already started (e.g. Prometheus, ready when its HTTP API answers).
    static func adopt(_ process: Process) -> ServedProcess {
        ServedProcess(process: process, readyLine: "", stderrFile: nil)
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// Reads lines from a pipe on a background thread until one starts with a prefix.
final class LineWaiter: @unchecked Sendable {
    private let condition = NSCondition()
    private var foundLine: String?
    private var eof = false

    /// The first line with the prefix, once read.
    var line: String? {
        condition.lock()
        defer { condition.unlock() }
        return foundLine
    }

    /// True once the pipe reached its end.
    var closed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return eof
    }

    init(handle: FileHandle, prefix: String) {
        let thread = Thread { [self] in
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let text = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    if text.hasPrefix(prefix) {
                        condition.lock()
                        if foundLine == nil { foundLine = text }
                        condition.broadcast()
                        condition.unlock()
                    }
                }
            }
            condition.lock()
            eof = true
            condition.broadcast()
            condition.unlock()
        }
        thread.start()
    }
}

/// A throwaway Prometheus server on loopback with the repository's scrape configuration and
/// rules, pointed at one target and made fast (1 s scrape and evaluation intervals).
final class PrometheusServer: @unchecked Sendable {
    let process: ServedProcess
    let api: PrometheusAPI

    private init(process: ServedProcess, api: PrometheusAPI) {
        self.process = process
        self.api = api
    }

    /// Writes the configuration derived from prometheus/prometheus.yml to `directory` and
    /// starts Prometheus with its storage there.
    static func start(scraping targetPort: Int, in directory: URL) async throws -> PrometheusServer {
        let repository = TestEnvironment.repositoryRoot.appendingPathComponent("prometheus")
        var config = try String(contentsOf: repository.appendingPathComponent("prometheus.yml"), encoding: .utf8)
        for (from, to) in [
            ("\"127.0.0.1:9713\"", "\"127.0.0.1:\(targetPort)\""),
            ("    scrape_interval: 30s\n", "    scrape_interval: 1s\n"),
            ("global:\n  scrape_interval: 30s\n", "global:\n  scrape_interval: 1s\n"),
            ("  evaluation_interval: 30s\n", "  evaluation_interval: 1s\n"),
            ("    scrape_timeout: 10s\n", "    scrape_timeout: 1s\n"),
            ("  - alerts.yml\n", "  - \(repository.appendingPathComponent("alerts.yml").path)\n"),
        ] {
            guard config.contains(from) else {
                throw TestFailure(description: "prometheus/prometheus.yml no longer contains \(from.debugDescription)")
            }
            config = config.replacingOccurrences(of: from, with: to)
        }
        let configFile = directory.appendingPathComponent("prometheus.yml")
        try config.write(to: configFile, atomically: true, encoding: .utf8)

        var lastError = ""
        for _ in 0..<3 {
            let port = try freeLoopbackPort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: PrometheusEndToEndTests.prometheus)
            process.arguments = [
                "--config.file=\(configFile.path)",
                "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
                "--web.listen-address=127.0.0.1:\(port)",
                "--log.level=warn",
            ]
            let log = directory.appendingPathComponent("prometheus.log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let logHandle = try FileHandle(forWritingTo: log)
            process.standardOutput = logHandle
            process.standardError = logHandle
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let served = ServedProcess.adopt(process)
            let api = PrometheusAPI(port: port)
            let deadline = Date().addingTimeInterval(60)
            while process.isRunning && Date() < deadline {
                if await api.isReady() { return PrometheusServer(process: served, api: api) }
                try await Task.sleep(for: .milliseconds(100))
            }
            served.stop()
            lastError = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        }
        throw TestFailure(description: "Prometheus did not become ready: \(lastError)")
    }

    func stop() { process.stop() }
}

/// Prometheus's HTTP API (v1), the parts the tests use.
struct PrometheusAPI: Sendable {
    let port: Int

    struct Rule {
        var name: String
        var query: String
        var health: String
    }

    /// GET /-/ready answers 200.
    func isReady() async -> Bool {
        guard let client = try? RawHTTPClient(port: port, timeout: .seconds(2)),
            let response = try? await client.request("GET", "/-/ready")
        else { return false }
        return response.status == 200
    }

    /// An instant query; throws unless Prometheus answers `success` (a parse error, an
    /// unknown function...). Returns `data.result`.
    func query(_ expression: String) async throws -> [Any] {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let encoded = expression.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
        let json = try await get("/api/v1/query?query=\(encoded)")
        guard json["status"] as? String == "success" else {
            throw TestFailure(description: "query failed: \(json["error"] ?? "?") for \(expression)")
        }
        let data = json["data"] as? [String: Any]
        if data?["resultType"] as? String == "scalar" { return [data?["result"] as Any] }
        return data?["result"] as? [Any] ?? []
    }

    /// Every rule Prometheus loaded, with its health after evaluation.
    func rules() async throws -> [Rule] {
        let json = try await get("/api/v1/rules")
        let groups = (json["data"] as? [String: Any])?["groups"] as? [[String: Any]] ?? []
        return groups.flatMap { group in
            (group["rules"] as? [[String: Any]] ?? []).map {
                Rule(
                    name: $0["name"] as? String ?? "", query: $0["query"] as? String ?? "",
                    health: $0["health"] as? String ?? "")
            }
        }
    }

    private func get(_ pathAndQuery: String) async throws -> [String: Any] {
        let url = URL(string: "http://127.0.0.1:\(port)\(pathAndQuery)")!
        let (data, _) = try await URLSession.shared.data(from: url)
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TestFailure(description: "not JSON from \(pathAndQuery)")
        }
        return json
    }
}

/// A loopback port that was free a moment ago (the kernel picks it).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure(description: "socket failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
            guard bind(fd, pointer, length) == 0 else { return -1 }
            return getsockname(fd, pointer, &length)
        }
    }
    guard bound == 0 else { throw TestFailure(description: "bind failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}
