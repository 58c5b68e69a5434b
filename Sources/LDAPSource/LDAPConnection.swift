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
        try pagedSearch(
            base: base, scope: scope, filter: filter, attributes: attributes, pageSize: pageSize, onPage: onPage
        ) { (entry: LDAPEntryView) throws(SyncError) in try entry.entry() }
    }

    /// The paged search, each entry handed to `decode` straight from libldap's buffer (no
    /// intermediate copy of its values). Pipelined: as soon as a page has arrived, the request
    /// for the next one goes out, and the page is decoded while the server prepares the next.
    func pagedSearch<T>(
        base: String, scope: LDAPScope, filter: String, attributes: [String], pageSize: Int,
        onPage: (Bool, Double) -> Void, decode: (LDAPEntryView) throws(SyncError) -> T?
    ) throws(SyncError) -> [T] {
        guard let ld else { throw .failed("LDAP handle already closed") }
        var decoded: [T] = []
        // attrs: a NULL-terminated char* array, freed after the search.
        var cAttributes: [UnsafeMutablePointer<CChar>?] = attributes.map { strdup($0) } + [nil]
        defer { for p in cAttributes { free(p) } }

        /// Sends the request for the page after `cookie` (empty: the first page); its message id.
        func request(_ cookie: inout berval) throws(SyncError) -> Int32 {
            var control: UnsafeMutablePointer<LDAPControl>?
            var rc = ldap_create_page_control(ld, ber_int_t(pageSize), &cookie, 1, &control)
            guard rc == LDAP_SUCCESS, let control else {
                throw .failed("could not build the LDAP paged-results control: \(describe(rc))")
            }
            defer { ldap_control_free(control) }
            var serverControls: [UnsafeMutablePointer<LDAPControl>?] = [control, nil]
            lastWait = options.capped(options.operationTimeout)
            var timeout = Self.timeval(lastWait)
            var msgid: Int32 = -1
            requests += 1
            rc = cAttributes.withUnsafeMutableBufferPointer { attrs in
                serverControls.withUnsafeMutableBufferPointer { controls in
                    ldap_search_ext(ld, base, scope.raw, filter, attrs.baseAddress, 0, controls.baseAddress, nil, &timeout, 0, &msgid)
                }
            }
            guard rc == LDAP_SUCCESS else { throw searchError(rc, base: base) }
            return msgid
        }

        var empty = berval(bv_len: 0, bv_val: nil)
        var pending: Int32? = try request(&empty)
        var started = ContinuousClock.now
        defer { if let pending { ldap_abandon_ext(ld, pending, nil, nil) } }
        // One page's entry messages, kept until the next page is requested.
        var entries: [OpaquePointer] = []
        entries.reserveCapacity(pageSize)
        defer { for entry in entries { ldap_msgfree(entry) } }
        while let msgid = pending {
            // Message by message (LDAP_MSG_ONE): libldap's LDAP_MSG_ALL walks the chain it
            // has built at every message received, quadratic in the page size. The operation
            // timeout (cut to the run's deadline) still bounds the whole page.
            let pageEnds = started + lastWait
            var result: OpaquePointer?
            while result == nil {
                var timeout = Self.timeval(max(.milliseconds(1), pageEnds - ContinuousClock.now))
                var message: OpaquePointer?
                let got = ldap_result(ld, msgid, LDAP_MSG_ONE, &timeout, &message)
                guard got > 0, let message else {
                    onPage(false, Self.seconds(ContinuousClock.now - started))
                    var code: Int32 = LDAP_TIMEOUT
                    if got < 0 { ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &code) }
                    throw searchError(code, base: base)
                }
                switch ber_tag_t(got) {
                case LDAP_RES_SEARCH_ENTRY: entries.append(message)
                case LDAP_RES_SEARCH_RESULT: result = message
                // Continuation references (and anything else) are ignored.
                default: ldap_msgfree(message)
                }
            }
            let seconds = Self.seconds(ContinuousClock.now - started)
            defer { if let result { ldap_msgfree(result) } }
            pending = nil
            // The server's answer to the control: the cookie for the next page.
            var errorCode: Int32 = 0
            var responseControls: UnsafeMutablePointer<UnsafeMutablePointer<LDAPControl>?>?
            var rc = ldap_parse_result(ld, result, &errorCode, nil, nil, nil, &responseControls, 0)
            defer { if let responseControls { ldap_controls_free(responseControls) } }
            guard rc == LDAP_SUCCESS, errorCode == LDAP_SUCCESS else {
                onPage(false, seconds)
                throw searchError(rc == LDAP_SUCCESS ? errorCode : rc, base: base)
            }
            onPage(true, seconds)
            guard let pageControl = ldap_control_find(LDAPConnection.pagedResultsOID, responseControls, nil) else {
                throw .failed("the LDAP server ignored the paged-results control on a search under \(base)")
            }
            var count: ber_int_t = 0
            var cookie = berval(bv_len: 0, bv_val: nil)
            rc = ldap_parse_pageresponse_control(ld, pageControl, &count, &cookie)
            defer { if cookie.bv_val != nil { ber_memfree(cookie.bv_val) } }
            guard rc == LDAP_SUCCESS else {
                throw .failed("unreadable paged-results answer from the LDAP server: \(describe(rc))")
            }
            if cookie.bv_len > 0 {
                pending = try request(&cookie)
                started = ContinuousClock.now
            }
            for entry in entries {
                if let value = try decode(LDAPEntryView(ld: ld, message: entry)) { decoded.append(value) }
            }
            for entry in entries { ldap_msgfree(entry) }
            entries.removeAll(keepingCapacity: true)
        }
        return decoded
    }

    static let pagedResultsOID = "1.2.840.113556.1.4.319"

    // MARK: - Helpers

    func searchError(_ rc: Int32, base: String) -> SyncError {
        var text = "LDAP search under \(base) failed: \(describe(rc))" + (rc == LDAP_TIMEOUT ? waitedNote() : "")
        if rc == LDAP_ADMINLIMIT_EXCEEDED {
            text += "; the server may allow fewer entries per page than services.ldap.page_size asks for"
        }
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

/// One entry of a search answer as libldap holds it, read in place: valid only during the
/// `decode` call of `pagedSearch` that hands it out. Values are byte views into libldap's
/// buffer, never copied unless the caller copies them.
struct LDAPEntryView {
    let ld: OpaquePointer
    let message: OpaquePointer

    /// Walks the entry once: `dn` gets the DN's bytes, then `body` each attribute's name and
    /// values, as sent (names in the server's spelling).
    func read(
        dn: (UnsafeRawBufferPointer) throws(SyncError) -> Void,
        _ body: (_ attribute: UnsafeRawBufferPointer, _ values: UnsafeBufferPointer<berval>) throws(SyncError) -> Void
    ) throws(SyncError) {
        var ber: OpaquePointer?
        var dnValue = berval(bv_len: 0, bv_val: nil)
        guard ldap_get_dn_ber(ld, message, &ber, &dnValue) == LDAP_SUCCESS, let ber, dnValue.bv_val != nil else {
            throw .failed("LDAP entry without a DN")
        }
        defer { ber_free(ber, 0) }
        try dn(UnsafeRawBufferPointer(start: dnValue.bv_val, count: Int(dnValue.bv_len)))
        while true {
            var name = berval(bv_len: 0, bv_val: nil)
            var values: UnsafeMutablePointer<berval>?
            guard ldap_get_attribute_ber(ld, message, ber, &name, &values) == LDAP_SUCCESS else {
                if let values { ber_memfree(values) }
                throw .failed("undecodable LDAP entry")
            }
            defer { if let values { ber_memfree(values) } }
            guard let nameBytes = name.bv_val else { return }
            var count = 0
            if let values { while values[count].bv_val != nil { count += 1 } }
            try body(
                UnsafeRawBufferPointer(start: nameBytes, count: Int(name.bv_len)),
                UnsafeBufferPointer(start: values, count: count))
        }
    }

    /// The entry as a value (names lowercased, values copied).
    func entry() throws(SyncError) -> LDAPEntry {
        var dn = ""
        var attributes: [String: [[UInt8]]] = [:]
        try read(dn: { bytes throws(SyncError) in dn = String(decoding: bytes, as: UTF8.self) }) { name, values throws(SyncError) in
            let key = String(decoding: name, as: UTF8.self).lowercased()
            attributes[key, default: []] += values.map { Self.bytes($0) }
        }
        return LDAPEntry(dn: dn, attributes: attributes)
    }

    static func view(_ value: berval) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: value.bv_val, count: value.bv_val == nil ? 0 : Int(value.bv_len))
    }

    static func bytes(_ value: berval) -> [UInt8] { Array(view(value)) }
}
