import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// One HTTP answer: status, content type, body and any extra headers.
struct HTTPResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: [UInt8]
    var headers: [(String, String)] = []

    static func text(_ status: HTTPResponseStatus, _ text: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8), headers: headers)
    }
}

/// What the router made of a request: an answer now, or work that asks the supervisor.
enum RoutedRequest: Sendable {
    case now(HTTPResponse)
    case later(@Sendable () async -> HTTPResponse)
}

/// Maps requests to answers. Pure apart from the calls into `SyncMetrics` and
/// `SupervisorControl`; `HTTPConnectionHandler` does the I/O.
struct HTTPRouter: Sendable {
    let metrics: SyncMetrics
    let control: any SupervisorControl
    /// The bearer token that allows `POST /trigger` from anywhere; nil: loopback only.
    let triggerToken: [UInt8]?
    let trustLoopback: Bool
    let controlTimeout: Duration
    let logger: Logger

    /// Routes one request. `remote` is the peer's address, `authorization` its
    /// `Authorization` header (never logged).
    func route(method: HTTPMethod, uri: String, remote: SocketAddress?, authorization: String?) -> RoutedRequest {
        let (path, query) = Self.split(uri)
        switch path {
        case "/metrics":
            guard method == .GET else { return .now(Self.methodNotAllowed("GET")) }
            return .now(HTTPResponse(status: .ok, contentType: SyncMetrics.contentType, body: metrics.render()))
        case "/healthz":
            guard method == .GET else { return .now(Self.methodNotAllowed("GET")) }
            return .now(control.isLoopAlive() ? .text(.ok, "ok\n") : .text(.serviceUnavailable, "supervisor loop stalled\n"))
        case "/status":
            guard method == .GET else { return .now(Self.methodNotAllowed("GET")) }
            let control = self.control
            return .later {
                let report = await control.status()
                guard let json = try? report.encodedJSON() else {
                    return .text(.internalServerError, "could not encode the status\n")
                }
                return HTTPResponse(status: .ok, contentType: "application/json", body: Array(json))
            }
        case "/":
            guard method == .GET else { return .now(Self.methodNotAllowed("GET")) }
            let control = self.control
            return .later {
                let report = await control.status()
                return HTTPResponse(
                    status: .ok, contentType: "text/html; charset=utf-8",
                    body: Array(StatusPage.html(report, now: Date()).utf8))
            }
        default:
            guard path.hasPrefix("/trigger/") else { return .now(.text(.notFound, "not found\n")) }
            guard method == .POST else { return .now(Self.methodNotAllowed("POST")) }
            let service = String(path.dropFirst("/trigger/".count))
            guard !service.isEmpty, !service.contains("/") else { return .now(.text(.notFound, "not found\n")) }
            guard isAllowedToTrigger(remote: remote, authorization: authorization) else {
                logger.warning("trigger refused", metadata: ["service": "\(service)", "remote": "\(remote?.description ?? "?")"])
                return .now(
                    .text(.forbidden, "forbidden: trigger from loopback or with the bearer token\n"))
            }
            let dryRun = Self.queryFlag(query, "dry_run")
            let control = self.control
            let logger = self.logger
            return .later {
                let result = await control.trigger(service: service, dryRun: dryRun)
                logger.info(
                    "trigger", metadata: ["service": "\(service)", "dry_run": "\(dryRun)", "result": "\(result)"])
                switch result {
                case .started: return .text(.accepted, "started \(service)\(dryRun ? " (dry run)" : "")\n")
                case .alreadyRunning: return .text(.conflict, "\(service) is already running\n")
                case .unknownService: return .text(.notFound, "no service \(service)\n")
                }
            }
        }
    }

    /// Loopback peers may trigger (unless `trustLoopback` is off); others need the token.
    func isAllowedToTrigger(remote: SocketAddress?, authorization: String?) -> Bool {
        if trustLoopback, let remote, Self.isLoopback(remote) { return true }
        guard let triggerToken, let authorization else { return false }
        let prefix = "Bearer "
        guard authorization.count > prefix.count,
            authorization.prefix(prefix.count).lowercased() == prefix.lowercased()
        else { return false }
        let offered = Array(authorization.utf8.dropFirst(prefix.utf8.count))
        return Self.constantTimeEqual(offered, triggerToken)
    }

    /// Compares without an early exit, so the time taken does not tell how much of a guess
    /// was right (it does tell the length, which is no secret worth keeping).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            difference |= x ^ y
        }
        return difference == 0
    }

    /// 127.0.0.0/8, ::1 and IPv4-mapped 127.x.
    static func isLoopback(_ address: SocketAddress) -> Bool {
        guard let ip = address.ipAddress else { return false }
        if address.protocol == .inet { return ip.hasPrefix("127.") }
        return ip == "::1" || ip.lowercased().hasPrefix("::ffff:127.")
    }

    static func split(_ uri: String) -> (path: String, query: Substring) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<mark]), uri[uri.index(after: mark)...])
    }

    /// `dry_run=1` / `dry_run=true` / bare `dry_run` in the query.
    static func queryFlag(_ query: Substring, _ name: String) -> Bool {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.first == Substring(name) else { continue }
            let value = parts.count > 1 ? parts[1].lowercased() : "1"
            return value == "1" || value == "true" || value == "yes"
        }
        return false
    }

    static func methodNotAllowed(_ allowed: String) -> HTTPResponse {
        .text(.methodNotAllowed, "method not allowed\n", headers: [("Allow", allowed)])
    }
}
