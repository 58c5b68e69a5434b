import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SyncEngine

/// What one `GET /members/{lidnr}` ended with, after retries.
public enum MemberAnswer: Sendable, Hashable {
    /// HTTP 200 with a member.
    case found(GEWISDBMember)
    /// HTTP 204: GEWISDB does not know the member (or hides a deleted one).
    case notFound
    /// HTTP 200 with a body that is not a member (not JSON, or the wrong shape), on every
    /// attempt: a failed request, counted toward `max_failed_ratio` as a 5xx is.
    case unparsable(String)
    /// Connection error, timeout, 5xx or an unexpected status, after the last attempt.
    case failed(String)
}

/// GEWISDB's HTTP API over FoundationNetworking's URLSession (libcurl underneath: TLS,
/// kept-alive connections, at most `concurrency` per host). Why this client and not
/// async-http-client: docs/gewisdb.md.
///
/// Every attempt is reported through `RunReporter.sourceRequest`. Connection errors, timeouts
/// and 5xx are retried up to `maxAttempts` with jittered exponential backoff; 401 / 403 end
/// the run (`SyncError.unavailable`, naming the missing permission).
public final class GEWISDBClient: Sendable {
    /// `api_url` without a trailing slash, e.g. `https://database.gewis.nl/api`.
    public let baseURL: String
    private let session: URLSession
    /// The Authorization header value. Never logged.
    private let authorization: String?
    private let maxAttempts: Int
    /// The per-request deadline, exact.
    private let timeout: TimeInterval
    /// URLSession's own timeout: `timeout` rounded up to whole seconds plus one, a backstop only.
    private var sessionTimeout: TimeInterval { timeout.rounded(.up) + 1 }
    private let backoffBase: Duration
    private let backoffCap: Duration
    /// The run's deadline: requests are cut to end by it, and not retried past it.
    let deadline: RunDeadline?

    /// Throws `SyncError.configuration` for an unusable `api_url`.
    public init(
        settings: GEWISDBSettings, backoffBase: Duration = .milliseconds(200), backoffCap: Duration = .seconds(5),
        deadline: RunDeadline? = nil
    ) throws(SyncError) {
        var base = settings.apiURL.trimmingCharacters(in: .whitespaces)
        while base.hasSuffix("/") { base.removeLast() }
        guard let url = URL(string: base), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
            url.host != nil
        else {
            throw SyncError.configuration("services.gewisdb.api_url: not an http(s) URL")
        }
        guard settings.concurrency >= 1 else { throw SyncError.configuration("services.gewisdb.concurrency: must be at least 1") }
        baseURL = base
        if let key = settings.apiKey, !key.isEmpty {
            authorization = "Bearer \(key)"
        } else if let user = settings.basicUser, let password = settings.basicPassword {
            authorization = "Basic \(Data("\(user):\(password)".utf8).base64EncodedString())"
        } else {
            authorization = nil
        }
        maxAttempts = max(1, settings.maxAttempts)
        timeout = Double(settings.requestTimeout.components.seconds)
            + Double(settings.requestTimeout.components.attoseconds) / 1e18
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.deadline = deadline

        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = settings.concurrency
        let backstop = timeout.rounded(.up) + 1
        configuration.timeoutIntervalForRequest = backstop
        configuration.timeoutIntervalForResource = backstop * Double(maxAttempts) + 30
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        session = URLSession(configuration: configuration)
    }

    deinit {
        session.invalidateAndCancel()
    }

