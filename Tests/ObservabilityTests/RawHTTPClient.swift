import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP client on plain sockets, so tests can send exactly the bytes they want (garbage,
/// half a request, oversized headers) and see exactly what the server does (answer, close).
///
/// Its reads block, so the async methods run them on a thread of their own: blocking a thread
/// of Swift's small cooperative pool could starve the very server (or supervisor) under test.
final class RawHTTPClient: @unchecked Sendable {
    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    /// A parsed answer.
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String
        var raw: String

        func header(_ name: String) -> String? { headers[name.lowercased()] }
    }

    private let fd: Int32
    private var pending = [UInt8]()

    /// Connects to 127.0.0.1:`port`; every read gives up after `timeout`.
    /// `receiveBuffer` shrinks the socket's receive buffer (set before connecting, so the
    /// window stays small): a client that reads slowly, or not at all.
    init(port: Int, host: String = "127.0.0.1", timeout: Duration = .seconds(5), receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failed(description: "socket: errno \(errno)") }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        let micros = timeout.components.seconds * 1_000_000 + timeout.components.attoseconds / 1_000_000_000_000
        var tv = timeval(tv_sec: Int(micros / 1_000_000), tv_usec: Int(micros % 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw Failed(description: "connect to \(host):\(port): errno \(code)")
        }
    }

    deinit { Glibc.close(fd) }

    /// Sends bytes; false once the peer has closed (EPIPE / ECONNRESET).
    @discardableResult
    func send(_ text: String) -> Bool {
        send(Array(text.utf8))
    }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    /// Reads one answer (head and a `Content-Length` body); throws if the peer closes first
    /// or nothing arrives in time.
    func readResponse() async throws -> Response {
        try await offPool { try self.readResponseBlocking() }
    }

    private func readResponseBlocking() throws -> Response {
        while true {
            if let response = try parse() { return response }
            guard try fill() else {
                throw Failed(description: "connection closed after \(pending.count) bytes: \(String(decoding: pending, as: UTF8.self))")
            }
        }
    }

    /// Sends a request and reads its answer.
    func request(_ method: String, _ path: String, headers: [String: String] = [:]) async throws -> Response {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if method == "POST" { text += "Content-Length: 0\r\n" }
        text += "\r\n"
        send(text)
        return try await readResponse()
    }

    /// True once the peer has closed the connection (reads return EOF or reset) within the
    /// read timeout; whatever arrived before is kept for `readResponse()`.
    func waitForClose() async -> Bool {
        (try? await offPool { self.waitForCloseBlocking() }) ?? false
    }

    private func waitForCloseBlocking() -> Bool {
        while true {
            do {
                if try !fill() { return true }
            } catch {
                return false
            }
        }
    }

    /// Runs `body` on a new thread and waits for it without holding a cooperative thread.
    private func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    /// Reads more bytes; false on EOF or reset, throws on timeout.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            pending.append(contentsOf: chunk[0..<n])
            return true
        }
        if n == 0 { return false }
        let code = errno
        if code == ECONNRESET { return false }
        throw Failed(description: "read timed out or failed (errno \(code))")
    }

    private func parse() throws -> Response? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = pending.firstRange(of: separator) else { return nil }
        let head = String(decoding: pending[..<end.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw Failed(description: "bad status line in \(head)")
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        guard pending.count >= end.upperBound + length else { return nil }
        let body = String(decoding: pending[end.upperBound..<(end.upperBound + length)], as: UTF8.self)
        let raw = String(decoding: pending[..<(end.upperBound + length)], as: UTF8.self)
        pending.removeFirst(end.upperBound + length)
        return Response(status: status, headers: headers, body: body, raw: raw)
    }
}
