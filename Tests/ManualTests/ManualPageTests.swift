import Foundation
import Manual
import Testing
import TestKit
@testable import SyncEngine

/// The manual pages: `sudosos-sync.yaml(5)` lists exactly the keys the loader accepts, and
/// `sudosos-sync(8)` (swift-argument-parser's generate-manual on the real binary, completed by
/// `CommandPage`) every command, exit code, signal, file and variable; both pass man's checks.
@Suite struct ManualPageTests {
    /// The keys of `ConfigurationSchema` (what `check-config` accepts) each have a text, and the
    /// reference documents no key the loader lacks.
    @Test func everyKeyOfTheLoaderHasAText() {
        #expect(ConfigurationReference.undocumented == [])
        #expect(ConfigurationReference.unknown == [])
    }

    /// Guards against a key added to the loader but missing from the page: the items of the
    /// page's KEYS section, read back per `.Ss` heading (`services.SERVICE` standing for every
    /// service), are exactly the loader's keys.
    @Test func theConfigurationPageListsExactlyTheLoadersKeys() throws {
        let page = try ConfigurationPage.render(date: "2026-12-03", version: "9.9.9")
        var listed: Set<String> = []
        var section: String?
        var inKeys = false
        for line in page.split(separator: "\n").map(String.init) {
            if line.hasPrefix(".Sh ") { inKeys = line == ".Sh KEYS" }
            guard inKeys else { continue }
            if line.hasPrefix(".Ss ") { section = String(line.dropFirst(4)) }
            if line.hasPrefix(".It Cm "), let section {
                let name = String(line.dropFirst(7).split(separator: " ")[0])
                if section == "services.SERVICE" {
                    for service in ConfigurationSchema.serviceNames { listed.insert("services.\(service).\(name)") }
                } else {
                    listed.insert("\(section).\(name)")
                }
            }
        }
        let accepted = Set(ConfigurationSchema.leaves.keys)
        #expect(accepted.subtracting(listed).sorted() == [], "keys the loader accepts that the page lacks")
        #expect(listed.subtracting(accepted).sorted() == [], "keys on the page the loader rejects")
        // Every variable and credential file that sets a key is named too.
        for variable in ConfigurationSchema.namedVariables {
            #expect(page.contains(".It Ev \(variable.name)\n\(variable.path)\n"), "\(variable.name)")
        }
        for credential in ConfigurationSchema.credentials {
            #expect(page.contains(".It Pa $CREDENTIALS_DIRECTORY/\(credential.name)\n\(credential.path);"), "\(credential.name)")
        }
        for path in accepted {
            #expect(page.contains(ConfigurationSchema.variableName(of: path)), "\(path)'s generic variable")
        }
        try Self.checkWithMan(page, name: "sudosos-sync.yaml.5")
    }

    /// generate-manual on the built binary, completed: every visible command and its options,
    /// `--version`, every exit code of `SyncEngine.ExitCode`, the signals, files and variables.
    @Test func theCommandPageHasCommandsExitCodesSignalsFilesAndEnvironment() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("manual-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let generated = try runProcess(
            TestEnvironment.executable("generate-manual"),
            [TestEnvironment.executable("sudosos-sync"), "--section", "8", "--date", "2026-12-03", "-o", work.path])
        #expect(generated.status == 0, "generate-manual (scripts/test builds it): \(generated.stderr)")
        let text = try String(contentsOf: work.appendingPathComponent("sudosos-sync.8"), encoding: .utf8)
        let page = try CommandPage.complete(generated: text, version: "9.9.9")
        let lines = page.split(separator: "\n").map(String.init)
        for command in ["once", "check-config", "run", "status", "trigger"] {
            #expect(lines.contains(".It Em \(command)"), "command \(command)")
        }
        for option in [".It Fl -dry-run", ".It Fl -json", ".It Fl -reveal", ".It Fl -connect", ".It Fl -config Ar file",
                       ".It Fl -url Ar url", ".It Fl -version"] {
            #expect(lines.contains(option), "\(option)")
        }
        let sections = lines.filter { $0.hasPrefix(".Sh ") }
        #expect(sections == [".Sh NAME", ".Sh SYNOPSIS", ".Sh DESCRIPTION", ".Sh SIGNALS", ".Sh ENVIRONMENT", ".Sh FILES",
                             ".Sh EXIT STATUS", ".Sh EXAMPLES", ".Sh SEE ALSO"])
        let exitStatus = try #require(lines.firstIndex(of: ".Sh EXIT STATUS"))
        let codes = lines[exitStatus...].prefix { $0 != ".El" }.filter { $0.hasPrefix(".It ") }.map { $0.dropFirst(4) }
        #expect(codes == ExitCode.allCases.map { "\($0.rawValue)"[...] })
        for name in ["SIGTERM", "SIGHUP", "SUDOSOS_SYNC_CONFIG", "SUDOSOS_SYNC_LOG_LEVEL", "CREDENTIALS_DIRECTORY",
                     "/etc/sudosos-sync/config.yaml", "/etc/credstore/"] {
            #expect(page.contains(name), "\(name)")
        }
        #expect(lines.contains(".Os sudosos-sync 9.9.9"))
        try Self.checkWithMan(page, name: "sudosos-sync.8")
    }

    /// The unit's `Documentation=` names exactly the two pages generated here.
    @Test func theUnitLinksBothPages() throws {
        let unit = try String(
            contentsOf: TestEnvironment.repositoryRoot.appendingPathComponent("systemd/sudosos-sync.service"), encoding: .utf8)
        #expect(unit.split(separator: "\n").contains("Documentation=man:sudosos-sync(8) man:sudosos-sync.yaml(5)"))
        let page = try ConfigurationPage.render(date: "2026-12-03", version: "9.9.9")
        #expect(page.contains("\n.Dt SUDOSOS-SYNC.YAML 5\n") && page.contains("\n.Nm sudosos-sync.yaml\n"))
    }

    /// What lintian runs on a page (man-db's `man --warnings`, groff underneath): no warning.
    static func checkWithMan(_ page: String, name: String) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString)-\(name)")
        try page.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let man = try runProcess(
            "/usr/bin/man", ["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", file.path],
            environment: ["LC_ALL": "C.UTF-8", "MANWIDTH": "80", "PATH": "/usr/bin:/bin", "MANROFFSEQ": ""])
        #expect(man.status == 0, "\(man.stderr)")
        #expect(man.stderr == "", "man --warnings on \(name): \(man.stderr)")
    }
}
