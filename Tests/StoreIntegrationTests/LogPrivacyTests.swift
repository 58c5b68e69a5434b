import Foundation
import Logging
import Testing
import SudoSOSStore
import SyncEngine
import TestKit

/// No e-mail address and no password in any log line of a run, even when the plan is full of
/// addresses, rejections mention e-mail fields, and the run fails.
@Suite struct LogPrivacyTests {
    /// Keeps every log line (message and metadata) in memory.
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        var all: [String] { lock.withLock { lines } }
        func append(_ line: String) { lock.withLock { lines.append(line) } }
    }

    struct CollectingHandler: LogHandler {
        let lines: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
            lines.append("\(event.level) \(event.message) \(all)")
        }
    }

    @Test func aRunLogsNoAddressesOrPasswords() async throws {
        let f = try StoreFixture()
        defer { f.drop() }
        let jan = try f.insertUser("Jan", email: "jan.secret@example.org")
        let lines = Lines()
        let logger = Logger(label: "test") { _ in CollectingHandler(lines: lines) }
        let store = PostgresStore(url: f.db.url, password: "pw-s3cret", logger: logger)
        let service = PlannedService { snapshot in
            var plan = Plan(service: "test", warnings: ["group cn=x has no role"], entities: EntityCounts(passed: 3))
            plan.append(
                .updateUser(userId: jan, fields: FieldChange.diff(snapshot.users[jan]!, to: [(.email, .text("jan.new@example.org"))])),
                reason: "GEWISDB")
            plan.append(.createUser(NewUser(ref: 1, type: .member, firstName: "Piet", email: "piet.private@example.net")), reason: "GEWISDB")
            plan.append(.createUser(NewUser(ref: 2, type: .member, firstName: "Bad", email: "bad.address@@example.com")), reason: "GEWISDB")
            plan.rejected.append(Rejection(record: "member 12", reason: .invalidEmail, detail: "email is not an address"))
            return plan
        }
        let runner = SyncRunner(database: store, threshold: DeletionThreshold(maxDeletions: 5, maxRatio: 1), logger: logger)
        let ok = await runner.run(service, dryRun: false, reporter: SilentReporter())
        #expect(ok.exitCode == .success)
        #expect(try f.value(#"SELECT count(*) FROM "user" WHERE email LIKE '%@example.%'"#) == "2")

        // A failing run too (the error message of a constraint violation).
        let failing = PlannedService { _ in
            var plan = Plan(service: "test")
            plan.append(.createUser(NewUser(ref: 1, type: .member, firstName: "X", email: "x.private@example.org", memberId: 1)), reason: "r")
            plan.append(.addRole(user: .new(1), roleId: 77, roleName: "none"), reason: "r")
            return plan
        }
        let failed = await runner.run(failing, dryRun: false, reporter: SilentReporter())
        #expect(failed.exitCode == .failure)

        let text = lines.all.joined(separator: "\n")
        #expect(lines.all.count >= 6)
        #expect(!text.contains("@"), "a log line holds an e-mail address:\n\(text)")
        #expect(!text.contains("s3cret"))
        #expect(text.contains("run finished: success"))
        #expect(text.contains("rejected member 12: invalid_email"))
    }
}
