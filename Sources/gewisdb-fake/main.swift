// gewisdb-fake: a GEWISDB API server for tests, benchmarks and the local demo.
// See docs/gewisdb.md for the fixture format, the faults it can inject and its /_admin paths.
import Dispatch
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

let options: FakeOptions
do {
    options = try FakeOptions.parse(Array(CommandLine.arguments.dropFirst()))
} catch let error as UsageError {
    if let message = error.message { FileHandle.standardError.write(Data("gewisdb-fake: \(message)\n".utf8)) }
    FileHandle.standardError.write(Data((FakeOptions.usage + "\n").utf8))
    exit(error.message == nil ? 0 : 64)
}

let directory: FakeDirectory
do {
    directory = try FakeDirectory(options: options)
} catch {
    FileHandle.standardError.write(Data("gewisdb-fake: cannot load members: \(error)\n".utf8))
    exit(66)
}

let router = FakeRouter(directory: directory)
let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, System.coreCount))
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)  // IPPROTO_TCP; .socketOption would be SO_DEBUG
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            try channel.pipeline.syncOperations.addHandler(FakeHTTPHandler(router: router))
        }
    }

let channel: any Channel
do {
    channel = try await bootstrap.bind(host: options.host, port: options.port).get()
} catch {
    FileHandle.standardError.write(Data("gewisdb-fake: cannot listen on \(options.host):\(options.port): \(error)\n".utf8))
    exit(69)
}
let port = channel.localAddress?.port ?? options.port
if let file = options.portFile {
    // Written to a temporary name and renamed, so a reader never sees a half-written file.
    let temporary = file + ".tmp"
    try? "\(port)\n".write(toFile: temporary, atomically: false, encoding: .utf8)
    _ = rename(temporary, file)
}
FileHandle.standardOutput.write(Data("listening on \(options.host):\(port)\n".utf8))

// SIGHUP re-reads the fixture; SIGTERM / SIGINT stop the server.
let signalSources = installSignalHandlers(directory: directory, channel: channel)

try await channel.closeFuture.get()
try await group.shutdownGracefully()
withExtendedLifetime(signalSources) {}

/// Dispatch sources for the signals (kept alive by the caller). Not main-actor isolated: the
/// handlers run on a dispatch queue.
nonisolated func installSignalHandlers(directory: FakeDirectory, channel: any Channel) -> [any DispatchSourceSignal] {
    let queue = DispatchQueue(label: "gewisdb-fake.signals")
    var sources: [any DispatchSourceSignal] = []
    for number in [SIGHUP, SIGTERM, SIGINT] {
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
        source.setEventHandler { @Sendable in
            guard number == SIGHUP else {
                channel.close(promise: nil)
                return
            }
            do {
                try directory.reload()
                FileHandle.standardError.write(Data("gewisdb-fake: reloaded\n".utf8))
            } catch {
                FileHandle.standardError.write(Data("gewisdb-fake: reload failed: \(error)\n".utf8))
            }
        }
        source.resume()
        sources.append(source)
    }
    return sources
}
