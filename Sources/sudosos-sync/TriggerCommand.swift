import ArgumentParser
import Foundation

/// `sudosos-sync trigger SERVICE [--dry-run] [--url URL]`: asks a running supervisor to start
/// a run now. Exit 0 when started, 75 when a run of SERVICE is already going, 64 for an
/// unknown service, 69 when the supervisor cannot be reached.
struct TriggerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trigger",
        abstract: "Ask a running supervisor to start a run of SERVICE now."
    )

    @Argument(help: "The service to run (ldap, gewisdb).", completion: .list(Services.names))
    var service: String

    @Flag(name: .long, help: "Compute and report the changes without writing them.")
    var dryRun = false

    @Option(name: .long, help: "The supervisor's endpoint (default: http://<metrics.listen>).")
    var url: String?

    @Option(name: .long, help: "Configuration file, for metrics.listen.", completion: .configurationFile)
    var config: String?

    func run() async throws {
        do {
            let client = try SupervisorClient.resolve(url: url, config: config)
            var path = "trigger/\(service)"
            if dryRun { path += "?dry_run=1" }
            let (status, body) = try await client.requestRaw("POST", path)
            switch status {
            case 202:
                print("\(service): run started\(dryRun ? " (dry run)" : "")")
            case 409:
                throw ClientFailure(code: .temporary, message: "\(service): a run is already going")
            case 404:
                throw ClientFailure(code: .usage, message: "\(service): no such service in the supervisor's configuration")
            case 401, 403:
                throw ClientFailure(code: .failure, message: "the supervisor refused the trigger (\(status)): not from loopback and no valid token")
            default:
                let text = String(decoding: body.prefix(200), as: UTF8.self)
                throw ClientFailure(code: .failure, message: "POST /\(path) answered \(status): \(text)")
            }
        } catch let failure as ClientFailure {
            throw failure.exit()
        }
    }
}
