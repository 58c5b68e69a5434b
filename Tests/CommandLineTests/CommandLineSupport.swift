import Foundation
import TestKit

/// Running the real `sudosos-sync` binary with a configuration file and a clean environment.
enum SudoSOSSync {
    /// Runs `sudosos-sync arguments`, with `yaml` (if given) written to a file passed as
    /// `--config`, and only `environment` (plus PATH) set, so the developer's variables cannot
    /// leak in.
    static func run(_ arguments: [String], yaml: String? = nil, environment: [String: String] = [:]) throws -> ProcessOutput {
        var arguments = arguments
        var cleanup: URL?
        if let yaml {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let file = dir.appendingPathComponent("config.yaml")
            try Data(yaml.utf8).write(to: file)
            arguments += ["--config", file.path]
            cleanup = dir
        }
        defer { if let cleanup { try? FileManager.default.removeItem(at: cleanup) } }
        var env = environment
        env["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return try runProcess(TestEnvironment.executable("sudosos-sync"), arguments, environment: env)
    }

    /// The non-empty lines of some output.
    static func lines(_ text: String) -> [String] {
        text.split(separator: "\n").map(String.init)
    }
}

/// A loopback TCP port that nothing listens on: bound once to get a free number, then closed.
func closedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}
