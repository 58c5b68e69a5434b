import NIOCore
import NIOHTTP1

/// One connection: reads a request, asks the router, writes the answer after its delay.
/// HTTP/1.1 keep-alive; the pipeline's pipelining assistance keeps answers in order.
final class FakeHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: FakeRouter
    private var head: HTTPRequestHead?

    init(router: FakeRouter) {
        self.router = router
    }

    func channelActive(context: ChannelHandlerContext) {
        router.directory.connectionOpened()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        router.directory.connectionClosed()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            break
        case .end:
            guard let request = head else { return }
            head = nil
            let answer = router.answer(
                method: request.method.rawValue, uri: request.uri,
                authorization: request.headers.first(name: "authorization"))
            let keepAlive = request.isKeepAlive
            let counted = !request.uri.hasPrefix("/_admin/")
            if counted { router.directory.inFlight(true) }
            if answer.delayMilliseconds > 0 {
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                context.eventLoop.scheduleTask(in: .milliseconds(Int64(answer.delayMilliseconds))) {
                    let (handler, context) = loopBound.value
                    handler.write(answer, keepAlive: keepAlive, version: request.version, counted: counted, context: context)
                }
            } else {
                write(answer, keepAlive: keepAlive, version: request.version, counted: counted, context: context)
            }
        }
    }

    private func write(
        _ answer: FakeAnswer, keepAlive: Bool, version: HTTPVersion, counted: Bool, context: ChannelHandlerContext
    ) {
        defer { if counted { router.directory.inFlight(false) } }
        guard context.channel.isActive else { return }
        if answer.drop {
            context.close(promise: nil)
            return
        }
        var headers = HTTPHeaders()
        if !answer.body.isEmpty { headers.add(name: "Content-Type", value: "application/json") }
        if answer.status != 204 { headers.add(name: "Content-Length", value: String(answer.body.count)) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: answer.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !answer.body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: answer.body.count)
            buffer.writeBytes(answer.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
