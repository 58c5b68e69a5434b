import Dispatch
import Foundation
import SyncEngine

/// What both stores do around the engine: blocking calls on a serial queue of their own
/// (never on the cooperative pool), and holding a service's lock while a body runs.
enum StoreSupport {
    /// Runs blocking database work on `queue` and resumes the caller when it is done.
    static func run<T: Sendable>(on queue: DispatchQueue, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Runs `body` between `acquire` and `release`, releasing on every path; `held` and
    /// `unheld` keep the store's record of the services whose lock it holds.
    static func holding<Lock: Sendable, T: Sendable>(
        acquire: () async throws -> Lock, held: () async throws -> Void, unheld: () async -> Void,
        release: (Lock) async -> Void, _ body: () async throws -> T
    ) async throws -> T {
        let lock = try await acquire()
        do {
            try await held()
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
