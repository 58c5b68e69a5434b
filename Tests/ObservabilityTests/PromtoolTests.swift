import Foundation
import TestKit
import Testing

/// The repository's Prometheus files pass Prometheus's own checks: `promtool check config`,
/// `promtool check rules`, and the unit tests of every alert (`promtool test rules`).
/// Fails (does not skip) when promtool is missing: scripts/test installs it.
@Suite struct PromtoolTests {
    static let promtool = "/usr/bin/promtool"
    static var prometheusDirectory: String { TestEnvironment.repositoryRoot.appendingPathComponent("prometheus").path }

    @Test func configIsValid() throws {
        let result = try runProcess(Self.promtool, ["check", "config", "\(Self.prometheusDirectory)/prometheus.yml"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let output = result.stdout + result.stderr
        #expect(output.contains("is valid prometheus config file syntax"))
        #expect(output.contains("SUCCESS: 7 rules found"))
    }

    @Test func rulesAreValid() throws {
        let result = try runProcess(Self.promtool, ["check", "rules", "\(Self.prometheusDirectory)/alerts.yml"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect((result.stdout + result.stderr).contains("SUCCESS: 7 rules found"))
    }

    /// Every alert has a unit test, and they all pass.
    @Test func everyAlertIsUnitTested() throws {
        let files = ["alerts_test.yml", "alerts_slow_test.yml"].map { "\(Self.prometheusDirectory)/\($0)" }
        let result = try runProcess(Self.promtool, ["test", "rules"] + files)
        let output = result.stdout + result.stderr
        #expect(result.status == 0, "\(output)")
        #expect(!output.contains("FAILED"))
        #expect(output.components(separatedBy: "SUCCESS").count - 1 == files.count, "\(output)")

        let rules = try String(contentsOfFile: "\(Self.prometheusDirectory)/alerts.yml", encoding: .utf8)
        let alerts = rules.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return trimmed.hasPrefix("- alert: ") ? String(trimmed.dropFirst("- alert: ".count)) : nil
        }
        #expect(alerts.count == 7)
        let tests = try files.map { try String(contentsOfFile: $0, encoding: .utf8) }.joined()
        for alert in alerts {
            // A test that expects the alert to fire (exp_alerts with labels), not only silence.
            #expect(tests.contains("alertname: \(alert)\n        exp_alerts:\n          - exp_labels:"), "\(alert) has no firing test")
            #expect(rules.contains("- alert: \(alert)\n"))
        }
    }
}
