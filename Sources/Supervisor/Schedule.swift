import Foundation
import SyncEngine

/// When a service runs, resolved from its `ScheduleSetting` and `supervisor.timezone`.
///
/// Runs missed while the supervisor was down, or while a run of the same service was still
/// going, are not replayed: the next run is always computed from "now".
public struct Schedule: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case cron(CronExpression, TimeZone)
        /// Every period, measured from the start of the previous run (never earlier than its end).
        case interval(Duration)
        /// Only when triggered.
        case manual
    }

    public var kind: Kind

    public init(_ kind: Kind) { self.kind = kind }

    /// Resolves a configured schedule; throws `SyncError.configuration` for a bad expression,
    /// a bad time zone or a non-positive interval.
    public init(_ setting: ScheduleSetting?, timezone: String) throws {
        switch setting {
        case nil:
            kind = .manual
        case .cron(let text)?:
            guard let zone = TimeZone(identifier: timezone) else {
                throw SyncError.configuration("supervisor.timezone: unknown time zone '\(timezone)'")
            }
            kind = .cron(try CronExpression(text), zone)
        case .interval(let period)?:
            guard period > .zero else { throw SyncError.configuration("interval must be positive, got \(period)") }
            kind = .interval(period)
        }
    }

    /// The first run after the supervisor starts at `now`.
    public func firstRun(now: Date, runOnStart: Bool) -> Date? {
        if runOnStart { return now }
        switch kind {
        case .cron(let expression, let zone): return expression.nextFire(after: now, in: zone)
        case .interval(let period): return now.addingTimeInterval(period.asSeconds)
        case .manual: return nil
        }
    }

    /// The next run after one that was due at `lastDue` (or started then) and ended at `now`.
    public func nextRun(lastStart: Date, now: Date) -> Date? {
        switch kind {
        case .cron(let expression, let zone): return expression.nextFire(after: now, in: zone)
        case .interval(let period): return max(lastStart.addingTimeInterval(period.asSeconds), now)
        case .manual: return nil
        }
    }

    /// The period the service is expected to run at, in seconds: the interval, or the gap
    /// between the next two cron instants after `now`; 0 when only triggered.
    public func expectedInterval(after now: Date) -> Double {
        switch kind {
        case .interval(let period): return period.asSeconds
        case .cron(let expression, let zone):
            guard let first = expression.nextFire(after: now, in: zone),
                let second = expression.nextFire(after: first, in: zone)
            else { return 0 }
            return second.timeIntervalSince(first)
        case .manual: return 0
        }
    }

    /// `*/15 * * * *`, `every 15m`, `manual`.
    public var description: String {
        switch kind {
        case .cron(let expression, _): return expression.text
        case .interval(let period): return "every \(DurationFormat.short(period))"
        case .manual: return "manual"
        }
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var asSeconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

/// Short human durations for logs and status: `500ms`, `30s`, `15m`, `2h`, `1h30m`.
public enum DurationFormat {
    public static func short(_ duration: Duration) -> String { short(seconds: duration.asSeconds) }

    public static func short(seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        if seconds < 60 {
            let r = (seconds * 10).rounded() / 10
            return r == r.rounded() ? "\(Int(r))s" : "\(r)s"
        }
        let total = Int(seconds.rounded())
        let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60)
        var out = ""
        if h > 0 { out += "\(h)h" }
        if m > 0 { out += "\(m)m" }
        if s > 0 && h == 0 { out += "\(s)s" }
        return out
    }
}
