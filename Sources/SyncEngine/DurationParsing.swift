import Foundation

/// Durations as the configuration writes them: `500ms`, `30s`, `15m`, `2h`, `1d`, and
/// combinations from the largest unit down (`1h30m`, `2m30s`).
public enum DurationText {
    /// The units, largest first, with their length in milliseconds.
    private static let units: [(suffix: String, milliseconds: Int64)] = [
        ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1),
    ]

    /// The hint shown after a value that is not a duration.
    public static let hint = "use 500ms, 30s, 15m, 2h"

    /// Parses `text`; `nil` when it is not a duration (no unit, unknown unit, units out of
    /// order or repeated, overflow). `0s` is a duration; callers that need a positive one check.
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        var rest = Substring(trimmed)
        var total: Int64 = 0
        var lastUnitIndex = -1
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, digits.count <= 12, let number = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let letters = rest.prefix { $0.isASCII && $0.isLetter }
            guard let unitIndex = units.firstIndex(where: { $0.suffix == String(letters) }),
                unitIndex > lastUnitIndex
            else { return nil }
            rest = rest.dropFirst(letters.count)
            lastUnitIndex = unitIndex
            let (product, overflow) = number.multipliedReportingOverflow(by: units[unitIndex].milliseconds)
            guard !overflow else { return nil }
            let (sum, overflow2) = total.addingReportingOverflow(product)
            guard !overflow2 else { return nil }
            total = sum
        }
        return .milliseconds(total)
    }

    /// Writes `duration` the way `parse` reads it, largest units first (`1h30m`, `500ms`, `0s`).
    /// Sub-millisecond parts are dropped.
    public static func format(_ duration: Duration) -> String {
        var remaining = milliseconds(of: duration)
        guard remaining > 0 else { return "0s" }
        var text = ""
        for unit in units where remaining >= unit.milliseconds {
            text += "\(remaining / unit.milliseconds)\(unit.suffix)"
            remaining %= unit.milliseconds
        }
        return text
    }

    /// Whole milliseconds of a duration (truncated).
    public static func milliseconds(of duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// Byte sizes as the configuration writes them: `1GiB`, `512MiB`, `64KiB`, `1GB`, `4096`
/// (bytes). Binary units are powers of 1024, decimal ones (kB, MB, GB, TB) of 1000.
public enum ByteSize {
    private static let units: [String: UInt64] = [
        "": 1, "B": 1,
        "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
        "kB": 1_000, "KB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000, "TB": 1_000_000_000_000,
    ]

    /// The hint shown after a value that is not a size.
    public static let hint = "use 512MiB, 1GiB"

    /// Parses `text` into bytes; `nil` when it is not a size.
    public static func parse(_ text: String) -> UInt64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let number = UInt64(digits) else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        guard let factor = units[unit] else { return nil }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: factor)
        return overflow ? nil : bytes
    }

    /// Writes `bytes` with the largest binary unit that divides it (`1GiB`, `1536MiB`, `100`).
    public static func format(_ bytes: UInt64) -> String {
        for (unit, factor) in [("TiB", UInt64(1) << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
        where bytes >= factor && bytes % factor == 0 {
            return "\(bytes / factor)\(unit)"
        }
        return "\(bytes)"
    }
}
