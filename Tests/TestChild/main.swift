import Foundation
import Supervisor
import SyncEngine

#if canImport(Glibc)
import Glibc
#endif

// sudosos-sync-testchild: a scripted worker for the supervisor's process tests. Test-only: not
// a product, never shipped; the product binary holds none of this (docs/testing.md).
//
// The tests start `sudosos-sync run --config FILE --worker-executable THIS`, so the supervisor
// spawns this program as `THIS worker SERVICE [--dry-run]` exactly as it spawns itself in
// production: same descriptors (3 the result pipe, 4 the configuration), environment, process
// group, limits and parent-death signal. It plays the steps that `testchild.json` in its working
// directory (inherited from the supervisor's) lists for SERVICE: `{"SERVICE": [[run 1 steps],
// [run 2 steps], ...]}`, the last run repeating; without steps it reports success. Every run
// appends its pid to `testchild.json.SERVICE.runs`.
//
// Steps: `work` (sleep `seconds` with heartbeats), `silent` (sleep without), `exit` (`code`, with
// a summary), `log` (`text` on stdout), `chatter` (1 KB lines on stdout for `seconds`), `psql` (`sql` on `url` through psql, in the worker's
// process group), `env` (write the environment to `file`), `config` (write what arrived on
// descriptor 4 to `file`), `crash` (SIGKILL itself), `pid` (write the pid to `file`),
// `ignore_term` (ignore SIGTERM from now on).

struct Step: Decodable {
    var step: String
    var seconds: Double?
    var code: Int32?
    var text: String?
    var url: String?
    var sql: String?
    var file: String?
}

let arguments = CommandLine.arguments
guard arguments.count >= 3, arguments[1] == "worker" else {
    FileHandle.standardError.write(Data("usage: sudosos-sync-testchild worker SERVICE [--dry-run]\n".utf8))
    exit(ExitCode.usage.rawValue)
}
let service = arguments[2]
guard WorkerEnvironment.parentIsAlive() else { exit(ExitCode.failure.rawValue) }
let channel = ResultChannel.inherited()
let input = WorkerInput.read()
channel?.send(WorkerMessage(type: .started, at: Date()))

let script = "testchild.json"
let runs: [[Step]] =
    FileManager.default.contents(atPath: script)
    .flatMap { try? JSONDecoder().decode([String: [[Step]]].self, from: $0) }?[service] ?? []
let counter = "\(script).\(service).runs"
let previous = (try? String(contentsOfFile: counter, encoding: .utf8))?.split(separator: "\n").count ?? 0
if let handle = FileHandle(forWritingAtPath: counter) ?? {
    _ = FileManager.default.createFile(atPath: counter, contents: nil)
    return FileHandle(forWritingAtPath: counter)
}() {
    handle.seekToEndOfFile()
    handle.write(Data("\(getpid())\n".utf8))
    try? handle.close()
}
let steps = runs.isEmpty ? [Step(step: "exit", code: 0)] : runs[min(previous, runs.count - 1)]

func write(_ text: String, to file: String?) {
    if let file { try? text.write(toFile: file, atomically: true, encoding: .utf8) }
}

let started = Date()
for step in steps {
    switch step.step {
    case "work":
        let end = Date().addingTimeInterval(step.seconds ?? 1)
        while Date() < end {
            channel?.heartbeat(phase: "test")
            usleep(100_000)
        }
    case "silent":
        usleep(UInt32(min((step.seconds ?? 3600) * 1e6, 4e9)))
    case "log":
        FileHandle.standardOutput.write(Data(((step.text ?? "") + "\n").utf8))
    case "chatter":
        // About 100 KB/s of 1 KB lines for `seconds`: fills a pipe nobody reads within a second.
        let line = Data((String(repeating: "x", count: 1000) + "\n").utf8)
        let end = Date().addingTimeInterval(step.seconds ?? 1)
        while Date() < end {
            FileHandle.standardOutput.write(line)
            usleep(10_000)
        }
    case "crash":
        kill(getpid(), SIGKILL)
    case "pid":
        write("\(getpid())\n", to: step.file)
    case "env":
        let lines = ProcessInfo.processInfo.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        write(lines.joined(separator: "\n") + "\n", to: step.file)
    case "config":
        write(String(decoding: input ?? Data(), as: UTF8.self) + "\n", to: step.file)
    case "ignore_term":
        signal(SIGTERM, SIG_IGN)
    case "psql":
        // posix_spawn with default attributes keeps psql in the worker's process group
        // (Foundation's Process would give it a group of its own).
        let argv0 = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", step.url ?? "", "-c", step.sql ?? ""]
        var argv = argv0.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/usr/bin/psql", nil, nil, &argv, environ) == 0 else { exit(ExitCode.failure.rawValue) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status != 0 { exit(ExitCode.failure.rawValue) }
    case "exit":
        let code = step.code ?? 0
        let outcome: RunOutcome =
            switch code {
            case 0: .success
            case 65: .refused
            case 75: .notReady
            default: .failure
            }
        channel?.send(
            WorkerMessage(
                type: .summary,
                summary: RunSummary(
                    service: service, outcome: outcome, dryRun: arguments.contains("--dry-run"), startedAt: started,
                    finishedAt: Date(), error: code == 0 ? nil : "scripted exit \(code)")))
        exit(code)
    default:
        FileHandle.standardError.write(Data("unknown test step \(step.step)\n".utf8))
        exit(ExitCode.usage.rawValue)
    }
}
exit(0)
