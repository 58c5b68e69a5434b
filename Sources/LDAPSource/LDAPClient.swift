import Dispatch
import Foundation
import SyncEngine

/// The async face of one LDAP connection. libldap blocks, so every call runs on a dedicated
/// serial `DispatchQueue`, never on the cooperative thread pool; the caller awaits it.
///
/// Each call also has a deadline of its own, beyond libldap's timeouts: should libldap still
/// hang (a TLS handshake with a frozen server, say), the call fails with `unavailable` and
/// the connection is abandoned (the blocked thread keeps its own reference; the handle is
/// freed if and when it returns). A hung server fails the run; it never hangs it.
public final class LDAPClient: Sendable {
    private let queue: DispatchQueue
    private let connection: LDAPConnection
    private let state = Mutex(State())
    private let options: LDAPConnectionOptions

    struct State {
        var searches = 0
        var requests = 0
        var abandoned = false
    }

    /// Sets up the handle (no network traffic yet). Configuration problems throw `configuration`.
    public init(options: LDAPConnectionOptions) throws(SyncError) {
        if options.bindDN != nil, (options.bindPassword ?? "").isEmpty {
            // An empty password makes a simple bind "unauthenticated" (RFC 4513 §5.1.2): refuse it.
            throw .configuration("services.ldap.bind_pw is required when bind_user is set")
        }
        self.options = options
        self.connection = try LDAPConnection(options: options)
        self.queue = DispatchQueue(label: "sudosos-sync.ldap")
    }

    /// Logical searches made (a paged search counts once).
    public var searches: Int { state.withLock { $0.searches } }
    /// Requests sent to the server for searches (one per page).
    public var requests: Int { state.withLock { $0.requests } }

    /// Connects (StartTLS if configured) and binds.
    public func connect() async throws(SyncError) {
        try await perform("bind to \(options.url)", limit: options.networkTimeout + options.operationTimeout * 2) {
            (connection: LDAPConnection) throws(SyncError) in try connection.connect()
        }
    }

    /// A paged search (every search is paged). `onRequest` is told the outcome and duration
    /// of each page request (for the source request metrics).
    public func search(
        base: String, scope: LDAPScope = .subtree, filter: String, attributes: [String], pageSize: Int,
        onRequest: @escaping @Sendable (Bool, Double) -> Void = { _, _ in }
    ) async throws(SyncError) -> [LDAPEntry] {
        state.withLock { $0.searches += 1 }
        let counter = state
        // The deadline grows with the pages seen: each page has the full operation timeout.
        let pages = Mutex(0)
        return try await perform("search under \(base)", limit: options.operationTimeout + .seconds(5), extendedBy: pages) {
            (connection: LDAPConnection) throws(SyncError) in
            try connection.pagedSearch(base: base, scope: scope, filter: filter, attributes: attributes, pageSize: pageSize) {
                ok, seconds in
                counter.withLock { $0.requests += 1 }
                pages.withLock { $0 += 1 }
                onRequest(ok, seconds)
            }
        }
    }

    /// Runs `body` on the queue; fails with `unavailable` when it overruns `limit` (plus one
    /// more `limit` for every progress tick counted in `extendedBy`).
    private func perform<T: Sendable>(
        _ what: String, limit wanted: Duration, extendedBy progress: Mutex<Int>? = nil,
        _ body: @escaping @Sendable (LDAPConnection) throws(SyncError) -> T
    ) async throws(SyncError) -> T {
        if state.withLock({ $0.abandoned }) {
            throw .unavailable("LDAP connection to \(options.url) was abandoned after a timeout")
        }
        // The run's deadline cuts the limit, and ends the extensions pages earn.
        var limit = wanted
        var runEnds: ContinuousClock.Instant?
        var timedOut = "LDAP \(what) did not finish within \(wanted); giving up"
        if let deadline = options.deadline {
            runEnds = deadline.sourcesBy
            if deadline.cuts(wanted) {
                limit = deadline.remaining
                timedOut = "LDAP \(what) got no answer within \(RunDeadline.describe(limit)), all that "
                    + "services.ldap.timeout (\(RunDeadline.describe(deadline.timeout))) left for it: the server "
                    + "accepts the connection but does not answer (hung or overloaded); giving up"
            }
            guard limit > .zero else {
                throw .unavailable("LDAP \(what) not started: services.ldap.timeout (\(RunDeadline.describe(deadline.timeout))) has run out")
            }
        }
        let message = timedOut
        let (firstLimit, pageLimit, ends) = (limit, wanted, runEnds)
        let connection = self.connection
        let once = Once<Result<T, SyncError>>()
        let result: Result<T, SyncError> = await withCheckedContinuation { continuation in
            once.set(continuation)
            queue.async {
                let outcome: Result<T, SyncError>
                do throws(SyncError) { outcome = .success(try body(connection)) } catch { outcome = .failure(error) }
                once.resume(with: outcome)
            }
            // The watchdog: a thread of its own, so a busy cooperative pool cannot delay it.
            let clock = ContinuousClock()
            DispatchQueue.global().async {
                var deadline = clock.now + firstLimit
                var seenProgress = 0
                while !once.isDone {
                    let now = clock.now
                    let ticks = progress?.withLock { $0 } ?? 0
                    if ticks != seenProgress {
                        deadline = deadline + pageLimit * (ticks - seenProgress)
                        if let ends { deadline = min(deadline, ends) }
                        seenProgress = ticks
                    }
                    if now >= deadline {
                        once.resume(with: .failure(.unavailable(message)))
                        return
                    }
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
        }
        if case .failure(let error) = result, error.message == message {
            state.withLock { $0.abandoned = true }
        }
        return try result.get()
    }
}

/// A lock-protected value (Foundation's `NSLock` around a box): small and Sendable.
final class Mutex<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// Resumes a continuation exactly once, whichever of the work and the watchdog comes first.
final class Once<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, Never>?
    private var done = false

    func set(_ continuation: CheckedContinuation<T, Never>) {
        lock.lock()
        self.continuation = continuation
        lock.unlock()
    }

    var isDone: Bool {
        lock.lock()
        defer { lock.unlock() }
        return done
    }

    func resume(with value: T) {
        lock.lock()
        guard !done, let continuation else {
            lock.unlock()
            return
        }
        done = true
        self.continuation = nil
        lock.unlock()
        continuation.resume(returning: value)
    }
}
