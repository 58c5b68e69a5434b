import ArgumentParser
import Foundation
import Observability
import Supervisor
import SyncEngine

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A small HTTP client for a running supervisor's endpoint (`status`, `trigger`).
struct SupervisorClient {
    var base: URL

    /// `--url`, else `http://` + `metrics.listen` from the configuration, else the default
    /// `127.0.0.1:9713`.
    static func resolve(url: String?, config: String?) throws -> SupervisorClient {
        if let url {
            guard let parsed = URL(string: url), parsed.scheme == "http" || parsed.scheme == "https" else {
                throw ClientFailure(code: .usage, message: "--url: '\(url)' is not an http:// URL")
            }
            return SupervisorClient(base: parsed)
        }
        var listen = MetricsSettings()
        if let loaded = try? ProductionConfigurationSource(path: config).load() { listen = loaded.metrics }
        let host = listen.listenHost.contains(":") ? "[\(listen.listenHost)]" : listen.listenHost
        return SupervisorClient(base: URL(string: "http://\(host):\(listen.listenPort)")!)
    }

    func request(_ method: String, _ path: String) async throws -> (Int, Data) {
        try await requestRaw(method, path)
    }

    /// `path` may carry a query (`trigger/ldap?dry_run=1`).
    func requestRaw(_ method: String, _ path: String) async throws -> (Int, Data) {
        let text = base.absoluteString.hasSuffix("/") ? base.absoluteString + path : base.absoluteString + "/" + path
        guard let url = URL(string: text) else { throw ClientFailure(code: .usage, message: "bad URL \(text)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = 10
        do {
            let (data, response) = try await URLSession.shared.data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
        } catch {
            throw ClientFailure(
                code: .unavailable, message: "cannot reach the supervisor at \(base.absoluteString): \(error.localizedDescription)")
        }
    }

    /// Decodes `/status` (the endpoint's own JSON coding).
    static func decodeStatus(_ data: Data) throws -> StatusReport {
        do {
            return try StatusReport.decodeJSON(data)
        } catch {
            throw ClientFailure(code: .failure, message: "the supervisor's /status answer is not readable: \(error)")
        }
    }
}

/// A command's failure: one line on stderr and its exit code.
struct ClientFailure: Error, CustomStringConvertible {
    var code: SyncEngine.ExitCode
    var message: String
    var description: String { message }

    func exit() -> ArgumentParser.ExitCode {
        FileHandle.standardError.write(Data("sudosos-sync: \(message)\n".utf8))
        return ArgumentParser.ExitCode(code.rawValue)
    }
}
