import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The standard `process_*` metrics of the calling process, read from `/proc` each time
/// `render(into:)` runs (so a scrape sees the values of that instant).
///
/// Names, types and units follow the Prometheus client libraries (client_golang's process
/// collector), so stock dashboards and alerts work.
enum ProcessMetrics {
    /// Kernel clock ticks per second (`sysconf(_SC_CLK_TCK)`), for `/proc/self/stat` times.
    static let ticksPerSecond: Double = {
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? Double(ticks) : 100
    }()

    /// Bytes per page, for the resident set size in pages.
    static let pageSize: Double = {
        let size = sysconf(Int32(_SC_PAGESIZE))
        return size > 0 ? Double(size) : 4096
    }()

    /// The boot time, seconds since the epoch: the wall clock less the time since boot
    /// (`CLOCK_BOOTTIME`, the clock the start ticks of `/proc/self/stat` count on); read once.
    /// Not `btime` of `/proc/stat`: the shipped unit's private /proc (`ProcSubset=pid`) hides
    /// it, and `process_start_time_seconds` was 0 there.
    static let bootTime: Double? = {
        var real = timespec()
        var boot = timespec()
        guard clock_gettime(CLOCK_REALTIME, &real) == 0, clock_gettime(CLOCK_BOOTTIME, &boot) == 0 else { return nil }
        return (Double(real.tv_sec) - Double(boot.tv_sec)) + (Double(real.tv_nsec) - Double(boot.tv_nsec)) / 1e9
    }()

    /// One reading of the process metrics.
    struct Sample: Equatable {
        var cpuSeconds: Double
        var residentBytes: Double
        var startTimeSeconds: Double
        var openFDs: Double
        var maxFDs: Double
    }

    /// The process's start time: boot time plus the start ticks of `/proc/self/stat` (it never
    /// changes, so it is read once).
    static let startTimeSeconds: Double? = {
        guard let stat = readSmallFile("/proc/self/stat"), let fields = statFields(stat), fields.count > 19,
            let startTicks = Double(fields[19]), let bootTime
        else { return nil }
        // Fields after "(comm)": index 0 is field 3 (state), so starttime (field 22) is 19.
        return bootTime + startTicks / ticksPerSecond
    }()

    /// Reads the values of this instant: CPU time (`getrusage`, the counters behind
    /// `/proc/self/stat`'s utime and stime, in microseconds), resident pages from
    /// `/proc/self/statm`, open descriptors from `/proc/self/fd`, and the open-files limit.
    /// Nil when `/proc` is not there (then no process metrics are rendered).
    static func sample() -> Sample? {
        guard let statm = readSmallFile("/proc/self/statm") else { return nil }
        let pages = statm.split(separator: " ", maxSplits: 2)
        guard pages.count > 1, let residentPages = Double(pages[1]) else { return nil }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cpu =
            Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
        var limit = rlimit()
        let maxFDs = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Double(limit.rlim_cur) : 0
        return Sample(
            cpuSeconds: cpu,
            residentBytes: residentPages * pageSize,
            startTimeSeconds: startTimeSeconds ?? 0,
            openFDs: Double(countOpenFDs()),
            maxFDs: maxFDs
        )
    }

    /// Appends the five `process_*` families in the text format.
    static func render(into buffer: inout [UInt8]) {
        guard let sample = sample() else { return }
        append(
            &buffer, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
            sample.cpuSeconds)
        append(
            &buffer, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", sample.residentBytes)
        append(
            &buffer, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
            sample.startTimeSeconds)
        append(&buffer, "process_open_fds", "gauge", "Number of open file descriptors.", sample.openFDs)
        append(&buffer, "process_max_fds", "gauge", "Maximum number of open file descriptors.", sample.maxFDs)
    }

    private static func append(_ buffer: inout [UInt8], _ name: String, _ type: String, _ help: String, _ value: Double)
    {
        buffer.append(contentsOf: "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n".utf8)
    }

    /// The space-separated fields after the command name of `/proc/self/stat`; the name is in
    /// parentheses and may itself hold spaces and parentheses, so split after the last `)`.
    static func statFields(_ stat: String) -> [Substring]? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
    }

    /// Open file descriptors. Linux 6.2 and later report their number as the size of
    /// `/proc/self/fd` (one `lstat`); older kernels report 0 there, and the entries are counted.
    static func countOpenFDs() -> Int {
        var info = stat()
        if lstat("/proc/self/fd", &info) == 0, info.st_size > 0 { return Int(info.st_size) }
        return listOpenFDs()
    }

    /// Entries of `/proc/self/fd`, less the one the listing itself holds open.
    static func listOpenFDs() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                raw.first == UInt8(ascii: ".")
            }
            if !isDot { count += 1 }
        }
        return max(count - 1, 0)
    }

    /// Reads a small /proc file with plain POSIX calls (procfs reports size 0, so read until EOF).
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
