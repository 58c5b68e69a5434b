import Foundation
import SyncEngine

/// One service as the configuration describes it to the supervisor.
public struct ServicePlan: Sendable, Hashable {
    public var name: String
    public var settings: ServiceSettings
    public var schedule: Schedule

    public init(name: String, settings: ServiceSettings, schedule: Schedule) {
        self.name = name
        self.settings = settings
        self.schedule = schedule
    }
}

/// The storm breaker: too many failures across all services in a short window pause every
/// scheduled start and retry for a while, and the status line says so (suture's idea).
public struct StormBreaker: Sendable, Hashable {
    /// Failures (failure, crash, timeout) within `window` that trip the breaker.
    public var threshold: Int
    public var window: Double
    /// How long new scheduled runs and retries wait once it trips.
    public var pause: Double

    public init(threshold: Int = 5, window: Double = 60, pause: Double = 300) {
        self.threshold = threshold
        self.window = window
        self.pause = pause
    }
}

/// What the supervisor must do after an input. The core decides; the loop performs.
public enum SupervisorAction: Sendable, Hashable {
    /// Spawn a child running `service` (its state is already `running`).
    case start(service: String, dryRun: Bool, reason: RunReason, scheduledFor: Date)
    /// The storm breaker tripped: no scheduled starts or retries until `until`.
    case stormStarted(until: Date, failures: Int)
    case stormEnded
}

/// Every service's state machine, the concurrency limit and the storm breaker: a value type
/// with no I/O, driven by the supervisor's single loop with an injected clock ("now" on every
/// input) and random source (for jitter).
public struct SupervisorCore: Sendable {
    public private(set) var settings: SupervisorSettings
    /// In configuration order (sorted by name).
    public private(set) var services: [ServiceMachine]
    public private(set) var plans: [String: ServicePlan]
    public var storm: StormBreaker
    /// Instants of recent failures, for the storm breaker.
    private var recentFailures: [Date] = []
    public private(set) var stormUntil: Date?
    public private(set) var stopping = false
    private var random: SplitMix64

    public init(
        settings: SupervisorSettings, plans: [ServicePlan], now: Date, storm: StormBreaker? = nil,
        random: SplitMix64 = SplitMix64(seed: UInt64.random(in: .min ... .max))
    ) {
        self.settings = settings
        self.plans = Dictionary(uniqueKeysWithValues: plans.map { ($0.name, $0) })
        self.services = plans.sorted { $0.name < $1.name }.map {
            ServiceMachine(
                name: $0.name, schedule: $0.schedule, enabled: $0.settings.enabled, runOnStart: $0.settings.runOnStart,
                now: now)
        }
        self.storm = storm ?? StormBreaker(pause: min(300, settings.backoff.max.asSeconds))
        self.random = random
    }

    public func service(_ name: String) -> ServiceMachine? { services.first { $0.name == name } }

    public var runningCount: Int { services.filter(\.isRunning).count }

    /// Starts what is due, within `max_concurrent_runs`, oldest due first. Call on every wake-up.
    public mutating func tick(now: Date) -> [SupervisorAction] {
        guard !stopping else { return [] }
        var actions: [SupervisorAction] = []
        if let until = stormUntil, until <= now {
            stormUntil = nil
            actions.append(.stormEnded)
        }
        var free = max(settings.maxConcurrentRuns, 1) - runningCount
        guard free > 0 else { return actions }
        let due = services.indices
            .compactMap { i -> (Int, Date, RunReason)? in
                guard let d = services[i].due, d.at <= now else { return nil }
                // While the storm breaker is on, only triggers start.
                if stormUntil != nil && d.reason != .trigger { return nil }
                return (i, d.at, d.reason)
            }
            .sorted { ($0.1, services[$0.0].name) < ($1.1, services[$1.0].name) }
        for (i, dueAt, _) in due where free > 0 {
            let configured = plans[services[i].name]?.settings.dryRun ?? false
            if let started = services[i].start(now: now, configuredDryRun: configured) {
                actions.append(
                    .start(
                        service: services[i].name, dryRun: started.dryRun, reason: started.reason,
                        scheduledFor: dueAt == .distantPast ? now : dueAt))
                free -= 1
            }
        }
        return actions
    }

