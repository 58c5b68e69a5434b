import Testing

/// Every suite of this target that starts processes runs inside this one, one test at a
/// time: they measure timing (backoff, timeouts, watchdog rhythm) and must not compete with
/// each other for the machine's two cores.
@Suite(.serialized) enum SupervisorProcessSuites {}
