import ArgumentParser
import Foundation
import Logging
import SyncEngine
import Synchronization

/// `sudosos-sync check-config [--connect] [--config FILE]`: lists every configuration problem
/// (one line each, exit 78) or prints `configuration OK: services ...`; with `--connect` also
/// reaches the database, checks the SudoSOS schema against what the enabled services need (as
/// every run does first; exit 78 when a column is missing), and reaches each enabled service's
/// source (one line each, exit 69 when one is unreachable, 75 when a source is not ready).
struct CheckConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the configuration; with --connect, also reach the database and every enabled source."
    )

    @Flag(name: .long, help: "Also connect to the database and each enabled service's source.")
    var connect = false

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let logger = try options.bootstrapLogging()
        let check = options.loader.check()
        LogRedactor.shared.register(check.configuration.secrets)
        guard check.problems.isEmpty else {
            for problem in check.problems { say(problem) }
            throw ArgumentParser.ExitCode(SyncEngine.ExitCode.configuration.rawValue)
        }
        let configuration = check.configuration
        let enabled = configuration.enabledServices
        say("configuration OK: " + (enabled.isEmpty ? "no services enabled" : "services " + enabled.joined(separator: ", ")))
        guard connect else { return }

        var failures: [SyncError] = []
        let database = configuration.database
        let timeout = database.connectTimeout + .seconds(5)
        if let error = await attempt(within: timeout, {
            let server = try await DatabaseAccess.check(database, logger: logger)
            say("database: reachable (\(server))")
        }) {
            failures.append(error)
            say("database: unreachable: \(error.message)")
        }
        if failures.isEmpty && !enabled.isEmpty {
            // The check every run makes first: the SudoSOS schema has what the services need.
            let verdict = Mutex<String?>(nil)
            if let error = await attempt(within: timeout, {
                let line = try await Self.checkSchema(configuration, services: enabled, logger: logger)
                verdict.withLock { $0 = line }
            }) {
                failures.append(error)
                say("schema: \(error.message)")
            } else if let line = verdict.withLock({ $0 }) {
                say("schema: \(line)")
            }
        }
        for name in enabled {
            let context = RunContext(logger: logger, reporter: SilentReporter(), dryRun: true)
            let result = await attempt(within: .seconds(120)) {
                let service = try Services.make(name, from: configuration)
                try await service.prepare(context: context)
            }
            if let error = result {
                failures.append(error)
                let state = error.kind == .notReady ? "not ready" : error.kind == .configuration ? "misconfigured" : "unreachable"
                say("\(name): \(state): \(error.message)")
            } else {
                say("\(name): reachable")
            }
        }
        if let code = Self.exitCode(for: failures) { throw ArgumentParser.ExitCode(code.rawValue) }
    }

    /// Reads the SudoSOS schema's facts and checks them against what each service's runs read
    /// and write (`SudoSOSSchema.resolve`); the line to print when every service is satisfied.
    static func checkSchema(_ configuration: Configuration, services: [String], logger: Logger) async throws -> String {
        let store = try await DatabaseAccess.open(configuration.database, logger: logger)
        let facts = try await store.schemaFacts()
        var schema: SudoSOSSchema?
        for name in services {
            schema = try SudoSOSSchema.resolve(facts, for: try Services.make(name, from: configuration).snapshotRequest)
        }
        let newest = facts.newestMigration.map { "newest migration recorded: \($0.name)" }
            ?? (facts.migrations == nil ? "no migrations table" : "no migration recorded")
        let terms = schema?.termsOfService == .tosRequired ? "tosRequired" : "acceptedToS"
        return "supported (\(newest); \(schema?.memberTable ?? "member_user"), \(schema?.membershipTable ?? "organ_membership"), \(terms))"
    }

    /// The worst of the failures: unreachable (69) over configuration (78) over not ready (75)
    /// over anything else (1).
    static func exitCode(for failures: [SyncError]) -> SyncEngine.ExitCode? {
        guard !failures.isEmpty else { return nil }
        let kinds = Set(failures.map(\.kind))
        if kinds.contains(.unavailable) { return .unavailable }
        if kinds.contains(.configuration) { return .configuration }
        if kinds.contains(.notReady) || kinds.contains(.locked) { return .temporary }
        return .failure
    }

    /// Runs `body`, giving up after `limit`; the error it ended with, if any. A body stuck in a
    /// blocking call is abandoned (the command ends soon after), so the check never hangs.
    private func attempt(within limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async -> SyncError? {
        await withCheckedContinuation { (continuation: CheckedContinuation<SyncError?, Never>) in
            let answer = FirstAnswer(continuation)
            let work = Task {
                do {
                    try await body()
                    answer.give(nil)
                } catch let error as SyncError {
                    answer.give(error)
                } catch {
                    answer.give(SyncError.failed("\(type(of: error))"))
                }
            }
            Task {
                try? await Task.sleep(for: limit)
                answer.give(SyncError.unavailable("no answer within \(DurationText.format(limit))"))
                work.cancel()
            }
        }
    }

    /// One line of the command's output, on stdout, e-mail addresses masked.
    private func say(_ line: String) {
        FileHandle.standardOutput.write(Data((Masking.scrub(line) + "\n").utf8))
    }
}

/// Resumes a continuation with the first answer given; later answers are dropped.
private final class FirstAnswer: Sendable {
    private let continuation: Mutex<CheckedContinuation<SyncError?, Never>?>

    init(_ continuation: CheckedContinuation<SyncError?, Never>) {
        self.continuation = Mutex(continuation)
    }

    func give(_ answer: SyncError?) {
        let waiting = continuation.withLock { slot in
            defer { slot = nil }
            return slot
        }
        waiting?.resume(returning: answer)
    }
}
