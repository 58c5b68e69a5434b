import Foundation
import Testing
import TestKit

/// `sudosos-sync --generate-completion-script` driven by the real shells: bash (the completion
/// function with COMP_WORDS), fish (`complete -C`) and zsh (an interactive shell in a pty, its
/// `compadd` recording what it offers). Each must offer the service names after `once` and
/// `trigger`, and only YAML files (and folders) after `--config`.
@Suite(.serialized) struct CompletionTests {
    /// The shells' working folder, `url`: a YAML file, a .yml file, a text file and a
    /// subfolder; the scripts live apart, in `tools`.
    final class Folder {
        let root: URL
        let url: URL
        let tools: URL
        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("completion-\(UUID().uuidString)")
            url = root.appendingPathComponent("work")
            tools = root.appendingPathComponent("tools")
            try FileManager.default.createDirectory(at: url.appendingPathComponent("sub"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: tools.appendingPathComponent("functions"), withIntermediateDirectories: true)
            for file in ["site.yaml", "other.yml", "notes.txt"] {
                try Data().write(to: url.appendingPathComponent(file))
            }
        }
        deinit { try? FileManager.default.removeItem(at: root) }

        /// Writes a script into `tools`.
        func write(_ text: String, _ name: String) throws -> String {
            let file = tools.appendingPathComponent(name)
            try text.write(to: file, atomically: true, encoding: .utf8)
            return file.path
        }
    }

    static func script(_ shell: String) throws -> String {
        let result = try runProcess(TestEnvironment.executable("sudosos-sync"), ["--generate-completion-script", shell])
        #expect(result.status == 0, "\(result.stderr)")
        return result.stdout
    }

    /// Runs `shell` with `arguments` in `folder`, returns the sorted non-empty lines it printed.
    static func offered(_ shell: String, _ arguments: [String], in folder: Folder) throws -> [String] {
        let result = try runProcess("/usr/bin/env", ["-C", folder.url.path, shell] + arguments,
                                    environment: ["PATH": "/usr/bin:/bin", "HOME": folder.url.path, "TERM": "dumb"])
        #expect(result.status == 0, "\(shell): \(result.stderr)")
        return result.stdout.split(separator: "\n").map { String($0.split(separator: "\t")[0]) }.sorted()
    }

    static let lines = ["sudosos-sync once ", "sudosos-sync trigger g", "sudosos-sync once ldap --config ", "sudosos-sync tri"]
    static let expected: [[String]] = [["gewisdb", "ldap"], ["gewisdb"], ["other.yml", "site.yaml", "sub"], ["trigger"]]

    @Test func bashOffersServicesAndYAMLFiles() throws {
        let folder = try Folder()
        let script = try folder.write(try Self.script("bash"), "sudosos-sync.bash")
        for (line, expected) in zip(Self.lines, Self.expected) {
            let driver = """
                source \(script)
                COMP_LINE='\(line)'; COMP_POINT=${#COMP_LINE}
                read -ra COMP_WORDS <<< "$COMP_LINE"; [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')
                COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
                _sudosos-sync sudosos-sync "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
                printf '%s\\n' "${COMPREPLY[@]}"
                """
            #expect(try Self.offered("bash", ["--norc", "-c", driver], in: folder) == expected, "bash: \(line)")
        }
    }

    @Test func fishOffersServicesAndYAMLFiles() throws {
        let folder = try Folder()
        let script = try folder.write(try Self.script("fish"), "sudosos-sync.fish")
        for (line, expected) in zip(Self.lines, Self.expected) {
            let offered = try Self.offered("fish", ["--no-config", "-c", "source \(script); complete -C '\(line)'"], in: folder)
            #expect(offered.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } == expected, "fish: \(line)")
        }
    }

    /// zsh runs interactively in a pty (zsh/zpty): `compinit` loads the script from `fpath` as
    /// an installed `_sudosos-sync` would be, a wrapped `compadd` prints each offered match,
    /// and the driver waits for a marker printed after the completion (no sleeps).
    @Test func zshOffersServicesAndYAMLFiles() throws {
        let folder = try Folder()
        let functions = folder.tools.appendingPathComponent("functions")
        _ = try folder.write(try Self.script("zsh"), "functions/_sudosos-sync")
        let driver = try folder.write(Self.zshDriver, "capture.zsh")
        for (line, expected) in zip(Self.lines, Self.expected) {
            let offered = try Self.offered("zsh", ["-f", driver, functions.path, line], in: folder)
            #expect(offered == expected, "zsh: \(line)")
        }
    }

    static let zshDriver = #"""
        zmodload zsh/zpty
        dir=$1 line=$2
        zpty z zsh -f -i
        zpty -w z "PS1=''; fpath=($dir \$fpath); autoload -U compinit; compinit -u -D"
        zpty -w z 'compadd () { local -a __hits; builtin compadd -O __hits "$@"; (( ${#__hits} )) && print -l -- "<hit>"${^__hits}; builtin compadd "$@" }'
        zpty -w z "print '<ready>'"
        zpty -r -m z out '*<ready>*' || exit 2
        zpty -w -n z "$line"$'\t'
        zpty -w z $'\C-u'"print '<done>'"
        zpty -r -m z out '*<done>*' || exit 3
        print -r -- "$out" | grep -a -o '<hit>[^[:cntrl:]]*' | sed 's/<hit>//' | sort -u
        """#
}
