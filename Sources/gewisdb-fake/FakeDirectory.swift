import Foundation

/// What a member's answer is made to do wrong (`"_fault"` in the fixture, or chosen by ratio).
enum Fault: String, Sendable {
    /// HTTP 500 with GEWISDB's error envelope, on every request.
    case error
    /// HTTP 500 on the first request for this member only; a retry succeeds.
    case flaky
    /// HTTP 200 whose body is not JSON.
    case garbage
    /// HTTP 200 with JSON of the wrong shape (`data` a list, the names numbers).
    case misshapen
    /// The answer comes after `--slow-ms` (to trip the client's request timeout).
    case slow
    /// The connection is closed without an answer.
    case drop
}

/// One served member: its JSON object (already serialised as GEWISDB's answer) and its fault.
struct FakeMember: Sendable {
    var body: [UInt8]
    var fault: Fault?
}

/// The server's data and switches, shared by all connections. Guarded by a lock: event loop
/// threads read it, SIGHUP and `/_admin` change it.
final class FakeDirectory: @unchecked Sendable {
    private let lock = NSLock()
    private var members: [Int: FakeMember] = [:]
    private var served: [Int: Int] = [:]
    private(set) var options: FakeOptions
    private var healthy = true
    private var syncPaused = false
    private var stats = Stats()

    struct Stats: Codable {
        var requests = 0
        var memberRequests = 0
        var connections = 0
        var openConnections = 0
        var maxOpenConnections = 0
        /// API requests received and not yet answered; the most at once shows the client's concurrency.
        var inFlight = 0
        var maxInFlight = 0
        var members = 0

        enum CodingKeys: String, CodingKey {
            case requests, memberRequests = "member_requests", connections, openConnections = "open_connections"
            case maxOpenConnections = "max_open_connections", inFlight = "in_flight", maxInFlight = "max_in_flight"
            case members
        }
    }

    init(options: FakeOptions) throws {
        self.options = options
        try reload()
    }

