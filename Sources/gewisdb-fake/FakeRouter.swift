import Foundation

/// What the server answers to one request.
struct FakeAnswer: Sendable {
    var status: Int
    var body: [UInt8]
    var delayMilliseconds: Int = 0
    /// Close the connection instead of answering.
    var drop = false

    static func json(_ status: Int, _ text: String, delay: Int = 0) -> FakeAnswer {
        FakeAnswer(status: status, body: Array(text.utf8), delayMilliseconds: delay)
    }
}

/// GEWISDB's API (`/api/health`, `/api/members/{lidnr}`; the `/api` prefix is optional) and the
/// fake's own `/_admin` paths. Answers use GEWISDB's envelopes (openapi.yaml of GEWIS/gewisdb).
struct FakeRouter: Sendable {
    let directory: FakeDirectory

    static let forbidden = #"{"status":"forbidden","error":{"type":"User\\Model\\Exception\\NotAllowed","exception":"Permission `%@` is needed but is not currently held."}}"#
    static let serverError = #"{"status":"error","error":{"type":"error-exception","exception":"An example exception was thrown."}}"#
    static let notFound = #"{"status":"notfound","error":{"type":"error-router-no-match","exception":null}}"#

    func answer(method: String, uri: String, authorization: String?) -> FakeAnswer {
        directory.countRequest()
        let parts = uri.split(separator: "?", maxSplits: 1)
        var path = String(parts.first ?? "")
        let query = parts.count > 1 ? String(parts[1]) : ""
        if path.hasPrefix("/_admin/") { return admin(method: method, path: path, query: query) }
        if path == "/api" || path.hasPrefix("/api/") { path.removeFirst(4) }
        if path.isEmpty { path = "/" }
        let latency = directory.latencyMilliseconds

        guard method == "GET" else { return .json(404, Self.notFound, delay: latency) }
        if path == "/" || path == "/health" {
            guard authorized(authorization) else { return forbidden("HealthR", latency) }
            let health = directory.health
            let paused = health.syncPaused.map { #","sync_paused":\#($0)"# } ?? ""
            return .json(200, #"{"status":"success","healthy":\#(health.healthy)\#(paused)}"#, delay: latency)
        }
        if path.hasPrefix("/members/"), let lidnr = Int(path.dropFirst("/members/".count)), lidnr >= 0 {
            guard authorized(authorization) else { return forbidden("MembersR", latency) }
            let (member, fault) = directory.member(lidnr)
            guard let member else { return FakeAnswer(status: 204, body: [], delayMilliseconds: latency) }
            switch fault {
            case .error, .flaky: return .json(500, Self.serverError, delay: latency)
            case .garbage: return .json(200, "<html><body>Service temporarily overloaded</body></html>", delay: latency)
            case .misshapen:
                return .json(200, #"{"status":"success","data":[{"lidnr":\#(lidnr),"given_name":42,"family_name":["x"]}]}"#, delay: latency)
            case .slow: return FakeAnswer(status: 200, body: member.body, delayMilliseconds: directory.slowMilliseconds)
            case .drop: return FakeAnswer(status: 0, body: [], delayMilliseconds: latency, drop: true)
            case nil: return FakeAnswer(status: 200, body: member.body, delayMilliseconds: latency)
            }
        }
        return .json(404, Self.notFound, delay: latency)
    }

    private func forbidden(_ permission: String, _ latency: Int) -> FakeAnswer {
        .json(403, Self.forbidden.replacingOccurrences(of: "%@", with: permission), delay: latency)
    }

    /// Bearer key, or the basic credentials when configured; no key configured: anyone.
    private func authorized(_ header: String?) -> Bool {
        let options = directory.options
        if options.apiKey == nil && options.basic == nil { return true }
        guard let header else { return false }
        if let key = options.apiKey, header == "Bearer \(key)" { return true }
        if let basic = options.basic, header == "Basic \(Data(basic.utf8).base64EncodedString())" { return true }
        return false
    }

    private func admin(method: String, path: String, query: String) -> FakeAnswer {
        switch (method, path) {
        case ("GET", "/_admin/stats"):
            return FakeAnswer(status: 200, body: directory.statsJSON())
        case ("POST", "/_admin/reload"):
            do {
                try directory.reload()
                return .json(200, #"{"status":"success"}"#)
            } catch {
                return .json(500, #"{"status":"error"}"#)
            }
        case ("POST", "/_admin/set"):
            let pairs = query.split(separator: "&").map { pair -> (String, String) in
                let kv = pair.split(separator: "=", maxSplits: 1)
                return (String(kv.first ?? ""), kv.count > 1 ? String(kv[1]) : "")
            }
            if let problem = directory.set(pairs) { return .json(400, #"{"status":"error","message":"\#(problem)"}"#) }
            return .json(200, #"{"status":"success"}"#)
        default:
            return .json(404, Self.notFound)
        }
    }
}
