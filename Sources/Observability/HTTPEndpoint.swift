import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The supervisor's HTTP endpoint: `/metrics`, `/healthz`, `/status`, `/trigger/SERVICE`, `/`.
///
/// One event-loop thread serves every connection with a plain NIO channel pipeline
/// (`HTTPRequestDecoder` with header limits → `HTTPConnectionHandler`). Errors are caught per
/// connection and close only that connection. It defends itself against bad clients:
/// - request heads over `maxHeaderBytes` get 431, unparsable requests 400, then the connection
///   closes;
/// - a connection must deliver a whole request within `requestTimeout` of opening or of its
///   last answer, or it is closed (idle keep-alive and slowloris alike);
/// - at most `maxConnections` connections at once; the ones over the cap get 503 and are closed.
///
/// `/metrics` renders `SyncMetrics` as it is (atomics and small locks: it never waits for the
/// supervisor). `/status`, `/` and `/trigger` ask `SupervisorControl`, with a deadline
/// (`controlTimeout`): a stuck supervisor costs those requests a 503, never the endpoint.
public final class HTTPEndpoint: Sendable {
    /// What the endpoint was configured with.
    public struct Limits: Sendable, Hashable {
        /// Cap on the request line plus headers, in bytes (431 above it).
        public var maxHeaderBytes: Int = 8 * 1024
        /// Cap on a request body, in bytes (413 above it; no path needs a body).
        public var maxBodyBytes: Int = 4 * 1024
        /// A connection that has not sent a complete request this long after opening or after
        /// its last answer is closed.
        public var requestTimeout: Duration = .seconds(10)
        /// How long `/status`, `/` and `/trigger` wait for the supervisor before answering 503.
        public var controlTimeout: Duration = .seconds(5)
        /// Connections served at once; more are answered 503 and closed.
        public var maxConnections: Int = 64

        public init() {}
    }

    private let host: String
    private let port: Int
    let router: HTTPRouter
    let limits: Limits
    private let logger: Logger
    private let running: Mutex<Running?> = Mutex(nil)
    let connections = ConnectionLimiter()

    /// The listening channel while started.
    private struct Running: Sendable {
        var channel: any Channel
    }

    public convenience init(
        host: String, port: Int, metrics: SyncMetrics, control: any SupervisorControl, triggerToken: String?,
        logger: Logger
    ) {
        self.init(
            host: host, port: port, metrics: metrics, control: control, triggerToken: triggerToken, logger: logger,
            limits: Limits())
    }

    /// - Parameters:
    ///   - trustLoopback: whether a request from 127.0.0.0/8 or ::1 may trigger without the
    ///     token (tests turn it off to play a remote client).
    public init(
        host: String, port: Int, metrics: SyncMetrics, control: any SupervisorControl, triggerToken: String?,
        logger: Logger, limits: Limits, trustLoopback: Bool = true
    ) {
        self.host = host
        self.port = port
        self.limits = limits
        self.logger = logger
        let token = triggerToken.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        self.router = HTTPRouter(
            metrics: metrics, control: control, triggerToken: token, trustLoopback: trustLoopback,
            controlTimeout: limits.controlTimeout, logger: logger)
    }

    /// Binds and starts serving; returns the bound port (useful with port 0).
    public func start() async throws -> Int {
        // One event loop of the process-wide group serves the listener and every connection:
        // the endpoint's work stays on one thread (no hand-offs, no two threads of it fighting
        // for a core), and the group outlives the endpoint, so work that completes after
        // `stop()` (a slow supervisor answer) still finds a live event loop.
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let endpoint = self
        let bootstrap = ServerBootstrap(group: loop, childGroup: loop)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // TCP_NODELAY is an IPPROTO_TCP option: `.tcpOption`, never `.socketOption`, which
            // means SOL_SOCKET, where the same number (1) is SO_DEBUG. That needs CAP_NET_ADMIN,
            // so without it (any unprivileged user, the hardened unit) every accepted
            // connection failed its set-up and was reset (docs/install.md).
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try endpoint.configure(channel)
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        running.withLock { $0 = Running(channel: channel) }
        let bound = channel.localAddress?.port ?? port
        logger.info("HTTP endpoint listening", metadata: ["address": "\(host):\(bound)"])
        return bound
    }

    /// Connections open now (over-the-cap ones, answered 503, are not counted).
    public var openConnections: Int { connections.count }

    /// Stops accepting, closes connections.
    public func stop() async {
        guard let running = running.withLock({ state in defer { state = nil }; return state }) else { return }
        try? await running.channel.close()
        for connection in connections.openChannels() {
            try? await connection.close()
        }
    }

    /// Whether a bearer token offered by a client equals the configured one, compared in
    /// constant time for tokens of one length.
    public static func tokensMatch(_ offered: String, _ configured: String) -> Bool {
        HTTPRouter.constantTimeEqual(Array(offered.utf8), Array(configured.utf8))
    }

    /// Sets up one accepted connection (on its event loop).
    private func configure(_ channel: any Channel) throws {
        let sync = channel.pipeline.syncOperations
        guard connections.acquire(limit: limits.maxConnections) else {
            try sync.addHandler(RefuseConnectionHandler())
            return
        }
        let limiter = connections
        let id = limiter.register(channel)
        channel.closeFuture.whenComplete { _ in limiter.release(id) }
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldCount = 100
        try sync.addHandler(HTTPResponseEncoder())
        try sync.addHandler(
            ByteToMessageHandler(
                HTTPRequestDecoder(
                    leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .drop,
                    limitConfiguration: decoderLimits)))
        try sync.addHandler(
            HTTPConnectionHandler(router: router, limits: limits, remote: channel.remoteAddress, logger: logger))
    }
}

/// Counts open connections against a cap, and keeps them so `stop()` can close them.
final class ConnectionLimiter: Sendable {
    private let taken = Atomic<Int>(0)
    private let channels = Mutex<(next: Int, byID: [Int: any Channel])>((0, [:]))

    /// Takes a slot if fewer than `limit` are taken.
    func acquire(limit: Int) -> Bool {
        var current = taken.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = taken.compareExchange(
                expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Remembers a connection that holds a slot; returns its key for `release(_:)`.
    func register(_ channel: any Channel) -> Int {
        channels.withLock { state in
            state.next += 1
            state.byID[state.next] = channel
            return state.next
        }
    }

    /// Frees the slot of a closed connection.
    func release(_ id: Int) {
        _ = channels.withLock { $0.byID.removeValue(forKey: id) }
        taken.subtract(1, ordering: .acquiringAndReleasing)
    }

    /// The connections open now.
    func openChannels() -> [any Channel] {
        channels.withLock { Array($0.byID.values) }
    }

    /// Connections open now.
    var count: Int { taken.load(ordering: .relaxed) }
}

/// Answers a connection over the cap with 503 and closes it, without reading its request.
final class RefuseConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let answer =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\nConnection: close\r\nRetry-After: 1\r\n\r\ntoo many connections\r\n"

    private var answered = false

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context: context)
    }

    private func refuse(context: ChannelHandlerContext) {
        guard !answered else { return }
        answered = true
        let buffer = context.channel.allocator.buffer(string: Self.answer)
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
