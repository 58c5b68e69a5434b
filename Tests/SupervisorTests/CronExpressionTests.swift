import Foundation
import SyncEngine
import Testing

/// Cron parsing and next-fire computation, including the daylight-saving nights of
/// Europe/Amsterdam (2026: spring forward 29 March 02:00 CET → 03:00 CEST, i.e. 01:00 UTC;
/// fall back 25 October 03:00 CEST → 02:00 CET, i.e. 01:00 UTC).
@Suite struct CronExpressionTests {
    let amsterdam = TimeZone(identifier: "Europe/Amsterdam")!
    let utc = TimeZone(identifier: "UTC")!

    func date(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }

    /// The fires of `expression` in (from, to].
    func fires(_ expression: String, from: String, to: String, zone: TimeZone) throws -> [Date] {
        let cron = try CronExpression(expression)
        var out: [Date] = []
        var cursor = date(from)
        let end = date(to)
        while let next = cron.nextFire(after: cursor, in: zone), next <= end {
            out.append(next)
            cursor = next
        }
        return out
    }

    @Test func parseErrorsNameTheField() {
        let cases: [(String, String)] = [
            ("61 * * * *", "minute"), ("* 24 * * *", "hour"), ("* * 0 * *", "day-of-month"),
            ("* * * 13 * ", "month"), ("* * * * 8", "day-of-week"), ("* * * *", "expected 5"),
            ("*/0 * * * *", "step"), ("5-1 * * * *", "backwards"), ("* * * foo *", "month"),
            ("0 0 31 2 *", "no month has that day"),
        ]
        for (text, expected) in cases {
            do {
                _ = try CronExpression(text)
                Issue.record("'\(text)' should not parse")
            } catch let error as SyncError {
                #expect(error.kind == .configuration)
                #expect(error.message.contains(expected), "\(error.message)")
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
    }

    @Test func listsRangesStepsAndNames() throws {
        // 09:00, 09:30, 11:00, ... on weekdays of January to March.
        let got = try fires("0,30 9-13/2 * JAN-mar Mon-FRI", from: "2026-01-02T00:00:00Z", to: "2026-01-05T12:00:00Z", zone: utc)
        #expect(
            got == [
                "2026-01-02T09:00:00Z", "2026-01-02T09:30:00Z", "2026-01-02T11:00:00Z", "2026-01-02T11:30:00Z",
                "2026-01-02T13:00:00Z", "2026-01-02T13:30:00Z", "2026-01-05T09:00:00Z", "2026-01-05T09:30:00Z",
                "2026-01-05T11:00:00Z", "2026-01-05T11:30:00Z",
            ].map(date))
        // `5/20` = 5, 25, 45.
        #expect(
            try fires("5/20 0 * * *", from: "2026-01-01T00:00:00Z", to: "2026-01-01T01:00:00Z", zone: utc)
                == ["2026-01-01T00:05:00Z", "2026-01-01T00:25:00Z", "2026-01-01T00:45:00Z"].map(date))
        // Day of week 7 is Sunday; 2026-01-04 is a Sunday.
        #expect(try fires("0 0 * * 7", from: "2026-01-01T00:00:00Z", to: "2026-01-10T00:00:00Z", zone: utc) == [date("2026-01-04T00:00:00Z")])
    }

    @Test func dayOfMonthOrDayOfWeekWhenBothRestricted() throws {
        // The 13th, or any Friday (Vixie cron): Fri 2 Jan, Fri 9 Jan, Tue 13 Jan, Fri 16 Jan.
        let got = try fires("0 12 13 * fri", from: "2026-01-01T00:00:00Z", to: "2026-01-17T00:00:00Z", zone: utc)
        #expect(got == ["2026-01-02T12:00:00Z", "2026-01-09T12:00:00Z", "2026-01-13T12:00:00Z", "2026-01-16T12:00:00Z"].map(date))
    }

    @Test func leapDayIsFoundYearsAhead() throws {
        let next = try CronExpression("0 0 29 2 *").nextFire(after: date("2026-03-01T00:00:00Z"), in: utc)
        #expect(next == date("2028-02-29T00:00:00Z"))
    }

    /// Guards against a 02:30 job running zero times (the wall time does not exist) or twice
    /// on the spring-forward night: it runs once, when the clock jumps.
    @Test func fixedTimeJobInTheSkippedHourRunsOnceAtTheJump() throws {
        let got = try fires("30 2 * * *", from: "2026-03-27T12:00:00Z", to: "2026-03-31T12:00:00Z", zone: amsterdam)
        #expect(
            got == [
                "2026-03-28T01:30:00Z",  // 02:30 CET
                "2026-03-29T01:00:00Z",  // 03:00 CEST: the jump
                "2026-03-30T00:30:00Z",  // 02:30 CEST
                "2026-03-31T00:30:00Z",
            ].map(date))
    }

    /// Guards against a 02:30 job running twice on the fall-back night, when 02:30 happens
    /// twice: only the first one.
    @Test func fixedTimeJobInTheRepeatedHourRunsOnce() throws {
        let got = try fires("30 2 * * *", from: "2026-10-24T12:00:00Z", to: "2026-10-26T12:00:00Z", zone: amsterdam)
        #expect(got == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"].map(date))
    }

    /// A wildcard job follows the wall clock: every 30 real minutes through the repeated
    /// hour (both passes) and nothing for the skipped hour.
    @Test func wildcardJobsFollowTheWallClock() throws {
        #expect(
            try fires("*/30 * * * *", from: "2026-10-25T00:00:00Z", to: "2026-10-25T02:00:00Z", zone: amsterdam)
                == ["2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z"].map(date))
        #expect(
            try fires("*/30 * * * *", from: "2026-03-29T00:00:00Z", to: "2026-03-29T02:00:00Z", zone: amsterdam)
                == ["2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z", "2026-03-29T02:00:00Z"].map(date))
        // Hourly at :30 with a wildcard hour: 01:30 CET, then 03:30 CEST (one real hour later).
        #expect(
            try fires("30 * * * *", from: "2026-03-29T00:00:00Z", to: "2026-03-29T02:00:00Z", zone: amsterdam)
                == ["2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z"].map(date))
    }

    /// Starting inside the repeated hour's second pass must not go back to its first pass.
    @Test func nextFireFromInsideTheRepeatedHour() throws {
        let cron = try CronExpression("45 2 * * *")
        // 02:10 CET (second pass): 02:45 already ran in the first pass (00:45Z).
        #expect(cron.nextFire(after: date("2026-10-25T01:10:00Z"), in: amsterdam) == date("2026-10-26T01:45:00Z"))
        // 02:10 CEST (first pass): 02:45 CEST is still ahead.
        #expect(cron.nextFire(after: date("2026-10-25T00:10:00Z"), in: amsterdam) == date("2026-10-25T00:45:00Z"))
    }
}
