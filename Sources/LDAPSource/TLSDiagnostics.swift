import CLDAP
import Foundation

/// Why a TLS handshake failed, as libldap itself says it.
///
/// With GnuTLS (Debian's libldap), a failed certificate check leaves only "(unknown error code)"
/// in `LDAP_OPT_DIAGNOSTIC_MESSAGE` and `Can't contact LDAP server [-1]` as the result: the
/// reason (GnuTLS's verification status, the expiry, the name that did not match) is written
/// only to libldap's debug log. So while a connection is set up, the debug log is switched on
/// and its `TLS:` lines are kept, per thread (the connect runs on its client's own queue
/// thread); nothing of it is ever printed. Only `TLS:` lines are kept: no DN, no password.
enum TLSDiagnostics {
    private struct State {
        var installed = false
        var capturing: [pthread_t: [String]] = [:]
    }

    private static let state = Mutex(State())
    /// LDAP_DEBUG_TRACE (ldap_log.h, not a public header): GnuTLS's status is logged at it.
    private static let traceLevel: Int32 = 0x0001

    /// libldap's log function: keeps `TLS:` lines of capturing threads, drops everything else.
    private static let printFunction: @convention(c) (UnsafePointer<CChar>?) -> Void = { buffer in
        guard let buffer else { return }
        let line = String(cString: buffer).trimmingCharacters(in: .whitespacesAndNewlines)
        guard line.hasPrefix("TLS:") else { return }
        let me = pthread_self()
        TLSDiagnostics.state.withLock { state in
            if state.capturing[me] != nil { state.capturing[me]!.append(String(line.prefix(300))) }
        }
    }

    /// Runs `body` with libldap's TLS diagnostics captured; returns its result and the lines.
    static func capture<T>(_ body: () -> T) -> (T, [String]) {
        let me = pthread_self()
        state.withLock { state in
            if !state.installed {
                // The function itself is the option's value (liblber stores the pointer).
                _ = ber_set_option(nil, LBER_OPT_LOG_PRINT_FN, unsafeBitCast(printFunction, to: UnsafeRawPointer.self))
                state.installed = true
            }
            state.capturing[me] = []
            setDebugLevel(traceLevel)
        }
        let result = body()
        let lines = state.withLock { state -> [String] in
            let lines = state.capturing.removeValue(forKey: me) ?? []
            if state.capturing.isEmpty { setDebugLevel(0) }
            return lines
        }
        return (result, lines)
    }

    private static func setDebugLevel(_ level: Int32) {
        var value = level
        _ = ldap_set_option(nil, LDAP_OPT_DEBUG_LEVEL, &value)
    }

    /// One sentence for the operator from the captured lines, or nil when they say nothing
    /// about the certificate. `caFile`: the configured CA file (nil: the system's CAs).
    static func explain(_ lines: [String], caFile: String?) -> String? {
        let trusted = caFile.map { "the CA of services.ldap.ca_file (\($0))" } ?? "the system's CAs (services.ldap.ca_file is not set)"
        var reasons: [String] = []
        for line in lines {
            if let status = status(in: line) {
                reasons += describe(status: status, trusted: trusted)
            } else if line.contains("does not match") {
                // "TLS: hostname (h) does not match common name in certificate (n)."
                reasons.append("does not name the host of server_url (\(clean(line)))")
            } else if line.contains("expired") {
                reasons.append("has expired (\(clean(line)))")
            } else if line.contains("not yet active") {
                reasons.append("is not valid yet (\(clean(line)))")
            }
        }
        guard !reasons.isEmpty else { return nil }
        var seen: Set<String> = []
        let unique = reasons.filter { seen.insert($0).inserted }
        let detail = lines.filter { $0.contains("untrusted") }.map(clean)
        return "TLS certificate verification failed: the server's certificate " + unique.joined(separator: " and ")
            + (detail.isEmpty ? "" : " (libldap: \(detail.joined(separator: "; ")))")
    }

    /// The GnuTLS verification status in "TLS: peer cert untrusted or revoked (0x42)".
    static func status(in line: String) -> UInt32? {
        guard line.contains("untrusted or revoked"), let open = line.range(of: "(0x", options: .backwards) else { return nil }
        let digits = line[open.upperBound...].prefix { $0.isHexDigit }
        return UInt32(digits, radix: 16)
    }

    /// gnutls_certificate_status_t bits (gnutls/gnutls.h), in words.
    static func describe(status: UInt32, trusted: String) -> [String] {
        let bits: [(UInt32, String)] = [
            (1 << 6, "is not signed by \(trusted)"),
            (1 << 7, "has an issuer that is not a CA"),
            (1 << 10, "has expired"),
            (1 << 9, "is not valid yet"),
            (1 << 5, "has been revoked"),
            (1 << 8, "uses an insecure algorithm"),
            (1 << 11, "has a signature that does not verify"),
            (1 << 16, "breaks its issuer's constraints"),
            (1 << 17, "does not match the expected certificate"),
            (1 << 18, "is not meant for a TLS server"),
            (1 << 14, "has an unexpected owner"),
            (1 << 21, "has unknown critical extensions"),
        ]
        var reasons = bits.filter { status & $0.0 != 0 }.map(\.1)
        if reasons.isEmpty { reasons.append("is not trusted (GnuTLS status 0x\(String(status, radix: 16)))") }
        return reasons
    }

    private static func clean(_ line: String) -> String {
        var text = line
        while text.hasSuffix(".") { text.removeLast() }
        return text
    }
}
