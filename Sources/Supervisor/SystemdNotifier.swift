import CProcessSpawn
import CSystemd
import Foundation

/// sd_notify through libsystemd: READY, STATUS, STOPPING, RELOADING, WATCHDOG. Without
/// `NOTIFY_SOCKET` (not under systemd) every call is a no-op.
///
/// The watchdog is pinged only by the supervisor loop itself (``Supervisor``), so a stuck loop
/// stops the pings and systemd restarts the service.
public struct SystemdNotifier: Sendable {
    /// Half of `WATCHDOG_USEC`, when systemd asked for keep-alives for this process.
    public let watchdogInterval: Duration?

    public init() {
        var usec: UInt64 = 0
        if sd_watchdog_enabled(0, &usec) > 0, usec > 0 {
            watchdogInterval = .microseconds(Int64(usec / 2))
        } else {
            watchdogInterval = nil
        }
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines). Errors are ignored: systemd being
    /// unreachable must not stop the supervisor.
    public func notify(_ state: String) {
        _ = state.withCString { sd_notify(0, $0) }
    }

    public func ready(status: String) { notify("READY=1\nSTATUS=\(Self.oneLine(status))") }
    public func status(_ text: String) { notify("STATUS=\(Self.oneLine(text))") }
    public func stopping(status: String) { notify("STOPPING=1\nSTATUS=\(Self.oneLine(status))") }
    public func reloading() { notify("RELOADING=1\nMONOTONIC_USEC=\(sudosos_monotonic_usec())") }
    public func watchdog() { notify("WATCHDOG=1") }

    static func oneLine(_ text: String) -> String {
        text.replacingOccurrences(of: "\n", with: " ")
    }
}
