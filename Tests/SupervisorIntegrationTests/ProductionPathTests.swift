import Foundation
import Testing
import TestKit

#if canImport(Glibc)
import Glibc
#endif

extension SupervisorProcessSuites {
    /// `sudosos-sync run` with a real YAML configuration (the real worker): it gets its
    /// configuration over descriptor 4 and runs the real one-run path.
    @Suite struct ProductionPathTests {
        /// The database is unreachable: the worker's run path fails with 69, the supervisor
        /// records a failure and backs off. Secrets given to the supervisor never reach a log
        /// line, and the child's environment carries none.
        @Test func workerRunsTheRealRunPath() async throws {
            let sup = try SupervisorHarness(
                config: """
                    database:
                      url: postgresql://sudosos@127.0.0.1:1/sudosos
                      connect_timeout: 2s
                    metrics:
                      listen: 127.0.0.1:0
                    supervisor:
                      shutdown_timeout: 3s
                      backoff: { initial: 1s, max: 2s, multiplier: 2, jitter: 0, reset_after: 10m }
                    services:
                      ldap:
                        enabled: true
                        interval: 1h
                        run_on_start: true
                        timeout: 20s
                        server_url: ldap://127.0.0.1:1
                        base: dc=example,dc=org
                        bind_user: cn=sync,dc=example,dc=org
                        guid_attribute: entryUUID
                        nested_groups: member_attribute
                    """,
                environment: ["LDAP_BIND_PW": "pw-not-for-logs-7731", "TYPEORM_PASSWORD": "db-pw-not-for-logs-5521"])
            try await sup.waitForLog("ldap: run ended: failure (exit 69", timeout: .seconds(30))
            try await sup.waitForLog("ldap: retry in 1s")
            try await sup.waitForLog("ldap: run started (retry", timeout: .seconds(10))
            sup.signal(SIGTERM)
            #expect(try await sup.waitForExit() == 0)
            #expect(!sup.log.contains("pw-not-for-logs-7731"))
            #expect(!sup.log.contains("db-pw-not-for-logs-5521"))
        }

        @Test func badConfigurationExits78() async throws {
            let sup = try SupervisorHarness(
                config: """
                    services:
                      ldap:
                        enabled: true
                        schedule: "61 * * * *"
                    """)
            #expect(try await sup.waitForExit() == 78)
            #expect(sup.log.contains("minute"))
        }
    }
}
