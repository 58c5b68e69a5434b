import Logging
import NIOCore
import NIOHTTP1

/// Serves the requests of one connection, one at a time in arrival order (pipelined requests
/// wait in `queue`), and enforces the per-connection limits: body size, the request deadline,
/// and an answer for every protocol error (431 oversized head, 400 garbage) before closing.
final class HTTPConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// A complete request waiting for its turn.
    private struct Request {
        var head: HTTPRequestHead
        var tooLarge: Bool
    }

    private let router: HTTPRouter
    private let limits: HTTPEndpoint.Limits
    private let remote: SocketAddress?
    private let logger: Logger

    /// The request being received (head seen, end not yet).
    private var receiving: Request?
    private var bodyBytes = 0
    /// Requests received completely, not yet answered.
    private var queue: [Request] = []
    /// An answer is being produced or written.
    private var busy = false
    /// Incremented for every request answered; guards late completions of `.later` work.
    private var generation = 0
    /// Closes the connection unless a complete request arrives in time.
    private var deadline: Scheduled<Void>?
    private var closing = false

    init(router: HTTPRouter, limits: HTTPEndpoint.Limits, remote: SocketAddress?, logger: Logger) {
        self.router = router
        self.limits = limits
        self.remote = remote
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armDeadline(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        armDeadline(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        closing = true
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            receiving = Request(head: head, tooLarge: false)
            bodyBytes = 0
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
            if bodyBytes > limits.maxBodyBytes { receiving?.tooLarge = true }
        case .end:
            guard let request = receiving else { return }
            receiving = nil
            queue.append(request)
            if queue.count > 16 {
                // A client pipelining without reading answers: stop reading it.
                fail(context: context, .tooManyRequests, "too many pipelined requests\n")
                return
            }
            serveNext(context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parserError = error as? HTTPParserError {
            logger.debug("bad request", metadata: ["error": "\(parserError)", "remote": "\(remote?.description ?? "?")"])
            if case .headerOverflow = parserError {
                fail(context: context, .requestHeaderFieldsTooLarge, "request header fields too large\n")
            } else {
                fail(context: context, .badRequest, "bad request\n")
            }
        } else {
            logger.debug("connection error", metadata: ["error": "\(error)"])
            closing = true
            context.close(promise: nil)
        }
    }

    /// Answers a protocol error (unless an answer is being written already) and closes.
    private func fail(context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ text: String) {
        guard !closing else { return }
        closing = true
        deadline?.cancel()
        queue.removeAll()
        guard !busy else {
            context.close(promise: nil)
            return
        }
        busy = true
        write(context: context, .text(status, text), keepAlive: false, version: .http1_1)
    }

    /// Starts answering the oldest queued request if none is being answered.
    private func serveNext(context: ChannelHandlerContext) {
        guard !busy, !closing, !queue.isEmpty else { return }
        let request = queue.removeFirst()
        busy = true
        deadline?.cancel()
        deadline = nil
        let keepAlive = request.head.isKeepAlive
        let version = request.head.version
        if request.tooLarge {
            closing = true
            write(context: context, .text(.payloadTooLarge, "request body too large\n"), keepAlive: false, version: version)
            return
        }
        let routed = router.route(
            method: request.head.method, uri: request.head.uri, remote: remote,
            authorization: request.head.headers.first(name: "authorization"))
        switch routed {
        case .now(let response):
            write(context: context, response, keepAlive: keepAlive, version: version)
        case .later(let work):
            generation += 1
            let expected = generation
            let loop = context.eventLoop
            let answered = loop.makeFutureWithTask { await work() }
            let timedOut = loop.assumeIsolated().scheduleTask(in: .init(limits.controlTimeout)) {}
            answered.assumeIsolated().whenSuccess { response in
                // Not answered yet (the control timeout did not fire first)?
                guard self.generation == expected, self.busy else { return }
                timedOut.cancel()
                self.generation += 1
                self.write(context: context, response, keepAlive: keepAlive, version: version)
            }
            timedOut.futureResult.assumeIsolated().whenSuccess {
                guard self.generation == expected, self.busy else { return }
                self.generation += 1
                self.logger.warning("supervisor did not answer in time", metadata: ["uri": "\(request.head.uri)"])
                self.write(
                    context: context, .text(.serviceUnavailable, "supervisor did not answer in time\n"),
                    keepAlive: keepAlive, version: version)
            }
        }
    }

    /// Writes one answer; when it is out, serves the next queued request, waits for one
    /// (keep-alive), or closes.
    private func write(
        context: ChannelHandlerContext, _ response: HTTPResponse, keepAlive: Bool, version: HTTPVersion
    ) {
        guard context.channel.isActive else {
            busy = false
            return
        }
        let keep = keepAlive && !closing
        // A client that does not read its answer must not hold its connection (and a slot of
        // the cap) forever: the same deadline covers the write.
        armDeadline(context: context)
        var headers = HTTPHeaders()
        headers.reserveCapacity(4 + response.headers.count)
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Connection", value: keep ? "keep-alive" : "close")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        let responseVersion = version.major == 1 && version.minor == 0 ? HTTPVersion.http1_0 : .http1_1
        let head = HTTPResponseHead(version: responseVersion, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        var body = context.channel.allocator.buffer(capacity: response.body.count)
        body.writeBytes(response.body)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        done.assumeIsolated().whenComplete { result in
            self.busy = false
            self.deadline?.cancel()
            self.deadline = nil
            guard case .success = result, keep else {
                self.closing = true
                context.close(promise: nil)
                return
            }
            if self.queue.isEmpty {
                self.armDeadline(context: context)
            } else {
                self.serveNext(context: context)
            }
        }
    }

    /// (Re)starts the deadline: the connection closes unless, within `limits.requestTimeout`,
    /// a whole request arrives (when waiting for one) or the answer is written (when writing).
    /// It is off only while the supervisor is asked, which has its own timeout.
    private func armDeadline(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        guard context.channel.isActive else { return }
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: .init(limits.requestTimeout)) {
            self.logger.debug("closing a connection that missed its deadline")
            self.closing = true
            context.close(promise: nil)
        }
    }
}
