import SyncEngine

/// `sudosos-sync(8)`: swift-argument-parser's `generate-manual` writes the commands and their
/// options from the parser itself; this adds what the parser does not know: the exit codes
/// (from `SyncEngine.ExitCode`), signals, environment, files and related pages.
public enum CommandPage {
    public struct Unexpected: Error, CustomStringConvertible {
        public var description: String
    }

    /// `generated` is `generate-manual --section 8` output for the `sudosos-sync` binary.
    public static func complete(generated: String, version: String) throws -> String {
        var lines = generated.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while lines.last == "" { lines.removeLast() }
        guard let os = lines.firstIndex(of: ".Os") else { throw Unexpected(description: "generate-manual's page has no .Os line") }
        lines[os] = ".Os sudosos-sync \(version)"
        guard let exit = lines.firstIndex(of: #".Sh "EXIT STATUS""#) else {
            throw Unexpected(description: "generate-manual's page has no EXIT STATUS section")
        }
        let end = lines[(exit + 1)...].firstIndex { $0.hasPrefix(".Sh ") } ?? lines.endIndex
        let tail = Array(lines[end...])
        lines.replaceSubrange(exit..., with: sections + tail)
        return lines.joined(separator: "\n") + "\n"
    }

    /// What each exit code means; a new `ExitCode` case does not compile without a text here.
    static func meaning(of code: ExitCode) -> String {
        switch code {
        case .success: "Success, including a dry run and a run with no changes."
        case .failure: "The run failed (anything not listed below); the supervisor retries it with backoff."
        case .usage: "Usage error: unknown command, service or option, or a missing argument."
        case .refused: "A safety check refused the run (the deletion threshold): nothing was written; a human must look."
        case .unavailable: "A source or the database cannot be reached, or refuses the credentials."
        case .temporary: "Temporary: the source is not ready (GEWISDB sync_paused), or another instance holds the service's lock."
        case .configuration: "Configuration error, named in one line; the unit does not restart on it."
        }
    }

    static var sections: [String] {
        var out = [
            ".Sh SIGNALS",
            MDoc.text("These apply to sudosos-sync run, the supervisor:"),
            ".Bl -tag -width Ds",
            ".It Dv SIGTERM , SIGINT",
            MDoc.text("Stop scheduling, send SIGTERM to every running run's process group (an open database transaction is rolled back), wait up to supervisor.shutdown_timeout, kill what is left, then exit 0. A second signal kills the runs at once."),
            ".It Dv SIGHUP",
            MDoc.text("Read the configuration again (systemctl reload sudosos-sync). Running runs finish under the configuration they started with; a bad new configuration is logged and the old one kept; metrics.listen needs a restart."),
            ".El",
            ".Sh ENVIRONMENT",
            ".Bl -tag -width Ds",
            ".It Ev SUDOSOS_SYNC_CONFIG",
            MDoc.text("The configuration file, when --config is not given."),
            ".It Ev SUDOSOS_SYNC_LOG_LEVEL",
            MDoc.text("trace, debug, info, notice, warning, error or critical, when --log-level is not given (default info)."),
            ".It Ev SUDOSOS_SYNC_* , LDAP_* , GEWISDB_* , TYPEORM_*",
            MDoc.text("Configuration keys; see sudosos-sync.yaml(5)."),
            ".It Ev CREDENTIALS_DIRECTORY",
            MDoc.text("Secrets from systemd's LoadCredential=, one file per name (TYPEORM_PASSWORD, LDAP_BIND_PW, GEWISDB_API_KEY, ...)."),
            ".It Ev NOTIFY_SOCKET , WATCHDOG_USEC",
            MDoc.text("Set by systemd: the supervisor reports READY, STATUS, RELOADING, STOPPING and watchdog keep-alives."),
            ".It Ev JOURNAL_STREAM",
            MDoc.text("Set by systemd: log lines carry the journal's priority prefix."),
            ".El",
            ".Sh FILES",
            ".Bl -tag -width Ds",
            ".It Pa /etc/sudosos-sync/config.yaml",
            MDoc.text("The configuration (no secrets), see sudosos-sync.yaml(5)."),
            ".It Pa /etc/credstore/",
            MDoc.text("Credential files the unit loads (LoadCredential=NAME): TYPEORM_PASSWORD, LDAP_BIND_PW, GEWISDB_API_KEY, root only (0700)."),
            ".It Pa /lib/systemd/system/sudosos-sync.service",
            MDoc.text("The unit: Type=notify, watchdog, credentials, a dynamic user."),
            ".It Pa /usr/share/sudosos-sync/",
            MDoc.text("Prometheus alert rules and the Grafana dashboard."),
            ".El",
            ".Sh EXIT STATUS",
            ".Bl -tag -width Ds",
        ]
        for code in ExitCode.allCases {
            out.append(".It \(code.rawValue)")
            out.append(MDoc.text(meaning(of: code)))
        }
        out += [
            ".El",
            ".Sh EXAMPLES",
            ".Bd -literal -offset indent",
            "sudosos-sync check-config --connect",
            "sudosos-sync once ldap --dry-run",
            "systemctl enable --now sudosos-sync",
            "sudosos-sync status",
            "sudosos-sync trigger gewisdb",
            ".Ed",
            ".Sh SEE ALSO",
            ".Xr sudosos-sync.yaml 5 ,",
            ".Xr systemctl 1 ,",
            ".Xr systemd.exec 5",
        ]
        return out
    }

    /// `yyyy-mm-dd` as mdoc's `.Dd` wants it: `December 3, 2026`.
    public static func mdocDate(_ date: String) -> String {
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                      "November", "December"]
        let parts = date.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3, (1...12).contains(parts[1]) else { return date }
        return "\(months[parts[1] - 1]) \(parts[2]), \(parts[0])"
    }
}
