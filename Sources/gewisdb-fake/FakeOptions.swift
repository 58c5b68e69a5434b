import Foundation

/// Command-line options of `gewisdb-fake` (see `gewisdb-fake --help` and docs/gewisdb.md).
struct FakeOptions: Sendable {
    var host = "127.0.0.1"
    var port = 0
    /// Written with the bound port (one line) once the server listens.
    var portFile: String?
    /// JSON fixture (`fixtures/gewisdb/members.json` format); re-read on SIGHUP and `POST /_admin/reload`.
    var membersFile: String?
    /// Serve N generated members (lidnr 1...N) instead of, or next to, the fixture.
    var generate = 0
    /// Bearer key the API demands; `nil`: no check.
    var apiKey: String?
    /// `user:password` also accepted as HTTP basic credentials.
    var basic: String?
    /// Delay before every API answer.
    var latencyMilliseconds = 0
    /// Delay of a member answering `slow`.
    var slowMilliseconds = 30_000
    /// Share of members (chosen by member number, so the same ones on every request) that
    /// always answer HTTP 500.
    var failRatio = 0.0
    /// Share of members that answer 500 to their first request only (a retry succeeds).
    var flakyRatio = 0.0
    /// Share of members whose 200 answer is not JSON.
    var garbageRatio = 0.0
    /// Share of members whose 200 answer is JSON of the wrong shape.
    var misshapenRatio = 0.0
    /// Share of members that answer after `--slow-ms` (health stays quick).
    var slowRatio = 0.0
    var syncPaused: Bool?
    var healthy: Bool?
    /// Answer /health without the `sync_paused` key (as servers before GEWISDB 4.x do).
    var omitSyncPaused = false

    static let usage = """
        usage: gewisdb-fake [--host 127.0.0.1] [--port 0] [--port-file FILE] [--members FILE] [--generate N]
                            [--api-key KEY] [--basic USER:PASSWORD] [--latency-ms N] [--slow-ms N]
                            [--fail-ratio R] [--flaky-ratio R] [--garbage-ratio R] [--misshapen-ratio R] [--slow-ratio R] [--sync-paused] [--unhealthy]
                            [--no-sync-paused-key]
        A GEWISDB API server for tests, benchmarks and the local demo. Prints `listening on HOST:PORT`.
        """

    static func parse(_ arguments: [String]) throws -> FakeOptions {
        var options = FakeOptions()
        var rest = arguments[...]
        func value(_ flag: String) throws -> String {
            guard let next = rest.popFirst() else { throw UsageError(message: "\(flag) needs a value") }
            return next
        }
        func number<T: LosslessStringConvertible>(_ flag: String) throws -> T {
            let text = try value(flag)
            guard let parsed = T(text) else { throw UsageError(message: "\(flag): not a number: \(text)") }
            return parsed
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--host": options.host = try value(flag)
            case "--port": options.port = try number(flag)
            case "--port-file": options.portFile = try value(flag)
            case "--members": options.membersFile = try value(flag)
            case "--generate": options.generate = try number(flag)
            case "--api-key": options.apiKey = try value(flag)
            case "--basic": options.basic = try value(flag)
            case "--latency-ms": options.latencyMilliseconds = try number(flag)
            case "--slow-ms": options.slowMilliseconds = try number(flag)
            case "--fail-ratio": options.failRatio = try number(flag)
            case "--flaky-ratio": options.flakyRatio = try number(flag)
            case "--garbage-ratio": options.garbageRatio = try number(flag)
            case "--misshapen-ratio": options.misshapenRatio = try number(flag)
            case "--slow-ratio": options.slowRatio = try number(flag)
            case "--sync-paused": options.syncPaused = true
            case "--unhealthy": options.healthy = false
            case "--no-sync-paused-key": options.omitSyncPaused = true
            case "-h", "--help": throw UsageError(message: nil)
            default: throw UsageError(message: "unknown option \(flag)")
            }
        }
        return options
    }
}

struct UsageError: Error {
    var message: String?
}
