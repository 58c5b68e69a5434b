import Logging

/// The supervisor's HTTP endpoint: `/metrics`, `/healthz`, `/status`, `/trigger/SERVICE`, `/`.
/// (Signatures only; the observability work fills it in.)
public final class HTTPEndpoint: Sendable {
    public init(
        host: String, port: Int, metrics: SyncMetrics, control: any SupervisorControl, triggerToken: String?,
        logger: Logger
    ) {}

    /// Binds and starts serving; returns the bound port (useful with port 0).
    public func start() async throws -> Int { 0 }

    /// Stops accepting, closes connections.
    public func stop() async {}
}
