// gewisdb-bench: how fast the gewisdb service's client checks members against a GEWISDB API.
// Run through bench/gewisdb-bench.sh, which starts gewisdb-fake with N generated members and a
// fixed latency per request. Prints, per concurrency: wall time, members checked per second,
// the latency-bound limit N × latency / concurrency, and the ratio to it.
import Foundation
import GEWISDBSource
import Logging
import SyncEngine

/// Counts requests and errors, as the supervisor's metrics would.
final class Counter: RunReporter, @unchecked Sendable {
    private let lock = NSLock()
    private var requests = 0
    private var errors = 0
    func heartbeat(phase: String) {}
    func sourceRequest(ok: Bool, seconds: Double) {
        lock.withLock {
            requests += 1
            if !ok { errors += 1 }
        }
    }
    var counts: (Int, Int) { lock.withLock { (requests, errors) } }
}

var url = "http://127.0.0.1:8080/api"
var members = 5000
var latencyMs = 20.0
var concurrencies = [16]
var key: String?
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    let value = arguments.popFirst() ?? ""
    switch flag {
    case "--url": url = value
    case "--members": members = Int(value) ?? members
    case "--latency-ms": latencyMs = Double(value) ?? latencyMs
    case "--concurrency": concurrencies = value.split(separator: ",").compactMap { Int($0) }
    case "--api-key": key = value
    default:
        FileHandle.standardError.write(Data("usage: gewisdb-bench --url URL --members N --latency-ms MS --concurrency 8,16,32\n".utf8))
        exit(64)
    }
}

let lidnrs = Array(1...members)
let context = RunContext(logger: Logger(label: "bench"), reporter: SilentReporter(), dryRun: true)
print("members  concurrency  seconds  members/s  limit_s  ratio  requests  errors")
for concurrency in concurrencies {
    let counter = Counter()
    let settings = GEWISDBSettings(apiURL: url, apiKey: key, concurrency: concurrency, requestTimeout: .seconds(10))
    let client = try GEWISDBClient(settings: settings)
    try await client.checkHealth(reporter: counter)
    let runContext = RunContext(logger: context.logger, reporter: counter, dryRun: true)
    let clock = ContinuousClock()
    let started = clock.now
    let answers = try await client.fetchMembers(lidnrs, concurrency: concurrency, maxFailedRatio: 0, context: runContext)
    let elapsed = clock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let limit = Double(members) * latencyMs / 1000 / Double(concurrency)
    let found = answers.values.filter { if case .found = $0 { return true } else { return false } }.count
    guard found == members else {
        FileHandle.standardError.write(Data("only \(found) of \(members) members found\n".utf8))
        exit(1)
    }
    let (requests, errors) = counter.counts
    print(
        String(
            format: "%7d  %11d  %7.2f  %9.0f  %7.2f  %5.2f  %8d  %6d", members, concurrency, seconds,
            Double(members) / seconds, limit, seconds / limit, requests, errors))
}