    /// `GET /health`: returns when GEWISDB is healthy and not paused.
    /// Throws `.notReady` (paused, unhealthy, 5xx), `.unavailable` (unreachable, 401/403, not
    /// GEWISDB's answer).
    public func checkHealth(reporter: any RunReporter) async throws(SyncError) {
        let result = await get("/health", reporter: reporter)
        switch result {
        case .transport(let problem):
            throw SyncError.unavailable("GEWISDB cannot be reached at \(baseURL)/health: \(problem)")
        case .response(let status, let body):
            switch status {
            case 200:
                guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
                    throw SyncError.unavailable("GEWISDB \(baseURL)/health answered something that is not JSON: is api_url right?")
                }
                guard let healthy = object["healthy"] as? Bool else {
                    throw SyncError.unavailable("GEWISDB \(baseURL)/health answered without `healthy`: is api_url right?")
                }
                guard healthy else { throw SyncError.notReady("GEWISDB reports itself unhealthy: not syncing now") }
                // As the original: ready only on an explicit `sync_paused: false`.
                guard let paused = object["sync_paused"] as? Bool else {
                    throw SyncError.notReady(
                        "GEWISDB \(baseURL)/health answered without `sync_paused`: not ready, not syncing now "
                            + "(SudoSOS syncs only when GEWISDB says sync_paused: false)")
                }
                if paused {
                    throw SyncError.notReady("GEWISDB asks clients to pause synchronisation (sync_paused): not syncing now")
                }
            case 401, 403:
                throw Self.permissionProblem(status: status, body: body, path: "/health", permission: "HealthR")
            case 500...599:
                throw SyncError.notReady("GEWISDB \(baseURL)/health answered HTTP \(status): not syncing now")
            default:
                throw SyncError.unavailable("GEWISDB \(baseURL)/health answered HTTP \(status): is api_url right?")
            }
        }
    }

    /// `GET /members/{lidnr}`. Throws only when GEWISDB refuses the key (401/403) or the task
    /// is cancelled; every other problem is an answer.
    public func member(_ lidnr: Int, reporter: any RunReporter) async throws(SyncError) -> MemberAnswer {
        // A 200 whose body is not a member is a failed attempt, retried as a 5xx is.
        let result = await get("/members/\(lidnr)", reporter: reporter) { body in
            do throws(GEWISDBMember.Unparsable) {
                _ = try GEWISDBMember.parse(body, expected: lidnr)
                return nil
            } catch {
                return error.detail
            }
        }
        switch result {
        case .transport(let problem):
            return .failed(problem)
        case .response(let status, let body):
            switch status {
            case 200:
                do throws(GEWISDBMember.Unparsable) {
                    return .found(try GEWISDBMember.parse(body, expected: lidnr))
                } catch {
                    return .unparsable("HTTP 200 with an answer that is not a member: \(error.detail)")
                }
            case 204:
                return .notFound
            case 401, 403:
                throw Self.permissionProblem(status: status, body: body, path: "/members/{lidnr}", permission: "MembersR")
            default:
                return .failed("HTTP \(status)")
            }
        }
    }

    /// The outcome of one request after its retries.
    enum Result: Sendable {
        case response(Int, Data)
        case transport(String)
    }

    /// `problem`: for a 200 answer, what is wrong with its body (nil: usable); a 200 with a
    /// problem counts as a failed attempt.
    func get(
        _ path: String, reporter: any RunReporter, problem: (Data) -> String? = { _ in nil }
    ) async -> Result {
        guard let url = URL(string: baseURL + path) else { return .transport("bad URL \(baseURL + path)") }
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: sessionTimeout)
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        if let authorization { request.setValue(authorization, forHTTPHeaderField: "Authorization") }
        let clock = ContinuousClock()
        var attempt = 1
        while true {
            let started = clock.now
            let result: Result
            let limit = deadline.map { $0.limit(.seconds(timeout)) } ?? .seconds(timeout)
            guard limit > .zero else {
                return .transport("not sent: services.gewisdb.timeout (\(RunDeadline.describe(deadline!.timeout))) has run out")
            }
            do {
                let (body, status) = try await send(request, timeout: Self.seconds(limit))
                result = .response(status, body)
            } catch {
                // Tenths of a second: the limit is cut to the deadline at any instant.
                var text = Self.describe(error, timeout: (Self.seconds(limit) * 10).rounded() / 10)
                if let deadline, (error as? URLError)?.code == .timedOut, limit < .seconds(timeout) {
                    text += ", all that services.gewisdb.timeout (\(RunDeadline.describe(deadline.timeout))) left for it"
                }
                result = .transport(text)
            }
            let seconds = Self.seconds(clock.now - started)
            let retry: Bool
            switch result {
            case .response(let status, let body):
                let bad = status == 200 && problem(body) != nil
                reporter.sourceRequest(ok: (status == 200 && !bad) || status == 204, seconds: seconds)
                retry = status >= 500 || bad
            case .transport:
                reporter.sourceRequest(ok: false, seconds: seconds)
                retry = true
            }
            if !retry || attempt >= maxAttempts || Task.isCancelled { return result }
            let pause = backoff(attempt: attempt)
            // No retry that could not finish before the run's deadline.
            if let deadline, deadline.remaining <= pause { return result }
            do {
                try await Task.sleep(for: pause)
            } catch {
                return result
            }
            attempt += 1
        }
    }

    /// One request through a data task, ended by our own deadline of `timeout`.
    ///
    /// Deliberately not `session.data(for:)`: on Linux, cancelling the Swift task that awaits it
    /// could leave it waiting forever (seen with swift-corelibs-foundation), so a cancelled run
    /// lets its in-flight requests finish (each bounded by the deadline) and only stops starting
    /// new ones and retrying. And not URLSession's own timeout alone: swift-corelibs-foundation
    /// counts it in whole seconds, so a sub-second timeout fires at once (seen here); URLSession
    /// gets the timeout rounded up, and the exact deadline cancels the data task.
    private func send(_ request: URLRequest, timeout: TimeInterval) async throws -> (Data, Int) {
        let deadline = Deadline()
        return try await withCheckedThrowingContinuation { continuation in
            let task = session.dataTask(with: request) { body, response, error in
                deadline.disarm()
                if let error {
                    let timedOut = deadline.fired && (error as? URLError)?.code == .cancelled
                    continuation.resume(throwing: timedOut ? URLError(.timedOut) : error)
                } else {
                    continuation.resume(returning: (body ?? Data(), (response as? HTTPURLResponse)?.statusCode ?? 0))
                }
            }
            deadline.arm(after: timeout) { task.cancel() }
            task.resume()
        }
    }

    /// Exponential backoff with jitter: base × 2^(attempt-1), capped, times a random 0.5...1.
    func backoff(attempt: Int) -> Duration {
        let exponential = backoffBase * (1 << min(attempt - 1, 20))
        let capped = min(exponential, backoffCap)
        return capped * Double.random(in: 0.5...1.0)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func describe(_ error: any Error, timeout: TimeInterval) -> String {
        guard let urlError = error as? URLError else { return "request failed: \(error)" }
        switch urlError.code {
        case .timedOut: return "no answer within \(timeout)s"
        case .cannotConnectToHost: return "connection refused"
        case .cannotFindHost, .dnsLookupFailed: return "host not found"
        case .networkConnectionLost: return "connection lost"
        case .notConnectedToInternet: return "network unreachable"
        case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
            .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot:
            return "TLS failed (\(urlError.code.rawValue))"
        case .cancelled: return "cancelled"
        default: return "request failed (URLError \(urlError.code.rawValue))"
        }
    }

    /// 401 / 403: GEWISDB's envelope `{"status":"forbidden","error":{"type":...,"exception":"Permission
    /// `X` is needed but is not currently held."}}` names the permission; quote it.
    static func permissionProblem(status: Int, body: Data, path: String, permission: String) -> SyncError {
        var said = ""
        if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
            let error = object["error"] as? [String: Any],
            let text = (error["exception"] as? String) ?? (error["message"] as? String)
        {
            said = " (GEWISDB: \(text.prefix(160)))"
        }
        return SyncError.unavailable(
            "GEWISDB refused the API key with HTTP \(status) on \(path): the key needs the \(permission) permission\(said)")
    }
}

/// A one-shot timer that cancels a data task when a request runs past its deadline; `fired`
/// tells the completion handler that a cancellation was the deadline's.
private final class Deadline: @unchecked Sendable {
    private let lock = NSLock()
    private var item: DispatchWorkItem?
    private var didFire = false

    var fired: Bool { lock.withLock { didFire } }

    func arm(after seconds: TimeInterval, _ action: @escaping @Sendable () -> Void) {
        let item = DispatchWorkItem { [weak self] in
            guard let self else { return }
            let armed = self.lock.withLock { () -> Bool in
                guard self.item != nil else { return false }
                self.didFire = true
                return true
            }
            if armed { action() }
        }
        lock.withLock { self.item = item }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: item)
    }

    func disarm() {
        let item = lock.withLock { () -> DispatchWorkItem? in
            defer { self.item = nil }
            return self.item
        }
        item?.cancel()
    }
}
