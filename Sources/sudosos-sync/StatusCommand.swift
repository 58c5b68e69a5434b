import ArgumentParser
import Foundation
import Observability
import Supervisor

/// `sudosos-sync status [--url URL]`: the state of every service of a running supervisor.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running supervisor's services: state, last run, last outcome, next run, failures."
    )

    @Option(name: .long, help: "The supervisor's endpoint (default: http://<metrics.listen>).")
    var url: String?

    @Option(name: .long, help: "Configuration file, for metrics.listen.", completion: .configurationFile)
    var config: String?

    @Flag(name: .long, help: "Print the JSON answer as it is.")
    var json = false

    func run() async throws {
        do {
            let client = try SupervisorClient.resolve(url: url, config: config)
            let (status, data) = try await client.request("GET", "status")
            guard status == 200 else {
                throw ClientFailure(code: .failure, message: "GET /status answered \(status)")
            }
            if json {
                FileHandle.standardOutput.write(data)
                print()
                return
            }
            print(Self.table(try SupervisorClient.decodeStatus(data), now: Date()), terminator: "")
        } catch let failure as ClientFailure {
            throw failure.exit()
        }
    }

    /// The table: service, state, last run, last outcome, next run, consecutive failures.
    static func table(_ report: StatusReport, now: Date) -> String {
        func ago(_ date: Date?) -> String {
            guard let date else { return "-" }
            let s = now.timeIntervalSince(date)
            return s >= 0 ? "\(DurationFormat.short(seconds: s)) ago" : "in \(DurationFormat.short(seconds: -s))"
        }
        var rows = [["SERVICE", "STATE", "LAST RUN", "LAST OUTCOME", "NEXT RUN", "FAILURES", "SCHEDULE"]]
        for s in report.services {
            var state = s.state
            if s.backoffSeconds > 0 { state += " (\(DurationFormat.short(seconds: s.backoffSeconds)))" }
            rows.append([
                s.name, state, ago(s.lastRun?.startedAt), s.lastRun?.outcome.rawValue ?? "-", ago(s.nextRunAt),
                String(s.consecutiveFailures), s.schedule,
            ])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n") + "\n"
    }
}
