import Foundation
import SyncEngine

/// What the `gewisdb` service read from GEWISDB in one run: the answer per member number and
/// the moment it was read (the "now" that decides expiry, from the service's clock).
public struct GEWISDBAnswers: Sendable, Hashable {
    public var checkedAt: Date
    /// By member number.
    public var answers: [Int: MemberAnswer]

    public init(checkedAt: Date, answers: [Int: MemberAnswer]) {
        self.checkedAt = checkedAt
        self.answers = answers
    }
}

extension GEWISDBClient {
    /// Reads every member in `lidnrs` with at most `concurrency` requests in flight.
    ///
    /// Fails the run (`SyncError.failed`) as soon as more than `maxFailedRatio` of all members
    /// have failed requests (connection errors, timeouts, 5xx, and 200 answers that are not a
    /// member, each after its retries): a flaky API must not close members one by one. Fails
    /// (`SyncError.unavailable`) when the run's deadline passes before every member is read. Fails at once
    /// (`SyncError.unavailable`) when GEWISDB refuses the key. Heartbeats every two seconds.
    public func fetchMembers(
        _ lidnrs: [Int], concurrency: Int, maxFailedRatio: Double, context: RunContext
    ) async throws -> [Int: MemberAnswer] {
        let total = lidnrs.count
        guard total > 0 else { return [:] }
        let reporter = context.reporter
        let allowedFailures = Double(total) * max(0, maxFailedRatio)
        return try await withThrowingTaskGroup(of: (Int, MemberAnswer).self) { group in
            var pending = lidnrs.makeIterator()
            func startNext() {
                guard let lidnr = pending.next() else { return }
                group.addTask { (lidnr, try await self.member(lidnr, reporter: reporter)) }
            }
            for _ in 0..<max(1, concurrency) { startNext() }

            var answers: [Int: MemberAnswer] = [:]
            answers.reserveCapacity(total)
            var failed = 0
            var firstFailure: String?
            let clock = ContinuousClock()
            var lastBeat = clock.now
            while let (lidnr, answer) = try await group.next() {
                answers[lidnr] = answer
                let problem: String?
                switch answer {
                case .failed(let text), .unparsable(let text): problem = text
                case .found, .notFound: problem = nil
                }
                if let problem {
                    failed += 1
                    if firstFailure == nil { firstFailure = "member \(lidnr): \(problem)" }
                }
                // Out of time (a GEWISDB that stopped answering): unreachable, whatever the ratio says.
                if let deadline = self.deadline, deadline.remaining <= .zero, answers.count < total {
                    group.cancelAll()
                    throw SyncError.unavailable(
                        "GEWISDB did not answer every member within services.gewisdb.timeout "
                            + "(\(RunDeadline.describe(deadline.timeout))): \(answers.count) of \(total) requests had ended, so nothing is written"
                            + (firstFailure.map { "; first failure: \($0)" } ?? ""))
                }
                if problem != nil {
                    if Double(failed) > allowedFailures {
                        group.cancelAll()
                        let share = (Double(failed) / Double(total) * 1000).rounded() / 10
                        throw SyncError.failed(
                            "GEWISDB: \(failed) of \(total) member requests failed (\(share)%, more than max_failed_ratio "
                                + "\(maxFailedRatio)), so nothing is written; first: \(firstFailure ?? "")")
                    }
                }
                if clock.now - lastBeat >= .seconds(2) {
                    reporter.heartbeat(phase: "fetch \(answers.count)/\(total)")
                    lastBeat = clock.now
                }
                startNext()
            }
            return answers
        }
    }
}
