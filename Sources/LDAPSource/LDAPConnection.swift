import CLDAP
import Foundation
import SyncEngine

/// How to reach and authenticate to a directory server.
public struct LDAPConnectionOptions: Sendable, Hashable {
    /// `ldap://host:port`, `ldaps://host:port` (or several, separated by spaces).
    public var url: String
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    public var startTLS: Bool
    /// PEM file of the CA(s) that sign the server certificate; the system's CAs when nil.
    /// The server certificate is always verified (`LDAP_OPT_X_TLS_DEMAND`).
    public var caFile: String?
    /// Simple-bind DN (anonymous when nil).
    public var bindDN: String?
    /// Never logged, never put into an error message.
    public var bindPassword: String?
    /// TCP connect timeout (`LDAP_OPT_NETWORK_TIMEOUT`).
    public var networkTimeout: Duration
    /// Time limit of each request: bind, StartTLS, one page of a search (`LDAP_OPT_TIMEOUT`
    /// and the search's own timeout).
    public var operationTimeout: Duration
    /// The run's deadline: every wait above is cut to end by it (nil: no run deadline).
    public var deadline: RunDeadline?

    public init(
        url: String, startTLS: Bool = false, caFile: String? = nil, bindDN: String? = nil, bindPassword: String? = nil,
        networkTimeout: Duration = .seconds(10), operationTimeout: Duration = .seconds(60), deadline: RunDeadline? = nil
    ) {
        self.url = url
        self.startTLS = startTLS
        self.caFile = caFile
        self.bindDN = bindDN
        self.bindPassword = bindPassword
        self.networkTimeout = networkTimeout
        self.operationTimeout = operationTimeout
        self.deadline = deadline
    }

    /// `wanted`, cut to the time the run's deadline leaves (at least a millisecond: libldap
    /// reads a zero timeout as "none").
    func capped(_ wanted: Duration) -> Duration {
        guard let deadline else { return wanted }
        return max(.milliseconds(1), deadline.limit(wanted))
    }
}

/// One entry of a search answer. Attribute names are lowercased; values are raw bytes
/// (binary attributes such as objectGUID stay bytes; text is UTF-8, decoded by the caller).
public struct LDAPEntry: Sendable, Hashable {
    public var dn: String
    public var attributes: [String: [[UInt8]]]

    public init(dn: String, attributes: [String: [[UInt8]]]) {
        self.dn = dn
        self.attributes = attributes
    }

    /// All values of `name` (case-insensitive).
    public func values(_ name: String) -> [[UInt8]] { attributes[name.lowercased()] ?? [] }

    /// The first value of `name`.
    public func first(_ name: String) -> [UInt8]? { values(name).first }
}

/// Search scope.
public enum LDAPScope: Sendable {
    case base, oneLevel, subtree

    var raw: Int32 {
        switch self {
        case .base: return LDAP_SCOPE_BASE
        case .oneLevel: return LDAP_SCOPE_ONELEVEL
        case .subtree: return LDAP_SCOPE_SUBTREE
        }
    }
}

/// A thin owner of one libldap handle (`LDAP*`). Blocking: used only from the serial queue
/// of its `LDAPClient` (never from the cooperative thread pool); unbinds in `deinit`.
///
/// Referrals are not chased (`LDAP_OPT_REFERRALS` off) and continuation references in search
/// answers are ignored.
final class LDAPConnection: @unchecked Sendable {
    private var ld: OpaquePointer?
    let options: LDAPConnectionOptions
    /// Search requests sent (one per page).
    private(set) var requests = 0
    /// The time limit of the last request (the operation timeout, cut to the run's deadline).
    private var lastWait: Duration

    /// Creates the handle and sets its options; nothing is sent yet.
    init(options: LDAPConnectionOptions) throws(SyncError) {
        self.options = options
        lastWait = options.capped(options.operationTimeout)
        // One URL or several separated by spaces (libldap tries them in turn).
        let lower = options.url.lowercased()
        if options.startTLS && lower.contains("ldaps://") {
            throw .configuration("services.ldap.start_tls cannot be combined with an ldaps:// server_url")
        }
        var handle: OpaquePointer?
        let rc = ldap_initialize(&handle, options.url)
        guard rc == LDAP_SUCCESS, let handle else {
            throw .configuration("services.ldap.server_url is not a usable LDAP URL: \(Self.describe(rc))")
        }
        ld = handle
        var version: Int32 = LDAP_VERSION3
        try check(ldap_set_option(handle, LDAP_OPT_PROTOCOL_VERSION, &version), "setting the protocol version")
        // LDAP_OPT_OFF is ((void *) 0): referrals are never chased.
        try check(ldap_set_option(handle, LDAP_OPT_REFERRALS, nil), "turning referrals off")
        var network = Self.timeval(options.capped(options.networkTimeout))
        try check(ldap_set_option(handle, LDAP_OPT_NETWORK_TIMEOUT, &network), "setting the network timeout")
        var operation = Self.timeval(lastWait)
        try check(ldap_set_option(handle, LDAP_OPT_TIMEOUT, &operation), "setting the operation timeout")
        var demand: Int32 = LDAP_OPT_X_TLS_DEMAND
        try check(ldap_set_option(handle, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand), "requiring certificate verification")
        if let caFile = options.caFile {
            guard FileManager.default.isReadableFile(atPath: caFile) else {
                throw .configuration("services.ldap.ca_file \(caFile) is not a readable file")
            }
            let rc = caFile.withCString { ldap_set_option(handle, LDAP_OPT_X_TLS_CACERTFILE, $0) }
            try check(rc, "setting the CA file")
        }
        // A fresh TLS context for this handle, so the options above apply to it alone.
        var isServer: Int32 = 0
        try check(ldap_set_option(handle, LDAP_OPT_X_TLS_NEWCTX, &isServer), "creating the TLS context")
    }

