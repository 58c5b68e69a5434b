import Foundation
import Manual

// sudosos-sync-manual: writes the manual pages (scripts/manual, scripts/package).
//   sudosos-sync-manual config DATE VERSION             sudosos-sync.yaml(5) on stdout
//   sudosos-sync-manual command VERSION GENERATED       sudosos-sync(8) on stdout, from the
//                                                       page generate-manual wrote to GENERATED
// DATE is yyyy-mm-dd. Not installed: a build tool.
let arguments = Array(CommandLine.arguments.dropFirst())
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("sudosos-sync-manual: \(message)\n".utf8))
    exit(1)
}
do {
    switch (arguments.first, arguments.count) {
    case ("config", 3):
        print(try ConfigurationPage.render(date: arguments[1], version: arguments[2]), terminator: "")
    case ("command", 3):
        let generated = try String(contentsOfFile: arguments[2], encoding: .utf8)
        print(try CommandPage.complete(generated: generated, version: arguments[1]), terminator: "")
    default:
        fail("usage: sudosos-sync-manual config DATE VERSION | command VERSION GENERATED")
    }
} catch {
    fail("\(error)")
}
