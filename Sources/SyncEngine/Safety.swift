/// The deletion threshold: a plan that would remove too much is refused, nothing is written,
/// and a human decides (as Entra Connect's deletion threshold does).
public struct DeletionThreshold: Sendable, Codable, Hashable {
    /// At most this many removals per run.
    public var maxDeletions: Int
    /// At most this share of the synced population per run (0...1).
    public var maxRatio: Double

    public init(maxDeletions: Int = 50, maxRatio: Double = 0.10) {
        self.maxDeletions = maxDeletions
        self.maxRatio = maxRatio
    }

    public enum Verdict: Sendable, Hashable {
        case allowed
        /// Refused, with one line saying which limit was exceeded and by how much.
        case refused(String)
    }

    /// Checks the removals of `plan` against both limits. A plan that removes the whole
    /// (non-empty) population is always refused: an empty source answer never removes everyone.
    public func check(_ plan: Plan) -> Verdict {
        let removals = plan.removals.count
        guard removals > 0 else { return .allowed }
        if removals > maxDeletions {
            return .refused("\(removals) removals exceed max_deletions \(maxDeletions)")
        }
        if plan.population > 0 {
            let ratio = Double(removals) / Double(plan.population)
            if ratio > maxRatio {
                let shown = (ratio * 1000).rounded() / 10
                return .refused(
                    "\(removals) removals are \(shown)% of \(plan.population), over max_deletion_ratio \(maxRatio)")
            }
        }
        if removals >= plan.population {
            return .refused("\(removals) removals would remove the whole synced population of \(plan.population)")
        }
        return .allowed
    }
}
