import Foundation
import Logging

/// Runs one service once: lock → schema check → prepare → snapshot → guard → fetch → plan → validate →
/// threshold → apply (or only plan, on a dry run) → record. Owned by the foundation; see
/// docs/architecture.md and docs/database.md.
public struct SyncRunner: Sendable {
    public var database: any SudoSOSDatabase
    public var threshold: DeletionThreshold
    public var logger: Logger
    /// `services.NAME.timeout`: the sources give up a little before it (`RunDeadline`), and a
    /// run whose plan is still not made when it passes fails without writing. nil: no limit.
    public var timeout: Duration?

    public init(database: any SudoSOSDatabase, threshold: DeletionThreshold, logger: Logger, timeout: Duration? = nil) {
        self.database = database
        self.threshold = threshold
        self.logger = logger
        self.timeout = timeout
    }

    /// One run of `service`. Never throws: every way a run can end is a `RunResult`.
    ///
    /// - Every `SyncError` maps through its kind (outcome and exit code); any other error is a
    ///   failure (exit 1).
    /// - A plan over the deletion threshold is refused: nothing is written to SudoSOS, the
    ///   outcome is `refused` (exit 65), and the result still carries the plan so the report can
    ///   say what would have been removed.
    /// - A dry run computes the same plan and writes nothing to SudoSOS.
    /// - Every run that got past the lock is recorded in `sudosos_sync.run` (dry and refused runs
    ///   too); a run that found the lock held is recorded as `locked`. The audit trail is written
    ///   with the changes, in the same transaction.
    /// - `entities.skipped` adds the snapshot's users the service's guard did not target.
    public func run<S: SyncService>(_ service: S, dryRun: Bool, reporter: any RunReporter) async -> RunResult {
        let startedAt = Date()
        let started = ContinuousClock.now
        let deadline = timeout.map { RunDeadline(timeout: $0, from: started) }
        let reporter = PhaseReporter(reporter)
        var logger = self.logger
        logger[metadataKey: "service"] = "\(service.name)"
        logger.info("run started\(dryRun ? " (dry run)" : "")")
        var runId: Int64?
        var plan: Plan?
        var applied = false
        var failure: (any Error)?
        do {
            reporter.heartbeat(phase: "lock")
            try await database.withServiceLock(service.name) {
                runId = try await database.beginRun(service: service.name, dryRun: dryRun, startedAt: startedAt)
                let runLogger = logger
                let planned = try await withinTimeout(started, service: service.name, phase: reporter) {
                    try await makePlan(service, dryRun: dryRun, reporter: reporter, logger: runLogger, deadline: deadline)
                }
                plan = planned
                if case .refused(let why) = threshold.check(planned) {
                    throw SyncError.refused("plan refused by the deletion threshold: \(why); nothing was written")
                }
                // Verdicts are written even when nothing changes: their age is what the other
                // service relies on.
                if !dryRun && (!planned.changes.isEmpty || !planned.verdicts.isEmpty) {
                    reporter.heartbeat(phase: "apply")
                    plan = try await database.apply(planned, runId: runId!)
                    applied = true
                }
            }
        } catch {
            failure = error
        }

        let syncError = failure.map { error in
            (error as? SyncError) ?? SyncError.failed("the run failed: \(String(describing: error))")
        }
        let outcome = syncError?.outcome ?? .success
        var summary = RunSummary(
            service: service.name, outcome: outcome, dryRun: dryRun, startedAt: startedAt, finishedAt: Date(),
            error: syncError?.message)
        if let plan {
            summary.entities = plan.entities
            summary.rejected = Dictionary(grouping: plan.rejected, by: \.reason.rawValue).mapValues(\.count)
            // Changes count what was written, or (dry run, refused) what would have been.
            if applied || (syncError == nil && dryRun) || syncError?.kind == .refused {
                summary.changes = Dictionary(uniqueKeysWithValues: plan.countsByAction.map { ($0.key.rawValue, $0.value) })
            }
        }
        reporter.heartbeat(phase: "record")
        await record(summary, runId: runId, logger: logger)
        log(summary, plan: plan, logger: logger)
        return RunResult(summary: summary, plan: plan, exitCode: syncError?.exitCode ?? .success)
    }

    /// schema check → prepare → snapshot → guard → fetch → plan → validate.
    private func makePlan<S: SyncService>(
        _ service: S, dryRun: Bool, reporter: any RunReporter, logger: Logger, deadline: RunDeadline?
    ) async throws -> Plan {
        let context = RunContext(logger: logger, reporter: reporter, dryRun: dryRun, deadline: deadline)
        // Before anything else: every column this run reads or writes must exist with its type.
        reporter.heartbeat(phase: "schema")
        var request = service.snapshotRequest
        request.schema = try SudoSOSSchema.resolve(try await database.schemaFacts(), for: request)
        logger.debug("SudoSOS schema: \(request.schema.memberTable), \(request.schema.membershipTable), \(request.schema.termsOfService.rawValue)")
        reporter.heartbeat(phase: "prepare")
        try await service.prepare(context: context)
        reporter.heartbeat(phase: "snapshot")
        let snapshot = try await database.snapshot(request)
        let targeted = snapshot.users.values.filter { service.shouldSync($0, in: snapshot) }.sorted { $0.id < $1.id }
        logger.info("\(targeted.count) of \(snapshot.users.count) users targeted")
        reporter.heartbeat(phase: "fetch")
        let source = try await service.fetch(targeted: targeted, snapshot: snapshot, context: context)
        reporter.heartbeat(phase: "plan")
        var plan = service.plan(source: source, targeted: targeted, snapshot: snapshot)
        plan.entities.skipped += snapshot.users.count - targeted.count
        reporter.heartbeat(phase: "validate")
        plan = Validation.validate(plan)
        return plan
    }