    /// Re-reads the fixture (and regenerates generated members); command-line switches win over
    /// the fixture's `healthy` / `sync_paused`.
    func reload() throws {
        let options = lock.withLock { self.options }
        var loaded: [Int: FakeMember] = [:]
        var fileHealthy = true
        var filePaused = false
        if options.generate > 0 {
            for lidnr in 1...options.generate {
                loaded[lidnr] = FakeMember(body: Self.envelope(Self.generated(lidnr)), fault: nil)
            }
        }
        if let path = options.membersFile {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw UsageError(message: "\(path): not a JSON object")
            }
            fileHealthy = root["healthy"] as? Bool ?? true
            filePaused = root["sync_paused"] as? Bool ?? false
            for case var member as [String: Any] in root["members"] as? [Any] ?? [] {
                guard let lidnr = member["lidnr"] as? Int else { throw UsageError(message: "\(path): a member has no lidnr") }
                var fault: Fault?
                if let name = member.removeValue(forKey: "_fault") as? String {
                    guard let known = Fault(rawValue: name) else { throw UsageError(message: "\(path): unknown _fault \(name)") }
                    fault = known
                }
                loaded[lidnr] = FakeMember(body: Self.envelope(member), fault: fault)
            }
        }
        lock.withLock {
            members = loaded
            served = [:]
            healthy = options.healthy ?? fileHealthy
            syncPaused = options.syncPaused ?? filePaused
            stats.members = loaded.count
        }
    }

    static func envelope(_ member: [String: Any]) -> [UInt8] {
        let object: [String: Any] = ["status": "success", "data": member]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Array(data)
    }

    /// A plausible member for benchmarks: valid until 2099, all optional fields present.
    static func generated(_ lidnr: Int) -> [String: Any] {
        [
            "lidnr": lidnr, "full_name": "Member \(lidnr)", "initials": "M.", "given_name": "Member",
            "middle_name": "", "family_name": "Number \(lidnr)", "generation": 2020, "hidden": false,
            "deleted": false, "expiration": "2099-07-01T00:00:00+02:00", "email": "m\(lidnr)@example.org",
            "is_16_plus": true, "is_18_plus": true, "is_21_plus": true, "membership_type": "ordinary",
        ]
    }

    /// `syncPaused` nil: the answer has no `sync_paused` key.
    var health: (healthy: Bool, syncPaused: Bool?) {
        lock.withLock { (healthy, options.omitSyncPaused ? nil : syncPaused) }
    }

    /// The stored answer for a member and the fault to apply to this request.
    func member(_ lidnr: Int) -> (member: FakeMember?, fault: Fault?) {
        lock.withLock {
            stats.memberRequests += 1
            guard let member = members[lidnr] else { return (nil, nil) }
            let count = served[lidnr, default: 0]
            served[lidnr] = count + 1
            var fault = member.fault
            if fault == nil {
                if Self.share(lidnr, salt: 1) < options.failRatio { fault = .error }
                else if Self.share(lidnr, salt: 2) < options.flakyRatio { fault = .flaky }
                else if Self.share(lidnr, salt: 3) < options.garbageRatio { fault = .garbage }
                else if Self.share(lidnr, salt: 4) < options.misshapenRatio { fault = .misshapen }
                else if Self.share(lidnr, salt: 5) < options.slowRatio { fault = .slow }
            }
            if fault == .flaky { fault = count == 0 ? .error : nil }
            return (member, fault)
        }
    }

    /// A fixed pseudo-random number in 0..<1 per member number, so a ratio picks the same
    /// members on every request (retries do not help against `--fail-ratio`).
    static func share(_ lidnr: Int, salt: UInt64) -> Double {
        var x = UInt64(bitPattern: Int64(lidnr)) &+ salt &* 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 31
        return Double(x >> 11) / Double(1 << 53)
    }

    func countRequest() { lock.withLock { stats.requests += 1 } }

    /// An API request is received (`began`) or answered.
    func inFlight(_ began: Bool) {
        lock.withLock {
            stats.inFlight += began ? 1 : -1
            stats.maxInFlight = max(stats.maxInFlight, stats.inFlight)
        }
    }

    func connectionOpened() {
        lock.withLock {
            stats.connections += 1
            stats.openConnections += 1
            stats.maxOpenConnections = max(stats.maxOpenConnections, stats.openConnections)
        }
    }

    func connectionClosed() { lock.withLock { stats.openConnections -= 1 } }

    func statsJSON() -> [UInt8] {
        let snapshot = lock.withLock { stats }
        return Array((try? JSONEncoder().encode(snapshot)) ?? Data())
    }

    /// `POST /_admin/set?key=value&...`: flips switches at run time. Returns an error line or nil.
    func set(_ pairs: [(String, String)]) -> String? {
        lock.withLock {
            for (key, value) in pairs {
                switch key {
                case "sync_paused":
                    if value == "absent" {
                        options.omitSyncPaused = true
                        continue
                    }
                    guard let flag = Bool(value) else { return "sync_paused: not true/false/absent" }
                    syncPaused = flag
                    options.omitSyncPaused = false
                case "healthy":
                    guard let flag = Bool(value) else { return "healthy: not true/false" }
                    healthy = flag
                case "fail_ratio", "flaky_ratio", "garbage_ratio", "misshapen_ratio", "slow_ratio":
                    guard let ratio = Double(value) else { return "\(key): not a number" }
                    if key == "fail_ratio" { options.failRatio = ratio }
                    if key == "flaky_ratio" { options.flakyRatio = ratio }
                    if key == "garbage_ratio" { options.garbageRatio = ratio }
                    if key == "misshapen_ratio" { options.misshapenRatio = ratio }
                    if key == "slow_ratio" { options.slowRatio = ratio }
                case "latency_ms":
                    guard let ms = Int(value) else { return "latency_ms: not a number" }
                    options.latencyMilliseconds = ms
                default:
                    return "unknown switch \(key)"
                }
            }
            return nil
        }
    }

    var latencyMilliseconds: Int { lock.withLock { options.latencyMilliseconds } }
    var slowMilliseconds: Int { lock.withLock { options.slowMilliseconds } }
}
