import Dispatch
import Foundation
import Logging
import SyncEngine

/// The engine-independent half of both stores: the serial queue every blocking call runs on
/// (never Swift's cooperative pool), the main session (opened on first use, reopened when it
/// broke), what the last snapshot read (versions for the optimistic check, the schema variant
/// plans are written in), the services whose lock is held, and the calls that are the same on
/// both engines (snapshot, schema facts, holding a lock). Its mutable state is only touched on
/// `queue`, which is what the `@unchecked Sendable` relies on.
final class StoreCore<Session: SQLSession & Sendable>: @unchecked Sendable {
    let logger: Logger
    private let queue: DispatchQueue
    private let open: @Sendable () throws -> Session
    // State below: only on `queue`.
    private var main: Session?
    /// `"user".version` of every user the last snapshot read, by id.
    var snapshotVersions: [Int: Int] = [:]
    /// The schema variant the last snapshot read (plans are written in it).
    var snapshotSchema: SudoSOSSchema = .may2026
    /// Services whose lock this store holds right now.
    var heldLocks: Set<String> = []

    init(label: String, logger: Logger, open: @escaping @Sendable () throws -> Session) {
        self.logger = logger
        self.queue = DispatchQueue(label: label)
        self.open = open
    }

    /// Runs blocking database work on the queue and resumes the caller when it is done.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// A new session (the main one, or a lock's own). Call on the queue.
    func connect() throws -> Session { try open() }

    /// The main session. Call on the queue.
    func mainConnection() throws -> Session {
        if let main, main.isHealthy { return main }
        main = nil
        let connection = try open()
        main = connection
        return connection
    }

    func snapshot(_ request: SnapshotRequest) async throws -> Snapshot {
        try await run {
            let snapshot = try SnapshotReader(session: self.mainConnection()).read(request)
            self.snapshotVersions = snapshot.users.mapValues(\.version)
            self.snapshotSchema = request.schema
            return snapshot
        }
    }

    func schemaFacts() async throws -> SchemaFacts {
        try await run { try SchemaReader(session: self.mainConnection()).read() }
    }

    /// Runs `body` between `acquire` and `release` (on every path), with `service` recorded as
    /// held meanwhile.
    func holding<Lock: Sendable, T: Sendable>(
        _ service: String, acquire: () async throws -> Lock, release: (Lock) async -> Void,
        _ body: () async throws -> T
    ) async throws -> T {
        let lock = try await acquire()
        func unheld() async { _ = try? await run { self.heldLocks.remove(service) } }
        do {
            logger.debug("holding the lock of service \(service)")
            _ = try await run { self.heldLocks.insert(service).inserted }
            let value = try await body()
            await unheld()
            await release(lock)
            return value
        } catch {
            await unheld()
            await release(lock)
            throw error
        }
    }
}

/// An engine's statements for our run rows; `StoreCore.beginRun` / `finishRun` use them the
/// same way on both engines.
struct RunRowStatements: Sendable {
    /// Closes the open rows of the service (parameter: service) as crashes.
    var closeInterrupted: String
    /// Inserts a row (service, started, dry run); returns `id`, or nothing when `lastId` is set.
    var insert: String
    /// Reads the id of the row just inserted, where `insert` cannot return it.
    var lastId: String?
    /// Completes a row (finished, outcome, dry run, counts, error, id).
    var finish: String
    /// A time and a boolean as the statements take them.
    var time: @Sendable (Date) -> String
    var bool: @Sendable (Bool) -> String
}

extension StoreCore {
    /// Records the start of a run; holding the service's lock, first closes the rows of runs
    /// of it that never recorded their end (no other run of it can be going on: those were
    /// killed, crashed or lost their connection). `ensure` creates our tables when missing.
    func beginRun(
        service: String, dryRun: Bool, startedAt: Date, statements: RunRowStatements,
        ensure: @escaping @Sendable (Session) throws -> Void
    ) async throws -> Int64 {
        try await run {
            let connection = try self.mainConnection()
            try ensure(connection)
            if self.heldLocks.contains(service) {
                _ = try connection.query(statements.closeInterrupted, [service], what: "closing the records of interrupted runs")
            }
            var rows = try connection.query(
                statements.insert, [service, statements.time(startedAt), statements.bool(dryRun)],
                what: "recording the start of the run")
            if let lastId = statements.lastId {
                rows = try connection.query(lastId, [], what: "recording the start of the run")
            }
            guard let row = rows.rows.first else { throw SyncError.failed("recording the start of the run returned no id") }
            return try row.int64("id")
        }
    }

    /// Completes the run's row.
    func finishRun(
        _ runId: Int64, summary: RunSummary, statements: RunRowStatements,
        ensure: @escaping @Sendable (Session) throws -> Void
    ) async throws {
        let counts = try PGValue.json(RunCounts(summary))
        try await run {
            let connection = try self.mainConnection()
            try ensure(connection)
            _ = try connection.query(
                statements.finish,
                [
                    statements.time(summary.finishedAt), summary.outcome.rawValue, statements.bool(summary.dryRun), counts,
                    summary.error, String(runId),
                ],
                what: "recording the end of the run")
        }
    }
}

/// The `counts` JSON of a run row (`sudosos_sync.run` / `sudosos_sync_run`).
struct RunCounts: Encodable {
    var entities: EntityCounts
    var changes: [String: Int]
    var rejected: [String: Int]

    init(_ summary: RunSummary) {
        entities = summary.entities
        changes = summary.changes
        rejected = summary.rejected
    }
}
