/// A 5-field cron expression (minute hour day-of-month month day-of-week) with lists, ranges,
/// steps and names. (Signature only; the supervisor work fills it in.)
public struct CronExpression: Sendable, Hashable {
    public let text: String

    /// Parses `text`; throws `SyncError.configuration` naming the bad field.
    public init(_ text: String) throws {
        self.text = text
    }
}
