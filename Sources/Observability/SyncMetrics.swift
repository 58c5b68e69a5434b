import Foundation
import SyncEngine

/// Every metric of docs/metrics.md, owned by the supervisor and rendered by `GET /metrics`.
/// The supervisor calls these as its state changes; children never touch the registry.
///
/// The bodies are the observability work's; the signatures are the contract with the supervisor.
public final class SyncMetrics: Sendable {
    /// Creates every series of `services` at 0, and `sudosos_sync_build_info{version}`.
    public init(services: [String], version: String) {}

    /// A run started (`sudosos_sync_running` 1, `last_run_timestamp`).
    public func runStarted(service: String, at: Date) {}

    /// A run ended: outcome counter, duration histogram, last success, entity / change /
    /// rejection counters (from `summary`, absent when the child died), child CPU and max RSS.
    public func runFinished(
        service: String, outcome: RunOutcome, durationSeconds: Double, summary: RunSummary?,
        childCPUSeconds: Double, childMaxRSSBytes: UInt64
    ) {}

    /// A failed run is started again after its backoff.
    public func childRestarted(service: String) {}

    /// The supervisor's view of the service after every transition.
    public func serviceState(service: String, nextRunAt: Date?, consecutiveFailures: Int, backoffSeconds: Double) {}

    /// One source request reported by a child.
    public func sourceRequest(service: String, ok: Bool, seconds: Double) {}

    /// The exposition text (0.0.4), process metrics read from /proc at call time.
    public func render() -> [UInt8] { [] }
}
