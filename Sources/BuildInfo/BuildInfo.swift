/// What this binary was built from: `sudosos-sync --version`, the labels of
/// `sudosos_sync_build_info` and the status page. The values come from
/// `Plugins/BuildInfoPlugin` at build time: the `VERSION` file, the git revision, the compiler.
public struct BuildInfo: Sendable, Equatable {
    /// The release version (`VERSION`), e.g. `0.1.0`.
    public var version: String
    /// The git revision (12 hex digits, `-dirty` when the tree had uncommitted changes), or
    /// `unknown` when built without git.
    public var revision: String
    /// The Swift compiler version, e.g. `6.3.1`.
    public var swiftVersion: String

    public init(version: String, revision: String, swiftVersion: String) {
        self.version = version
        self.revision = revision
        self.swiftVersion = swiftVersion
    }

    /// The build of this binary.
    public static let current = BuildInfo(
        version: generatedVersion, revision: generatedRevision, swiftVersion: generatedSwiftVersion)

    /// The line `--version` prints: `sudosos-sync 0.1.0 (revision 0123456789ab, Swift 6.3.1)`.
    public var versionLine: String {
        "sudosos-sync \(version) (revision \(revision), Swift \(swiftVersion))"
    }
}
