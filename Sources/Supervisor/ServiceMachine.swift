import Foundation
import SyncEngine

/// Where a service stands, as the supervisor sees it.
public enum ServiceState: Sendable, Hashable {
    /// Waiting for its next scheduled run (or a trigger).
    case idle
    /// A child is running a run that started at `since`.
    case running(since: Date, dryRun: Bool, reason: RunReason)
    /// A run failed; the next attempt is at `until`.
    case backoff(until: Date)
    /// A run was refused or misconfigured: retrying cannot help, so it waits for the next
    /// scheduled run (or a trigger) without backing off.
    case waiting
    /// Not enabled in the configuration.
    case disabled
    /// The supervisor is shutting down.
    case stopped

    /// The `state` of `/status`: idle, running, backoff, waiting, disabled, stopped.
    public var name: String {
        switch self {
        case .idle: return "idle"
        case .running: return "running"
        case .backoff: return "backoff"
        case .waiting: return "waiting"
        case .disabled: return "disabled"
        case .stopped: return "stopped"
        }
    }
}

/// Why a run starts.
public enum RunReason: String, Sendable, Hashable {
    case schedule
    /// After a backoff.
    case retry
    /// `POST /trigger` / `sudosos-sync trigger`.
    case trigger
}

/// How a run ended, as the supervisor learned it from the child.
public struct RunEnd: Sendable, Hashable {
    public var outcome: RunOutcome
    /// False for a configuration error (exit 78): retrying with the same configuration cannot
    /// help, so the service waits for the next schedule.
    public var retryable: Bool
    public var summary: RunSummary?

    public init(outcome: RunOutcome, retryable: Bool = true, summary: RunSummary? = nil) {
        self.outcome = outcome
        self.retryable = retryable
        self.summary = summary
    }
}

/// What ending a run did to the service.
public enum RunEndDecision: Sendable, Hashable {
    /// Success (or not_ready / locked): the next run is the scheduled one.
    case scheduled(next: Date?)
    /// Failure, crash or timeout: retry after `delay` seconds.
    case backoff(delay: Double, until: Date)
    /// Refused or configuration error: wait for the next scheduled run, no retries.
    case waitForSchedule(next: Date?)
}

/// The state of one service: a value type with no I/O. Every input is a mutating method that
/// says what happened; the caller (``SupervisorCore``) performs the effects.
///
/// | state \ input | due (tick) | run ended | trigger | reconfigure | stop |
/// | --- | --- | --- | --- | --- | --- |
/// | idle | start (schedule) when `nextRun` ≤ now | ignored (no run) | start now | new schedule | stopped |
/// | running | nothing (no overlap) | success → idle; failure/crash/timeout → backoff; refused/config → waiting; not_ready/locked → idle | 409 | kept for the next run | stopped (child terminated by caller) |
/// | backoff | start (retry) when `until` ≤ now | ignored | start now | keeps backoff | stopped |
/// | waiting | start (schedule) when `nextRun` ≤ now | ignored | start now | new schedule | stopped |
/// | disabled | nothing | ignored | 404 | maybe enabled → idle | stopped |
/// | stopped | nothing | recorded, stays stopped | 409 | nothing | nothing |
public struct ServiceMachine: Sendable {
    public let name: String
    public private(set) var schedule: Schedule
    public private(set) var enabled: Bool
    public private(set) var state: ServiceState
    /// The next scheduled run (from the schedule; backoff retries are in `state`).
    public private(set) var nextScheduled: Date?
    /// Failed runs since the last success (not counting not_ready / locked).
    public private(set) var consecutiveFailures = 0
    /// n in the backoff formula; reset by a success `reset_after` past the last failure.
    public private(set) var backoffLevel = 0
    /// The current backoff delay in seconds, 0 when not backing off.
    public private(set) var backoffSeconds: Double = 0
    public private(set) var lastRun: RunSummary?
    public private(set) var lastOutcome: RunOutcome?
    public private(set) var lastSuccessAt: Date?
    public private(set) var lastFailureAt: Date?
    /// A trigger waiting for a free slot: its dry-run flag.
    public private(set) var pendingTrigger: Bool?

    public init(name: String, schedule: Schedule, enabled: Bool, runOnStart: Bool, now: Date) {
        self.name = name
        self.schedule = schedule
        self.enabled = enabled
        self.state = enabled ? .idle : .disabled
        self.nextScheduled = enabled ? schedule.firstRun(now: now, runOnStart: runOnStart) : nil
    }

    public var isRunning: Bool {
        if case .running = state { return true }
        return false
    }

    /// When this service next wants a child, and why; nil when it does not.
    public var due: (at: Date, reason: RunReason)? {
        if pendingTrigger != nil {
            switch state {
            case .idle, .backoff, .waiting: return (.distantPast, .trigger)
            default: return nil
            }
        }
        switch state {
        case .idle, .waiting: return nextScheduled.map { ($0, .schedule) }
        case .backoff(let until): return (until, .retry)
        case .running, .disabled, .stopped: return nil
        }
    }

