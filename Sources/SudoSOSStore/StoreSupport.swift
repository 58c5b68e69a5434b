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
final class StoreCore<Session: SQLSession>: @unchecked Sendable {
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
