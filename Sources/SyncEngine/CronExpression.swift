import Foundation

/// A 5-field cron expression (minute hour day-of-month month day-of-week) with lists (`1,15`),
/// ranges (`1-5`), steps (`*/15`, `10-50/20`, `5/10`) and names (`jan`…`dec`, `sun`…`sat`).
/// Day of week 0 and 7 are both Sunday. As in Vixie cron, when both day-of-month and
/// day-of-week are restricted, a day matches if either matches.
///
/// ``nextFire(after:in:)`` computes the next instant in a time zone, with daylight-saving
/// time handled the way cronie does it:
/// - a *fixed-time* job (neither minute nor hour starts with `*`) whose wall-clock time falls
///   into the hour skipped in spring runs once, at the instant the clock jumps; in the hour
///   repeated in autumn it runs only at the first of the two occurrences;
/// - a *wildcard* job (`*/15 * * * *`, `5 * * * *`) follows the wall clock: nothing in the
///   skipped hour, both passes of the repeated hour.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    let minutes: UInt64
    let hours: UInt64
    let daysOfMonth: UInt64
    let months: UInt64
    let daysOfWeek: UInt64
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool
    /// Neither minute nor hour starts with `*` (see the type's documentation).
    let isFixedTime: Bool

    /// Parses `text`; throws `SyncError.configuration` naming the bad field.
    public init(_ text: String) throws {
        self.text = text
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw SyncError.configuration(
                "cron expression '\(text)' has \(fields.count) fields, expected 5 (minute hour day-of-month month day-of-week)")
        }
        minutes = try Self.parse(fields[0], name: "minute", in: 0...59, names: [:], text: text)
        hours = try Self.parse(fields[1], name: "hour", in: 0...23, names: [:], text: text)
        daysOfMonth = try Self.parse(fields[2], name: "day-of-month", in: 1...31, names: [:], text: text)
        months = try Self.parse(fields[3], name: "month", in: 1...12, names: Self.monthNames, text: text)
        var dow = try Self.parse(fields[4], name: "day-of-week", in: 0...7, names: Self.dayNames, text: text)
        if dow & (1 << 7) != 0 { dow = (dow | 1) & ~(UInt64(1) << 7) }
        daysOfWeek = dow
        dayOfMonthRestricted = !fields[2].hasPrefix("*")
        dayOfWeekRestricted = !fields[4].hasPrefix("*")
        isFixedTime = !fields[0].hasPrefix("*") && !fields[1].hasPrefix("*")
        if !Self.anyDayExists(daysOfMonth: daysOfMonth, months: months) && !dayOfWeekRestricted {
            throw SyncError.configuration("cron expression '\(text)': no month has that day (day-of-month field)")
        }
    }

    public var description: String { text }

    static let monthNames: [String: Int] = [
        "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
        "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
    ]
    static let dayNames: [String: Int] = ["sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6]

    private static func parse(
        _ field: String, name: String, in range: ClosedRange<Int>, names: [String: Int], text: String
    ) throws -> UInt64 {
        func bad(_ why: String) -> SyncError {
            .configuration("cron expression '\(text)': \(name) field '\(field)' \(why)")
        }
        func value(_ token: Substring) throws -> Int {
            if let number = Int(token) {
                guard range.contains(number) else { throw bad("has \(number), outside \(range.lowerBound)-\(range.upperBound)") }
                return number
            }
            if let named = names[token.lowercased()] { return named }
            throw bad("has '\(token)', not a number\(names.isEmpty ? "" : " or name")")
        }
        var set: UInt64 = 0
        for item in field.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw bad("has an empty list item") }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else { throw bad("has more than one '/'") }
            var step = 1
            if parts.count == 2 {
                guard let s = Int(parts[1]), s > 0 else { throw bad("has step '\(parts[1])', not a positive number") }
                step = s
            }
            let base = parts[0]
            var low: Int, high: Int
            if base == "*" {
                (low, high) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                low = try value(base[..<dash])
                high = try value(base[base.index(after: dash)...])
                guard low <= high else { throw bad("has range \(low)-\(high) that runs backwards") }
            } else {
                low = try value(base)
                // `5/10` means from 5 to the end in steps of 10.
                high = parts.count == 2 ? range.upperBound : low
            }
            for v in stride(from: low, through: high, by: step) { set |= 1 << UInt64(v) }
        }
        return set
    }

    private static func anyDayExists(daysOfMonth: UInt64, months: UInt64) -> Bool {
        let longest = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        for month in 1...12 where months & (1 << UInt64(month)) != 0 {
            for day in 1...longest[month] where daysOfMonth & (1 << UInt64(day)) != 0 { return true }
        }
        return false
    }

    // MARK: Matching wall-clock times

    /// Whether the calendar day matches (month, and day-of-month / day-of-week).
    func matchesDay(_ day: CivilDay) -> Bool {
        guard months & (1 << UInt64(day.month)) != 0 else { return false }
        let domMatch = daysOfMonth & (1 << UInt64(day.day)) != 0
        let dowMatch = daysOfWeek & (1 << UInt64(day.weekday)) != 0
        switch (dayOfMonthRestricted, dayOfWeekRestricted) {
        case (true, true): return domMatch || dowMatch
        case (true, false): return domMatch
        case (false, true): return dowMatch
        case (false, false): return true
        }
    }

    /// The first wall-clock minute at or after `start` (minutes since 1970-01-01 00:00 local)
    /// that matches, or nil if none within about 9 years.
    func nextWallMinute(atOrAfter start: Int64) -> Int64? {
        var dayNumber = Self.floorDiv(start, 1440)
        var minuteOfDay = Int(start - dayNumber * 1440)
        let lastDay = dayNumber + 366 * 9
        while dayNumber <= lastDay {
            let day = CivilDay(daysSinceEpoch: dayNumber)
            if matchesDay(day) {
                var m = minuteOfDay
                while m < 1440 {
                    let hour = m / 60, minute = m % 60
                    if hours & (1 << UInt64(hour)) == 0 {
                        m = (hour + 1) * 60
                        continue
                    }
                    if minutes & (1 << UInt64(minute)) != 0 { return dayNumber * 1440 + Int64(m) }
                    m += 1
                }
            }
            dayNumber += 1
            minuteOfDay = 0
        }
        return nil
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    // MARK: Next instant in a time zone

    /// The first instant strictly after `date` at which this expression fires in `zone`
    /// (daylight-saving rules in the type's documentation); nil if it never fires.
    public func nextFire(after date: Date, in zone: TimeZone) -> Date? {
        let after = Int64((date.timeIntervalSince1970).rounded(.down))
        // Wall-clock seconds of `after`; start a few hours earlier so the second pass of a
        // repeated hour (wall times earlier than now) is seen.
        let wallNow = after + Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(after))))
        var cursor = Self.floorDiv(wallNow, 60) - 4 * 60
        var best: Int64?
        var bestBound = Int64.max
        while let wallMinute = nextWallMinute(atOrAfter: cursor) {
            let wall = wallMinute * 60
            if wall > bestBound { break }
            for instant in instants(ofWall: wall, in: zone) where instant > after {
                if best == nil || instant < best! {
                    best = instant
                    let b = Date(timeIntervalSince1970: TimeInterval(instant))
                    let maxOffset = max(
                        zone.secondsFromGMT(for: b.addingTimeInterval(-86400)),
                        zone.secondsFromGMT(for: b.addingTimeInterval(86400)))
                    bestBound = instant + Int64(maxOffset) + 3600
                }
            }
            cursor = wallMinute + 1
            if best == nil && wall - wallNow > 366 * 9 * 86400 { break }
        }
        return best.map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }

    /// The instants (Unix seconds) whose local time in `zone` is `wall` (local seconds since
    /// the epoch), after the daylight-saving rules: one normally; for a fixed-time job the
    /// first of two in a repeated hour and the jump instant for a skipped one; for a wildcard
    /// job both of two, and none for a skipped time.
    func instants(ofWall wall: Int64, in zone: TimeZone) -> [Int64] {
        func offset(_ t: Int64) -> Int64 { Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(t)))) }
        let before = offset(wall - 50400), afterOffset = offset(wall + 50400)
        var found: [Int64] = []
        for candidate in Set([before, afterOffset]) {
            let instant = wall - candidate
            if offset(instant) == candidate { found.append(instant) }
        }
        found.sort()
        if found.isEmpty {
            // A skipped wall time: the clock jumped over it.
            guard isFixedTime else { return [] }
            let from = Date(timeIntervalSince1970: TimeInterval(wall - max(before, afterOffset) - 1))
            if let jump = zone.nextDaylightSavingTimeTransition(after: from) {
                return [Int64(jump.timeIntervalSince1970)]
            }
            return [wall - before]
        }
        if found.count > 1 && isFixedTime { return [found[0]] }
        return found
    }
}

/// A proleptic Gregorian calendar day, computed without Foundation (H. Hinnant's algorithms).
struct CivilDay: Hashable {
    var year: Int64
    var month: Int
    var day: Int
    /// 0 = Sunday.
    var weekday: Int

    init(daysSinceEpoch z0: Int64) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = Int(doy - (153 * mp + 2) / 5 + 1)
        month = Int(mp < 10 ? mp + 3 : mp - 9)
        year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let w = (z0 + 4) % 7
        weekday = Int(w >= 0 ? w : w + 7)
    }
}