    deinit {
        if let ld { ldap_unbind_ext_s(ld, nil, nil) }
    }

    /// StartTLS (when configured) and the simple bind. Failures are `unavailable`; the message
    /// names the server and the bind DN, never the password. A TLS handshake that fails on the
    /// server's certificate says so and why (`TLSDiagnostics`), not just "Can't contact".
    func connect() throws(SyncError) {
        guard let ld else { throw .failed("LDAP handle already closed") }
        if options.startTLS {
            let (rc, tls) = TLSDiagnostics.capture { ldap_start_tls_s(ld, nil, nil) }
            guard rc == LDAP_SUCCESS else {
                throw .unavailable("LDAP StartTLS with \(options.url) failed: \(describe(rc, tls: tls))")
            }
        }
        // The password as C bytes only for the call, then overwritten.
        var password = Array((options.bindPassword ?? "").utf8.map { CChar(bitPattern: $0) })
        // With ldaps:// the TLS handshake happens here, on the first request.
        let (rc, tls): (Int32, [String]) = TLSDiagnostics.capture {
            password.withUnsafeMutableBufferPointer { buffer in
                var credential = berval(bv_len: ber_len_t(buffer.count), bv_val: buffer.count > 0 ? buffer.baseAddress : nil)
                return ldap_sasl_bind_s(ld, options.bindDN, nil, &credential, nil, nil, nil)
            }
        }
        for i in password.indices { password[i] = 0 }
        guard rc == LDAP_SUCCESS else {
            let who = options.bindDN.map { " as \($0)" } ?? " anonymously"
            throw .unavailable("LDAP bind to \(options.url)\(who) failed: \(describe(rc, tls: tls))")
        }
    }

    /// `describe(rc)`, led by the certificate problem when the TLS lines name one, and saying
    /// how long it waited when the server did not answer.
    private func describe(_ rc: Int32, tls: [String]) -> String {
        if let certificate = TLSDiagnostics.explain(tls, caFile: options.caFile) { return "\(certificate) [\(rc)]" }
        if rc == LDAP_TIMEOUT { return describe(rc) + waitedNote() }
        return describe(rc)
    }

    /// ": no answer within 9.0s, all that services.ldap.timeout (10.0s) left ..." for a timeout.
    private func waitedNote() -> String {
        let waited = lastWait
        var note = ": no answer within \(RunDeadline.describe(waited))"
        if let deadline = options.deadline, waited < options.operationTimeout {
            note += ", all that services.ldap.timeout (\(RunDeadline.describe(deadline.timeout))) left for it"
        } else {
            note += " (services.ldap.operation_timeout)"
        }
        return note + "; the server accepts the connection but does not answer (hung or overloaded)"
    }

