import ArgumentParser

@main


struct SudoSOSSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sudosos-sync",
        abstract: "Keeps SudoSOS users in step with GEWISDB and LDAP / Active Directory.",
        subcommands: [RunCommand.self, StatusCommand.self, TriggerCommand.self, WorkerCommand.self]
    )
}
