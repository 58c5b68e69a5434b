/// How runs end, and how that maps to exit codes (sysexits) and metric labels.

/// The process exit codes of `sudosos-sync` (see docs/operations.md).
public enum ExitCode: Int32, Sendable, Codable, CaseIterable {
    case success = 0
    /// The run failed.
    case failure = 1
    /// EX_USAGE: bad command line.
    case usage = 64
    /// EX_DATAERR: refused by a safety check on the data (deletion threshold).
    case refused = 65
    /// EX_UNAVAILABLE: a source or the database cannot be reached (or refuses our credentials).
    case unavailable = 69
    /// EX_TEMPFAIL: the source is not ready, or another instance holds the service's lock.
    case temporary = 75
    /// EX_CONFIG: configuration error.
    case configuration = 78
}

/// The outcome of one run: the `outcome` label of `sudosos_sync_runs_total`.
public enum RunOutcome: String, Sendable, Codable, CaseIterable, Hashable {
    case success
    case failure
    /// The child process died from a signal it did not ask for.
    case crash
    /// The child ran past its timeout or heartbeat deadline and was killed.
    case timeout
    /// The deletion threshold refused the plan: a human must look.
    case refused
    /// The source said it is not ready (GEWISDB `sync_paused`, unhealthy).
    case notReady = "not_ready"
    /// Another instance holds this service's advisory lock.
    case locked
}

/// The error every layer throws: a kind that fixes the exit code, and one line for operators.
///
/// `message` must never hold a password, API key or e-mail address.
public struct SyncError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable, Hashable {
        /// Bad configuration: exit 78; retrying cannot help.
        case configuration
        /// A source or the database is unreachable, or refuses our credentials: exit 69.
        case unavailable
        /// The source is not ready: exit 75, outcome `not_ready`.
        case notReady
        /// The service's lock is held by another instance: exit 75, outcome `locked`.
        case locked
        /// A safety check refused the plan: exit 65, outcome `refused`.
        case refused
        /// Anything else that fails the run: exit 1.
        case failed
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    public var exitCode: ExitCode {
        switch kind {
        case .configuration: return .configuration
        case .unavailable: return .unavailable
        case .notReady, .locked: return .temporary
        case .refused: return .refused
        case .failed: return .failure
        }
    }

    public var outcome: RunOutcome {
        switch kind {
        case .configuration, .unavailable, .failed: return .failure
        case .notReady: return .notReady
        case .locked: return .locked
        case .refused: return .refused
        }
    }

    public static func configuration(_ message: String) -> SyncError { SyncError(.configuration, message) }
    public static func unavailable(_ message: String) -> SyncError { SyncError(.unavailable, message) }
    public static func notReady(_ message: String) -> SyncError { SyncError(.notReady, message) }
    public static func locked(_ message: String) -> SyncError { SyncError(.locked, message) }
    public static func refused(_ message: String) -> SyncError { SyncError(.refused, message) }
    public static func failed(_ message: String) -> SyncError { SyncError(.failed, message) }
}
