import Foundation
import Yams

/// Builds the `Configuration` from, in rising precedence:
/// 1. the YAML file (`--config`, else `SUDOSOS_SYNC_CONFIG`, else `/etc/sudosos-sync/config.yaml`
///    if it exists);
/// 2. environment variables: the seed's aliases, then the SudoSOS backend's names (`LDAP_*`,
///    `GEWISDB_*`, `TYPEORM_*`), then `SUDOSOS_SYNC_<KEY PATH>` for every key;
/// 3. secrets from files in `$CREDENTIALS_DIRECTORY` (one trailing newline stripped).
///
/// Every problem (unknown key, bad value, bad cron expression, missing required key) becomes
/// one line naming the key path and, when a variable set it, the variable; values of secrets are
/// never shown. `load()` throws the first as `SyncError.configuration` (exit 78); `check()` lists
/// them all. See docs/configuration.md.
public struct ConfigurationLoader: Sendable {
    /// Where the file is looked for when neither `--config` nor `SUDOSOS_SYNC_CONFIG` names one.
    public static let defaultPath = "/etc/sudosos-sync/config.yaml"

    /// `--config`, if given.
    public var path: String?
    /// The process environment (or a test's).
    public var environment: [String: String]

    public init(path: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.path = path
        self.environment = environment
    }

    /// The result of reading and checking the configuration.
    public struct Check: Sendable {
        /// The configuration as far as it could be read (defaults where a value was bad).
        public var configuration: Configuration
        /// One line per problem; empty when the configuration is valid.
        public var problems: [String]
        /// The file that was read, if any.
        public var file: String?
    }

    /// The file to read: the explicit one (flag or variable), or the default path if it exists.
    public var file: (path: String, explicit: Bool)? {
        if let path, !path.isEmpty { return (path, true) }
        if let path = environment["SUDOSOS_SYNC_CONFIG"], !path.isEmpty { return (path, true) }
        if FileManager.default.fileExists(atPath: Self.defaultPath) { return (Self.defaultPath, false) }
        return nil
    }

    /// Reads and checks everything; throws the first problem as `SyncError.configuration`.
    public func load() throws -> Configuration {
        let check = check()
        if let first = check.problems.first {
            let more = check.problems.count - 1
            let suffix = more == 0 ? "" : " (and \(more) more problem\(more == 1 ? "" : "s"); run sudosos-sync check-config)"
            throw SyncError.configuration(first + suffix)
        }
        return check.configuration
    }

    /// Reads and checks everything, collecting every problem.
    public func check() -> Check {
        var values = ConfigurationValues()
        var problems: [String] = []
        let file = self.file
        if let file {
            switch Self.readText(file.path) {
            case .success(let text): problems += Self.readYAML(text, file: file.path, into: &values)
            case .failure(let message): problems.append("\(file.path): \(message)")
            }
        }
        problems += Self.readEnvironment(environment, into: &values)
        problems += Self.readCredentials(environment, into: &values)
        let reader = ConfigurationReader(values: values)
        let configuration = ConfigurationDecoder(reader: reader).decode()
        return Check(configuration: configuration, problems: problems + reader.problems, file: file?.path)
    }

    /// Parses configuration text (YAML, or JSON, which is YAML) with `environment` overlaid;
    /// throws the first problem. For tests and for configurations handed over in memory.
    public static func parse(yaml: String, environment: [String: String] = [:], file: String = "config.yaml") throws
        -> Configuration
    {
        var values = ConfigurationValues()
        var problems = readYAML(yaml, file: file, into: &values)
        problems += readEnvironment(environment, into: &values)
        problems += readCredentials(environment, into: &values)
        let reader = ConfigurationReader(values: values)
        let configuration = ConfigurationDecoder(reader: reader).decode()
        if let first = (problems + reader.problems).first { throw SyncError.configuration(first) }
        return configuration
    }

    // MARK: - The file

    enum ReadResult {
        case success(String)
        case failure(String)
    }

    static func readText(_ path: String) -> ReadResult {
        guard FileManager.default.fileExists(atPath: path) else { return .failure("no such file") }
        guard let data = FileManager.default.contents(atPath: path) else { return .failure("cannot be read (permissions?)") }
        guard let text = String(data: data, encoding: .utf8) else { return .failure("is not UTF-8 text") }
        return .success(text)
    }

