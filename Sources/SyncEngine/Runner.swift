import Foundation
import Logging

/// Runs one service once: lock → prepare → snapshot → fetch → plan → validate → threshold →
/// apply (or print, on a dry run) → record. Owned by the foundation; see docs/architecture.md.
public struct SyncRunner: Sendable {
    public var database: any SudoSOSDatabase
    public var threshold: DeletionThreshold
    public var logger: Logger

    public init(database: any SudoSOSDatabase, threshold: DeletionThreshold, logger: Logger) {
        self.database = database
        self.threshold = threshold
        self.logger = logger
    }
}

/// What a run hands back: the summary (stored, reported), the plan if one was made, and the
/// process exit code.
public struct RunResult: Sendable {
    public var summary: RunSummary
    public var plan: Plan?
    public var exitCode: ExitCode

    public init(summary: RunSummary, plan: Plan?, exitCode: ExitCode) {
        self.summary = summary
        self.plan = plan
        self.exitCode = exitCode
    }
}