    /// A search with the paged-results control (RFC 2696), page after page until the server's
    /// cookie is empty. Each page is one request with the operation timeout. `onPage` is told
    /// the duration of each request and whether it succeeded.
    func pagedSearch(
        base: String, scope: LDAPScope, filter: String, attributes: [String], pageSize: Int,
        onPage: (Bool, Double) -> Void
    ) throws(SyncError) -> [LDAPEntry] {
        guard let ld else { throw .failed("LDAP handle already closed") }
        var entries: [LDAPEntry] = []
        var cookie = berval(bv_len: 0, bv_val: nil)
        defer { if cookie.bv_val != nil { ber_memfree(cookie.bv_val) } }
        // attrs: a NULL-terminated char* array, freed after the search.
        var cAttributes: [UnsafeMutablePointer<CChar>?] = attributes.map { strdup($0) } + [nil]
        defer { for p in cAttributes { free(p) } }
        repeat {
            var control: UnsafeMutablePointer<LDAPControl>?
            var rc = ldap_create_page_control(ld, ber_int_t(pageSize), &cookie, 1, &control)
            guard rc == LDAP_SUCCESS, let control else {
                throw .failed("could not build the LDAP paged-results control: \(describe(rc))")
            }
            defer { ldap_control_free(control) }
            var serverControls: [UnsafeMutablePointer<LDAPControl>?] = [control, nil]
            lastWait = options.capped(options.operationTimeout)
            var timeout = Self.timeval(lastWait)
            var result: OpaquePointer?
            let started = ContinuousClock.now
            requests += 1
            rc = cAttributes.withUnsafeMutableBufferPointer { attrs in
                serverControls.withUnsafeMutableBufferPointer { controls in
                    ldap_search_ext_s(
                        ld, base, scope.raw, filter, attrs.baseAddress, 0, controls.baseAddress, nil, &timeout, 0, &result)
                }
            }
            let seconds = Self.seconds(ContinuousClock.now - started)
            defer { if let result { ldap_msgfree(result) } }
            guard rc == LDAP_SUCCESS, let result else {
                onPage(false, seconds)
                throw searchError(rc, base: base)
            }
            // Entries only: continuation references (ldap_first_message would show them) are ignored.
            var message = ldap_first_entry(ld, result)
            while let current = message {
                entries.append(try readEntry(current))
                message = ldap_next_entry(ld, current)
            }
            // The server's answer to the control: the cookie for the next page.
            var errorCode: Int32 = 0
            var responseControls: UnsafeMutablePointer<UnsafeMutablePointer<LDAPControl>?>?
            rc = ldap_parse_result(ld, result, &errorCode, nil, nil, nil, &responseControls, 0)
            defer { if let responseControls { ldap_controls_free(responseControls) } }
            guard rc == LDAP_SUCCESS, errorCode == LDAP_SUCCESS else {
                onPage(false, seconds)
                throw searchError(rc == LDAP_SUCCESS ? errorCode : rc, base: base)
            }
            onPage(true, seconds)
            if cookie.bv_val != nil { ber_memfree(cookie.bv_val) }
            cookie = berval(bv_len: 0, bv_val: nil)
            guard let pageControl = ldap_control_find(LDAPConnection.pagedResultsOID, responseControls, nil) else {
                throw .failed("the LDAP server ignored the paged-results control on a search under \(base)")
            }
            var count: ber_int_t = 0
            rc = ldap_parse_pageresponse_control(ld, pageControl, &count, &cookie)
            guard rc == LDAP_SUCCESS else {
                throw .failed("unreadable paged-results answer from the LDAP server: \(describe(rc))")
            }
        } while cookie.bv_len > 0
        return entries
    }

    static let pagedResultsOID = "1.2.840.113556.1.4.319"

    // MARK: - Helpers

    private func readEntry(_ message: OpaquePointer) throws(SyncError) -> LDAPEntry {
        guard let ld else { throw .failed("LDAP handle already closed") }
        guard let rawDN = ldap_get_dn(ld, message) else { throw .failed("LDAP entry without a DN") }
        let dn = String(cString: rawDN)
        ldap_memfree(rawDN)
        var attributes: [String: [[UInt8]]] = [:]
        var ber: OpaquePointer?
        var name = ldap_first_attribute(ld, message, &ber)
        while let current = name {
            let key = String(cString: current).lowercased()
            if let values = ldap_get_values_len(ld, message, current) {
                var list: [[UInt8]] = []
                var i = 0
                while let value = values[i] {
                    let length = Int(value.pointee.bv_len)
                    if length > 0, let bytes = value.pointee.bv_val {
                        list.append(Array(UnsafeRawBufferPointer(start: bytes, count: length).bindMemory(to: UInt8.self)))
                    } else {
                        list.append([])
                    }
                    i += 1
                }
                ldap_value_free_len(values)
                attributes[key, default: []] += list
            }
            ldap_memfree(current)
            name = ldap_next_attribute(ld, message, ber)
        }
        if let ber { ber_free(ber, 0) }
        return LDAPEntry(dn: dn, attributes: attributes)
    }

    private func searchError(_ rc: Int32, base: String) -> SyncError {
        let text = "LDAP search under \(base) failed: \(describe(rc))" + (rc == LDAP_TIMEOUT ? waitedNote() : "")
        switch rc {
        case LDAP_SERVER_DOWN, LDAP_TIMEOUT, LDAP_CONNECT_ERROR, LDAP_TIMELIMIT_EXCEEDED, LDAP_UNAVAILABLE, LDAP_BUSY:
            return .unavailable(text)
        default:
            return .failed(text)
        }
    }

    private func check(_ rc: Int32, _ what: String) throws(SyncError) {
        guard rc == LDAP_OPT_SUCCESS else { throw .failed("libldap: \(what) failed: \(describe(rc))") }
    }

    /// `ldap_err2string` plus the server's or library's diagnostic message, if any.
    private func describe(_ rc: Int32) -> String {
        var text = Self.describe(rc)
        if let ld {
            var diagnostic: UnsafeMutablePointer<CChar>?
            if ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diagnostic) == LDAP_OPT_SUCCESS, let diagnostic {
                let extra = String(cString: diagnostic).trimmingCharacters(in: .whitespacesAndNewlines)
                ldap_memfree(diagnostic)
                if !extra.isEmpty { text += " (\(extra))" }
            }
        }
        return text
    }

    static func describe(_ rc: Int32) -> String {
        "\(String(cString: ldap_err2string(rc))) [\(rc)]"
    }

    static func timeval(_ duration: Duration) -> Glibc.timeval {
        let (seconds, attoseconds) = duration.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }

    static func seconds(_ duration: Duration) -> Double {
        let (s, a) = duration.components
        return Double(s) + Double(a) / 1e18
    }
}
