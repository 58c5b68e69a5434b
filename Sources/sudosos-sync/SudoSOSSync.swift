import ArgumentParser
import BuildInfo

/// `sudosos-sync`: the one executable. Each subcommand lives in its own file; exit codes are
/// sysexits (docs/operations.md): 0 ok, 1 failed, 64 usage, 65 refused, 69 unavailable,
/// 75 not ready / locked, 78 configuration.
@main
struct SudoSOSSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sudosos-sync",
        abstract: "Keeps SudoSOS users in step with GEWISDB and LDAP / Active Directory.",
        discussion: "Exit codes: 0 success, 1 run failed, 64 usage, 65 refused by a safety check, 69 unreachable, 75 not ready or locked, 78 configuration error.",
        version: BuildInfo.current.versionLine,
        subcommands: [
            OnceCommand.self, CheckConfigCommand.self, RunCommand.self, StatusCommand.self, TriggerCommand.self,
            WorkerCommand.self,
        ]
    )
}