    /// A child ended. Returns the decision for the service and any storm action.
    public mutating func runEnded(
        service name: String, _ end: RunEnd, now: Date
    ) -> (decision: RunEndDecision?, actions: [SupervisorAction]) {
        guard let i = services.firstIndex(where: { $0.name == name }) else { return (nil, []) }
        let u = Double.random(in: 0..<1, using: &random)
        let decision = services[i].finish(end, now: now, backoff: settings.backoff, jitter: u)
        var actions: [SupervisorAction] = []
        if case .backoff = decision {
            recentFailures.append(now)
            recentFailures.removeAll { now.timeIntervalSince($0) > storm.window }
            if stormUntil == nil && recentFailures.count >= storm.threshold {
                let until = now.addingTimeInterval(storm.pause)
                stormUntil = until
                actions.append(.stormStarted(until: until, failures: recentFailures.count))
            }
        }
        return (decision, actions)
    }

    /// `POST /trigger/SERVICE`.
    public mutating func trigger(service name: String, dryRun: Bool) -> TriggerAnswer? {
        guard !stopping, let i = services.firstIndex(where: { $0.name == name }) else {
            return stopping ? .alreadyRunning : nil
        }
        return services[i].trigger(dryRun: dryRun)
    }

    /// A reloaded configuration: running runs continue under the old settings; schedules,
    /// limits, the concurrency limit and backoff apply from now on.
    public mutating func reload(settings: SupervisorSettings, plans newPlans: [ServicePlan], now: Date) {
        self.settings = settings
        let byName = Dictionary(uniqueKeysWithValues: newPlans.map { ($0.name, $0) })
        for i in services.indices {
            if let plan = byName[services[i].name] {
                services[i].reconfigure(schedule: plan.schedule, enabled: plan.settings.enabled, now: now)
            } else {
                services[i].reconfigure(schedule: Schedule(.manual), enabled: false, now: now)
            }
        }
        for plan in newPlans where !services.contains(where: { $0.name == plan.name }) {
            services.append(
                ServiceMachine(
                    name: plan.name, schedule: plan.schedule, enabled: plan.settings.enabled,
                    runOnStart: plan.settings.runOnStart, now: now))
        }
        services.sort { $0.name < $1.name }
        // A removed service keeps its old plan until its run (if any) ends.
        for (name, plan) in byName { plans[name] = plan }
    }

    /// SIGTERM: no more runs; the loop terminates the running children.
    public mutating func stop() {
        stopping = true
        for i in services.indices { services[i].stop() }
    }

    /// When the loop must wake up next to start something (nil: only events can change
    /// anything).
    public func nextWakeup() -> Date? {
        guard !stopping else { return nil }
        var earliest: Date? = stormUntil
        for service in services {
            guard let due = service.due else { continue }
            if stormUntil != nil && due.reason != .trigger { continue }
            earliest = earliest.map { min($0, due.at) } ?? due.at
        }
        return earliest
    }

    /// One line summarising every service, for `STATUS=` (changes only on transitions).
    public func statusLine(in zone: TimeZone) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        func at(_ date: Date?) -> String {
            guard let date else { return "-" }
            if date == .distantPast { return "now" }
            let c = calendar.dateComponents([.hour, .minute, .second], from: date)
            return String(format: "%02d:%02d:%02d", c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
        }
        var parts: [String] = []
        if let stormUntil { parts.append("storm: runs paused until \(at(stormUntil))") }
        for s in services {
            var text = "\(s.name): "
            switch s.state {
            case .idle:
                text += s.lastOutcome.map { "\($0.rawValue), " } ?? ""
                text += s.nextScheduled == nil ? "on trigger only" : "next \(at(s.nextScheduled))"
            case .running(let since, let dryRun, _):
                text += "running since \(at(since))\(dryRun ? " (dry run)" : "")"
            case .backoff(let until):
                text += "\(s.lastOutcome?.rawValue ?? "failed"), retry \(at(until)) (\(s.consecutiveFailures) failures)"
            case .waiting:
                text += "\(s.lastOutcome?.rawValue ?? "failed"), waiting for \(at(s.nextScheduled))"
            case .disabled:
                text += "disabled"
            case .stopped:
                text += "stopped"
            }
            parts.append(text)
        }
        return parts.isEmpty ? "no services configured" : parts.joined(separator: "; ")
    }
}

/// A small seedable random generator (SplitMix64) for backoff jitter, so tests can fix it.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
