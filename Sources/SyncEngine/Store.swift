import Foundation

/// What the engine needs from the SudoSOS database. `SudoSOSStore.MariaDBStore` implements it
/// over MariaDB Connector/C (the real SudoSOS), `SudoSOSStore.PostgresStore` over libpq.
public protocol SudoSOSDatabase: Sendable {
    /// Holds the service's lock (`GET_LOCK()` / `pg_try_advisory_lock`) while `body` runs.
    /// Throws `SyncError.locked` at once if another session holds it.
    func withServiceLock<T: Sendable>(_ service: String, _ body: () async throws -> T) async throws -> T

    /// What the database's schema is: the columns (with their `information_schema` data types)
    /// of the tables in `SudoSOSSchema.tablesOfInterest` that exist, and TypeORM's `migrations`
    /// rows (nil without that table). Reads only; the runner calls it before every snapshot.
    func schemaFacts() async throws -> SchemaFacts

    /// Reads the rows a run needs (a constant number of queries), in the tables and columns of
    /// `request.schema`; `apply` then writes in that same variant.
    func snapshot(_ request: SnapshotRequest) async throws -> Snapshot

    /// Applies `plan` in one transaction: only the rows that change, TypeORM's version and
    /// updatedAt rules, one audit row per change (`sudosos_sync_audit` / `sudosos_sync.audit`),
    /// the plan's verdicts. Rolls back on any error.
    ///
    /// A deletion (`deleteUser`) happens only if the user's balance, computed inside the
    /// transaction with the user's row locked (so no purchase or transfer can be written for
    /// them until the commit), is exactly zero; otherwise it becomes a close without delete,
    /// with the reason saying why (and the closing notice when the user was active). Returns
    /// the plan as applied.
    func apply(_ plan: Plan, runId: Int64) async throws -> Plan

    /// Inserts the `sudosos_sync.run` row of a starting run and returns its id.
    func beginRun(service: String, dryRun: Bool, startedAt: Date) async throws -> Int64

    /// Completes the `sudosos_sync.run` row.
    func finishRun(_ runId: Int64, summary: RunSummary) async throws
}

/// The result of one run, as stored in `sudosos_sync.run`, reported to the supervisor and
/// printed by `once --json`.
public struct RunSummary: Sendable, Codable, Hashable {
    public var service: String
    public var outcome: RunOutcome
    public var dryRun: Bool
    public var startedAt: Date
    public var finishedAt: Date
    public var entities: EntityCounts
    /// Changes per action (`ChangeAction.rawValue`), applied or (dry run / refused) planned.
    public var changes: [String: Int]
    /// Rejected records per reason (`RejectionReason.rawValue`).
    public var rejected: [String: Int]
    /// One line: why the run did not succeed.
    public var error: String?

    public init(
        service: String, outcome: RunOutcome, dryRun: Bool, startedAt: Date, finishedAt: Date,
        entities: EntityCounts = EntityCounts(), changes: [String: Int] = [:], rejected: [String: Int] = [:],
        error: String? = nil
    ) {
        self.service = service
        self.outcome = outcome
        self.dryRun = dryRun
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.entities = entities
        self.changes = changes
        self.rejected = rejected
        self.error = error
    }
}
