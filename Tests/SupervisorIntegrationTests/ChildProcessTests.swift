import Foundation
import SyncEngine
import Testing

@testable import Supervisor

#if canImport(Glibc)
import Glibc
#endif

extension SupervisorProcessSuites {
    /// The spawn shim with plain shell children.
    @Suite struct ChildProcessTests {
        /// Runs `script` under /bin/sh through the shim; returns its exit and stdout.
        func run(_ script: String, limits: ResourceLimits = ResourceLimits(), environment: [String: String] = ["PATH": "/usr/bin:/bin"])
            throws -> (ChildExit, String)
        {
            let child = try ChildProcess.spawn(
                executable: "/bin/sh", arguments: ["sh", "-c", script], environment: environment, limits: limits)
            var output: [UInt8] = []
            var exit: ChildExit?
            let deadline = Date().addingTimeInterval(10)
            while exit == nil && Date() < deadline {
                var fds = [pollfd(fd: child.pidfd, events: Int16(POLLIN), revents: 0), pollfd(fd: child.stdoutFD, events: Int16(POLLIN), revents: 0)]
                _ = poll(&fds, 2, 100)
                if let bytes = ChildProcess.readAvailable(child.stdoutFD) { output += bytes }
                exit = child.reap()
            }
            while let bytes = ChildProcess.readAvailable(child.stdoutFD), !bytes.isEmpty { output += bytes }
            child.closeDescriptors()
            return (try #require(exit), String(decoding: output, as: UTF8.self))
        }

        /// "Could not spawn" is told apart from "ran and failed" (the exec-error pipe).
        @Test func spawnFailureIsNotARunFailure() throws {
            #expect {
                try ChildProcess.spawn(executable: "/nonexistent/worker", arguments: ["x"], environment: [:], limits: ResourceLimits())
            } throws: { error in
                (error as? SpawnError)?.step == "execve" && (error as? SpawnError)?.errno == ENOENT
            }
            let (exit, _) = try run("exit 3")
            #expect(exit.code == 3 && exit.signal == nil)
        }

        @Test func signalAndRusageAreRecorded() throws {
            let (exit, _) = try run("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; kill -9 $$")
            #expect(exit.signal == 9 && exit.code == nil)
            #expect(exit.cpuSeconds > 0)
            #expect(exit.maxRSSBytes > 100_000)
        }

        /// Guards against descriptor leaks into children: only 0, 1, 2 and the result pipe.
        @Test func onlyStandardDescriptorsAndTheResultPipe() throws {
            let leak = open("/dev/null", O_RDONLY)  // not O_CLOEXEC: the shim must still close it
            defer { close(leak) }
            let (_, out) = try run("ls /proc/$$/fd; readlink /proc/$$/fd/0")
            let lines = out.split(separator: "\n").map(String.init)
            #expect(Set(lines.dropLast()).isSubset(of: ["0", "1", "2", "3", "255"]), "\(lines)")
            #expect(lines.last == "/dev/null")
        }

        @Test func limitsSessionAndEnvironment() throws {
            let (_, out) = try run(
                "ulimit -n; ulimit -t; ulimit -v; ps -o sid= -o pgid= -p $$ 2>/dev/null || cut -d' ' -f6,5 /proc/$$/stat; echo $$; env | sort",
                limits: ResourceLimits(memoryBytes: 512 * 1024 * 1024, cpuSeconds: 30, openFiles: 77),
                environment: ["PATH": "/usr/bin:/bin", "ONLY": "this"])
            let lines = out.split(separator: "\n").map(String.init)
            #expect(lines[0] == "77")
            #expect(lines[1] == "30")
            #expect(lines[2] == "524288")
            let ids = lines[3].split(separator: " ").map(String.init)
            #expect(ids.count == 2 && ids[0] == ids[1] && ids[0] == lines[4], "session and group led by the child: \(lines)")
            #expect(lines.contains("ONLY=this"))
            #expect(!lines.contains { $0.hasPrefix("HOME=") })
        }
    }
}
