import Foundation
import TestKit
import Testing

/// The real binary names its build in one way everywhere: `--version` and the labels of
/// `sudosos_sync_build_info` carry the version of the `VERSION` file, the git revision the
/// checkout is at and the version of the Swift compiler that built it (Plugins/BuildInfoPlugin).
@Suite(.serialized) struct BuildInfoTests {
    /// Guards against a version typed into the code (drifting from `VERSION`), a revision that
    /// stays at an old commit, and metric labels that differ from what `--version` says.
    @Test(.timeLimit(.minutes(1))) func versionAndBuildInfoNameThisBuild() async throws {
        let root = TestEnvironment.repositoryRoot
        let expectedVersion = try String(contentsOf: root.appendingPathComponent("VERSION"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let head = try runProcess("/usr/bin/git", ["-C", root.path, "rev-parse", "--short=12", "HEAD"])
        #expect(head.status == 0, "git rev-parse: \(head.stderr)")
        let expectedRevision = head.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let swift = try runProcess("/usr/bin/env", ["swiftc", "--version"])
        let expectedSwift = try #require(
            swift.stdout.firstMatch(of: /Swift version ([0-9A-Za-z.+-]+)/).map { String($0.1) }, "\(swift.stdout)")

        let printed = try runProcess(TestEnvironment.executable("sudosos-sync"), ["--version"])
        #expect(printed.status == 0)
        let line = printed.stdout.trimmingCharacters(in: .newlines)
        let match = try #require(line.wholeMatch(of: /sudosos-sync (\S+) \(revision (\S+), Swift (\S+)\)/), "\(line)")
        let (version, revision, swiftVersion) = (String(match.1), String(match.2), String(match.3))
        #expect(version == expectedVersion)
        // `-dirty` when the build saw uncommitted changes (a developer's tree).
        #expect(revision == expectedRevision || revision == expectedRevision + "-dirty", "\(revision) vs HEAD \(expectedRevision)")
        #expect(swiftVersion == expectedSwift)

        let work = try TemporaryDirectory()
        defer { work.remove() }
        let port = try freeLoopbackPort()
        let config = work.url.appendingPathComponent("config.yaml")
        try "metrics: {listen: '127.0.0.1:\(port)'}\n".write(to: config, atomically: true, encoding: .utf8)
        let supervisor = try await SupervisorEndToEndTests.startSupervisor(
            ["run", "--config", config.path], environment: [:], port: port, in: work.url)
        defer { supervisor.stop() }
        let metrics = try await RawHTTPClient(port: port).request("GET", "/metrics")
        #expect(metrics.status == 200)
        let series = #"sudosos_sync_build_info{version="\#(version)",revision="\#(revision)",swift_version="\#(swiftVersion)"} 1.0"#
        #expect(metrics.body.split(separator: "\n").contains { $0 == series }, "\(metrics.body)")
        let status = try await RawHTTPClient(port: port).request("GET", "/status")
        let object = try JSONSerialization.jsonObject(with: Data(status.body.utf8)) as? [String: Any]
        #expect(object?["version"] as? String == version, "\(status.body)")
    }
}