    /// Flattens the YAML document into `values`; returns the problems (syntax, unknown keys,
    /// a mapping where a value belongs, ...).
    static func readYAML(_ text: String, file: String, into values: inout ConfigurationValues) -> [String] {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            return ["\(file): \(describe(error))"]
        } catch {
            return ["\(file): is not valid YAML"]
        }
        guard let root else { return [] }  // an empty file: all defaults
        guard case .mapping(let mapping) = root else {
            return ["\(file): must be a mapping of keys (database, metrics, supervisor, services)"]
        }
        var problems: [String] = []
        flatten(mapping, at: "", into: &values, problems: &problems)
        return problems
    }

    /// One line for a YAML syntax error: the problem and its line, never the text around it
    /// (it may hold a secret).
    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return "line \(mark.line): \(problem) (not valid YAML)"
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
            return "line \(context.mark.line): key \(keys) is given twice"
        case .reader(let problem, _, _, _):
            return "\(problem) (not valid YAML)"
        default:
            return "is not valid YAML"
        }
    }

    private static func flatten(
        _ mapping: Node.Mapping, at prefix: String, into values: inout ConfigurationValues, problems: inout [String]
    ) {
        var seen: Set<String> = []
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                problems.append("\(prefix.isEmpty ? "the file" : prefix): has a key that is not a plain name")
                continue
            }
            let key = keyScalar.string
            let path = prefix.isEmpty ? key : prefix + "." + key
            guard seen.insert(key).inserted else {
                problems.append("\(path): is given twice")
                continue
            }
            if ConfigurationSchema.sections.contains(path) {
                switch valueNode {
                case .mapping(let inner):
                    values.markSection(path)
                    flatten(inner, at: path, into: &values, problems: &problems)
                case .scalar(let scalar) where isNull(scalar):
                    values.markSection(path)
                default:
                    problems.append("\(path): must be a mapping of keys")
                }
            } else if ConfigurationSchema.leaves[path] != nil {
                switch valueNode {
                case .scalar(let scalar):
                    values.set(path, isNull(scalar) ? nil : scalar.string, from: .file)
                case .mapping:
                    problems.append("\(path): must be a single value, not a mapping")
                case .sequence:
                    problems.append("\(path): must be a single value, not a list")
                case .alias:
                    problems.append("\(path): YAML aliases are not supported")
                }
            } else if prefix == "services" {
                let known = ConfigurationSchema.serviceNames.joined(separator: ", ")
                problems.append("\(path): unknown service (known: \(known))")
            } else {
                problems.append("\(path): unknown key")
            }
        }
    }

    /// A plain `key:`, `key: ~` or `key: null` (a quoted `""` is an empty string, not null).
    private static func isNull(_ scalar: Node.Scalar) -> Bool {
        scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    // MARK: - The environment

    /// Overlays the named variables, `TYPEORM_*`, then the generic `SUDOSOS_SYNC_*` ones.
    static func readEnvironment(_ environment: [String: String], into values: inout ConfigurationValues) -> [String] {
        var problems: [String] = []
        for variable in ConfigurationSchema.namedVariables {
            guard let raw = environment[variable.name] else { continue }
            values.set(variable.path, variable.transform.map { $0(raw) } ?? raw, from: .variable(variable.name))
        }
        problems += TypeORMVariables(environment: environment).apply(to: &values)
        for (name, raw) in environment.sorted(by: { $0.key < $1.key }) {
            guard ConfigurationSchema.genericVariablePrefixes.contains(where: name.hasPrefix) else { continue }
            guard let path = genericPaths[name] else {
                problems.append("\(name): unknown variable (no such configuration key)")
                continue
            }
            values.set(path, raw, from: .variable(name))
        }
        return problems
    }

    /// `SUDOSOS_SYNC_<PATH>` → key path, for every key.
    private static let genericPaths: [String: String] = Dictionary(
        uniqueKeysWithValues: ConfigurationSchema.leaves.keys.map { (ConfigurationSchema.variableName(of: $0), $0) })

    // MARK: - Credential files

    /// Reads the secrets in `$CREDENTIALS_DIRECTORY`, stripping one trailing newline. A credential
    /// fills a secret; it does not by itself make a service configured.
    static func readCredentials(_ environment: [String: String], into values: inout ConfigurationValues) -> [String] {
        guard let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty else { return [] }
        var problems: [String] = []
        for credential in ConfigurationSchema.credentials {
            let path = (directory as NSString).appendingPathComponent(credential.name)
            guard FileManager.default.fileExists(atPath: path) else { continue }
            guard let data = FileManager.default.contents(atPath: path) else {
                problems.append("\(credential.path) (from credential \(credential.name)): \(path) cannot be read")
                continue
            }
            guard var text = String(data: data, encoding: .utf8) else {
                problems.append("\(credential.path) (from credential \(credential.name)): \(path) is not UTF-8 text")
                continue
            }
            // "\r\n" is one Character in Swift, so removeLast drops either ending whole.
            if text.hasSuffix("\n") || text.hasSuffix("\r\n") { text.removeLast() }
            values.set(credential.path, text, from: .credential(credential.name))
        }
        return problems
    }
}
