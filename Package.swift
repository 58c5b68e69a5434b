// swift-tools-version:6.1
// sudosos-sync: keeps SudoSOS users in step with GEWISDB and LDAP / Active Directory.
//
// Module map (see docs/architecture.md):
//   SyncEngine     pure values: SudoSOS rows, plans, validation, safety, reports, configuration, runner
//   SudoSOSStore   MariaDB/MySQL (Connector/C) and PostgreSQL (libpq): snapshot, apply in one
//                  transaction, audit, per-service locks
//   LDAPSource     libldap client + the `ldap` sync service
//   GEWISDBSource  GEWISDB HTTP client + the `gewisdb` sync service
//   Supervisor     schedules, backoff state machine, isolated child processes, sd_notify
//   Observability  Prometheus registry, /proc process metrics, the HTTP endpoint
//   BuildInfo      version, git revision, Swift version of the build (Plugins/BuildInfoPlugin)
//   sudosos-sync   the command line
//   gewisdb-fake   a GEWISDB API server for tests and the local demo
//   Manual         the manual pages (sudosos-sync-manual, scripts/manual)
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "sudosos-sync",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sudosos-sync", targets: ["sudosos-sync"]),
        .executable(name: "gewisdb-fake", targets: ["gewisdb-fake"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        // MARK: C libraries (thin, one modulemap each)
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CMariaDB", pkgConfig: "libmariadb", providers: [.apt(["libmariadb-dev"])]),
        .systemLibrary(name: "CLDAP", pkgConfig: "ldap", providers: [.apt(["libldap2-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(name: "CProcessSpawn", cSettings: [.define("_GNU_SOURCE")]),

        // MARK: Build information
        // BuildInfo: the version (VERSION), git revision and Swift version of this build,
        // written before every build by BuildInfoPlugin (a prebuild `sh` command).
        .plugin(name: "BuildInfoPlugin", capability: .buildTool()),
        .target(name: "BuildInfo", swiftSettings: swiftSettings, plugins: ["BuildInfoPlugin"]),

        // MARK: Modules
        .target(
            name: "SyncEngine",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SudoSOSStore",
            dependencies: ["SyncEngine", "CLibPQ", "CMariaDB", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "LDAPSource",
            dependencies: ["SyncEngine", "CLDAP", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GEWISDBSource",
            dependencies: ["SyncEngine", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Observability",
            dependencies: [
                "SyncEngine",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Supervisor",
            dependencies: [
                "SyncEngine", "Observability", "CSystemd", "CProcessSpawn",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sudosos-sync",
            dependencies: [
                "SyncEngine", "SudoSOSStore", "LDAPSource", "GEWISDBSource", "Supervisor", "Observability", "BuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "gewisdb-fake",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // The manual pages: sudosos-sync.yaml(5) from the configuration's own tables, and the
        // sections of sudosos-sync(8) that swift-argument-parser's generate-manual cannot know.
        // A build tool (scripts/manual), not installed.
        .target(name: "Manual", dependencies: ["SyncEngine"], swiftSettings: swiftSettings),
        .executableTarget(name: "sudosos-sync-manual", dependencies: ["Manual"], swiftSettings: swiftSettings),

        // endpoint-demo: the HTTP endpoint with real metrics fed by simulated runs, for the
        // Prometheus end-to-end test, the status page screenshot and the /metrics benchmark.
        .executableTarget(
            name: "endpoint-demo",
            dependencies: ["Observability", "SyncEngine", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),

        // gewisdb-bench: members checked per second against gewisdb-fake (bench/gewisdb-bench.sh).
        .executableTarget(
            name: "gewisdb-bench",
            dependencies: ["GEWISDBSource", "SyncEngine"],
            path: "bench/gewisdb-bench",
            swiftSettings: swiftSettings
        ),

        // MARK: Test support and tests
        // TestKit: helpers shared by the integration tests (service endpoints from the
        // environment that scripts/test sets, throwaway databases, child processes, waiting
        // on conditions with deadlines).
        .target(
            name: "TestKit",
            dependencies: ["SyncEngine", "SudoSOSStore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SyncEngineTests", dependencies: ["SyncEngine"], swiftSettings: swiftSettings),
        .testTarget(name: "SupervisorTests", dependencies: ["Supervisor"], swiftSettings: swiftSettings),
        .testTarget(name: "LDAPSourceTests", dependencies: ["LDAPSource", "SyncEngine"], swiftSettings: swiftSettings),
        .testTarget(
            name: "StoreIntegrationTests",
            dependencies: ["SyncEngine", "SudoSOSStore", "TestKit"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LDAPIntegrationTests",
            dependencies: ["SyncEngine", "SudoSOSStore", "LDAPSource", "TestKit"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "GEWISDBTests", dependencies: ["GEWISDBSource", "SyncEngine"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GEWISDBIntegrationTests",
            dependencies: ["SyncEngine", "SudoSOSStore", "GEWISDBSource", "TestKit"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SupervisorIntegrationTests",
            dependencies: ["Supervisor", "TestKit"],
            swiftSettings: swiftSettings
        ),
        // CommandLineTests: runs the built `sudosos-sync` binary (exit codes, messages, no leaks).
        .testTarget(
            name: "CommandLineTests",
            dependencies: ["SyncEngine", "TestKit"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ManualTests",
            dependencies: ["Manual", "SyncEngine", "TestKit"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ObservabilityTests",
            dependencies: ["Observability", "TestKit", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
    ]
)