    /// `body`, unless the run's timeout passes first: then the run fails at once (the body,
    /// stuck in a call that cannot be interrupted, is left behind and cancelled; it makes no
    /// writes: the plan is applied only after it returns). The sources normally give up
    /// before this (`RunDeadline`); this is the guarantee that `once` ends within its timeout.
    private func withinTimeout<T: Sendable>(
        _ started: ContinuousClock.Instant, service: String, phase: PhaseReporter,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        guard let timeout else { return try await body() }
        let race = Race<T>()
        let result: Result<T, any Error> = await withCheckedContinuation { continuation in
            race.set(continuation)
            race.work = Task {
                do { race.finish(.success(try await body())) } catch { race.finish(.failure(error)) }
            }
            race.timer = Task {
                try? await Task.sleep(until: started + timeout, clock: .continuous)
                race.finish(.failure(SyncError.failed(
                    "the run did not finish within services.\(service).timeout (\(RunDeadline.describe(timeout))): "
                        + "it hung at \(phase.phase); nothing was written")))
            }
        }
        race.work?.cancel()
        race.timer?.cancel()
        return try result.get()
    }

    /// Writes the `sudosos_sync.run` row; a failure to record is logged, not fatal (the changes
    /// are committed or not regardless). A locked run has no row yet and gets one now; an
    /// unreachable database gets none (trying again would only double the wait).
    private func record(_ summary: RunSummary, runId: Int64?, logger: Logger) async {
        do {
            if let runId {
                try await database.finishRun(runId, summary: summary)
            } else if summary.outcome == .locked {
                let id = try await database.beginRun(
                    service: summary.service, dryRun: summary.dryRun, startedAt: summary.startedAt)
                try await database.finishRun(id, summary: summary)
            }
        } catch {
            logger.warning("could not record the run in sudosos_sync.run: \((error as? SyncError)?.message ?? "unexpected error")")
        }
    }

    /// One line per event; no e-mail addresses (rejection details never hold them, changes are
    /// only counted here).
    private func log(_ summary: RunSummary, plan: Plan?, logger: Logger) {
        if let plan {
            for warning in plan.warnings { logger.warning("\(warning)") }
            for rejection in plan.rejected.prefix(50) {
                logger.notice("rejected \(rejection.record): \(rejection.reason.rawValue): \(rejection.detail)")
            }
            if plan.rejected.count > 50 { logger.notice("... and \(plan.rejected.count - 50) more rejected records") }
        }
        let changes = ChangeAction.allCases.compactMap { action -> String? in
            guard let n = summary.changes[action.rawValue], n > 0 else { return nil }
            return "\(action.rawValue) \(n)"
        }
        let counts = "passed \(summary.entities.passed), failed \(summary.entities.failed), skipped \(summary.entities.skipped)"
        let what = summary.dryRun ? "planned" : "changes"
        let line = "run finished: \(summary.outcome.rawValue); \(counts); \(what): "
            + (changes.isEmpty ? "none" : changes.joined(separator: ", "))
        if let error = summary.error {
            logger.error("\(line); \(error)")
        } else {
            logger.info("\(line)")
        }
    }
}

/// Passes everything on and remembers the last phase, for the timeout's message.
final class PhaseReporter: RunReporter, @unchecked Sendable {
    private let inner: any RunReporter
    private let lock = NSLock()
    private var last = "the start"

    init(_ inner: any RunReporter) { self.inner = inner }

    var phase: String { lock.withLock { last } }

    func heartbeat(phase: String) {
        lock.withLock { last = "phase \"\(phase)\"" }
        inner.heartbeat(phase: phase)
    }

    func sourceRequest(ok: Bool, seconds: Double) { inner.sourceRequest(ok: ok, seconds: seconds) }
}

/// The first of a piece of work and its timer, once.
private final class Race<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Result<T, any Error>, Never>?
    private var done = false
    var work: Task<Void, Never>? {
        get { lock.withLock { _work } }
        set { lock.withLock { _work = newValue } }
    }
    var timer: Task<Void, Never>? {
        get { lock.withLock { _timer } }
        set { lock.withLock { _timer = newValue } }
    }
    private var _work: Task<Void, Never>?
    private var _timer: Task<Void, Never>?

    func set(_ continuation: CheckedContinuation<Result<T, any Error>, Never>) {
        lock.withLock { self.continuation = continuation }
    }

    func finish(_ result: Result<T, any Error>) {
        let continuation: CheckedContinuation<Result<T, any Error>, Never>? = lock.withLock {
            guard !done else { return nil }
            done = true
            defer { self.continuation = nil }
            return self.continuation
        }
        continuation?.resume(returning: result)
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