    /// Starts a run (the caller checked `due` and the concurrency limit). Returns the dry-run
    /// flag of the run: a trigger's own, else the configured one.
    public mutating func start(now: Date, configuredDryRun: Bool) -> (dryRun: Bool, reason: RunReason)? {
        guard let due, due.at <= now else { return nil }
        let dryRun = pendingTrigger ?? configuredDryRun
        pendingTrigger = nil
        state = .running(since: now, dryRun: dryRun, reason: due.reason)
        backoffSeconds = 0
        return (dryRun, due.reason)
    }

    /// A run ended at `now`. `jitter` is a uniform random number in [0, 1).
    public mutating func finish(_ end: RunEnd, now: Date, backoff: BackoffSettings, jitter: Double) -> RunEndDecision {
        guard case .running(let since, _, _) = state else {
            // No run in flight (stopped, or a stale report): record and keep the state.
            if let summary = end.summary { lastRun = summary }
            lastOutcome = end.outcome
            return .scheduled(next: nextScheduled)
        }
        lastRun = end.summary
        lastOutcome = end.outcome
        let next = schedule.nextRun(lastStart: since, now: now)
        switch end.outcome {
        case .success:
            consecutiveFailures = 0
            lastSuccessAt = now
            if let lastFailureAt, now.timeIntervalSince(lastFailureAt) < backoff.resetAfter.asSeconds {
                // A success soon after a failure keeps the level, so a flapping service still
                // backs off further; it resets once `reset_after` has passed.
            } else {
                backoffLevel = 0
            }
            nextScheduled = next
            state = enabled ? .idle : .disabled
            return .scheduled(next: nextScheduled)
        case .notReady, .locked:
            nextScheduled = next
            state = enabled ? .idle : .disabled
            return .scheduled(next: nextScheduled)
        case .refused:
            return waitForSchedule(next: next, now: now)
        case .failure where !end.retryable:
            return waitForSchedule(next: next, now: now)
        case .failure, .crash, .timeout:
            consecutiveFailures += 1
            if let lastSuccessAt, let lastFailureAt, lastSuccessAt > lastFailureAt,
                now.timeIntervalSince(lastFailureAt) >= backoff.resetAfter.asSeconds
            {
                backoffLevel = 0
            }
            backoffLevel += 1
            lastFailureAt = now
            let delay = Self.backoffDelay(level: backoffLevel, settings: backoff, jitter: jitter)
            backoffSeconds = delay
            nextScheduled = next
            guard enabled else {
                state = .disabled
                return .scheduled(next: nil)
            }
            let until = now.addingTimeInterval(delay)
            state = .backoff(until: until)
            return .backoff(delay: delay, until: until)
        }
    }

    private mutating func waitForSchedule(next: Date?, now: Date) -> RunEndDecision {
        consecutiveFailures += 1
        lastFailureAt = now
        nextScheduled = next
        state = enabled ? .waiting : .disabled
        return .waitForSchedule(next: next)
    }

    /// delay = min(initial × multiplier^(n−1), max), spread by ±jitter; `u` uniform in [0, 1).
    public static func backoffDelay(level n: Int, settings: BackoffSettings, jitter u: Double) -> Double {
        let initial = settings.initial.asSeconds, cap = settings.max.asSeconds
        let exponent = Double(max(n, 1) - 1)
        let raw = min(initial * pow(settings.multiplier, exponent), cap)
        let spread = settings.jitter * (2 * u - 1)
        return max(0, raw * (1 + spread))
    }

    /// `POST /trigger`: starts a run as soon as a slot is free.
    public mutating func trigger(dryRun: Bool) -> TriggerAnswer {
        switch state {
        case .running, .stopped: return .alreadyRunning
        case .disabled: return .disabled
        case .idle, .backoff, .waiting:
            if pendingTrigger != nil { return .alreadyQueued }
            pendingTrigger = dryRun
            return .accepted
        }
    }

    /// A reloaded configuration. A running run finishes under the old one; the new schedule
    /// applies from now.
    public mutating func reconfigure(schedule: Schedule, enabled: Bool, now: Date) {
        let scheduleChanged = schedule != self.schedule
        self.schedule = schedule
        self.enabled = enabled
        switch state {
        case .running, .stopped:
            break
        case .disabled:
            if enabled {
                state = .idle
                nextScheduled = schedule.firstRun(now: now, runOnStart: false)
            }
        case .idle, .waiting, .backoff:
            if !enabled {
                state = .disabled
                nextScheduled = nil
                pendingTrigger = nil
                backoffSeconds = 0
            } else if scheduleChanged {
                nextScheduled = schedule.firstRun(now: now, runOnStart: false)
            }
        }
        if case .running = state, !enabled { nextScheduled = nil }
    }

    /// Shutdown: no more runs.
    public mutating func stop() {
        state = .stopped
        pendingTrigger = nil
        nextScheduled = nil
    }
}

/// The machine's answer to a trigger (the endpoint maps it to 202 / 409 / 404).
public enum TriggerAnswer: Sendable, Hashable {
    case accepted
    /// A trigger is already waiting for a slot: the same run will serve both.
    case alreadyQueued
    case alreadyRunning
    case disabled
}
