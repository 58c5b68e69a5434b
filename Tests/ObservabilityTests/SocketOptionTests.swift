import Foundation
import Logging
import NIOCore
import TestKit
import Testing

@testable import Observability

#if canImport(Glibc)
import Glibc
#endif

/// The options the endpoint sets on accepted sockets. TCP_NODELAY lives at the IPPROTO_TCP
/// level; asked for at the SOL_SOCKET level (`.socketOption(.tcp_nodelay)`) the same number 1
/// is SO_DEBUG, which needs CAP_NET_ADMIN. Root on a plain host has it, so the endpoint worked
/// there while every connection was reset under the shipped unit, in a container or as any
/// other user (docs/install.md). Root still sees the difference here: SO_DEBUG set.
@Suite struct SocketOptionTests {
    @Test func acceptedConnectionsHaveNoDelayAndNoSocketDebugging() async throws {
        let endpoint = HTTPEndpoint(
            host: "127.0.0.1", port: 0, metrics: SyncMetrics(services: ["ldap"], version: "test"),
            control: FakeSupervisorControl(), triggerToken: nil, logger: Logger(label: "test"))
        let port = try await endpoint.start()
        do {
            let client = try RawHTTPClient(port: port)
            let response = try await client.request("GET", "/healthz")
            #expect(response.status == 200)
            let channel = try #require(endpoint.connections.openChannels().first, "the keep-alive connection")
            let noDelay = try await channel.getOption(.tcpOption(.tcp_nodelay)).get()
            let debug = try await channel.getOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_DEBUG))).get()
            #expect(noDelay != 0, "TCP_NODELAY (IPPROTO_TCP) is set")
            #expect(debug == 0, "SO_DEBUG (SOL_SOCKET, needs CAP_NET_ADMIN) is not")
        } catch {
            await endpoint.stop()
            throw error
        }
        await endpoint.stop()
    }
}
