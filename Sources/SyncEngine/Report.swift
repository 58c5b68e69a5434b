import Foundation

/// The change report of one run, as `once` prints it: text like `terraform plan`, or JSON with
/// `--json` (shape documented in docs/operations.md). E-mail addresses are masked
/// (`j…@example.org`) unless `reveal` is set; free text (reasons, warnings, errors) is scrubbed
/// of anything that looks like an address.
public struct PlanReport: Sendable {
    public var result: RunResult
    /// Show e-mail addresses in full (`--reveal`).
    public var reveal: Bool

    public init(_ result: RunResult, reveal: Bool = false) {
        self.result = result
        self.reveal = reveal
    }

    // MARK: - Text

    /// The human-readable report, ending in a newline.
    public func text() -> String {
        let summary = result.summary
        var lines: [String] = []
        let mode = summary.dryRun ? " (dry run: nothing is written)" : ""
        lines.append("sudosos-sync \(summary.service): \(headline())\(mode)")
        if let plan = result.plan {
            lines.append("")
            if summary.outcome == .refused {
                let removals = plan.removals
                lines.append("REFUSED: \(free(summary.error ?? "the plan exceeds the deletion threshold"))")
                lines.append("Nothing was written. It would have made these \(removals.count) removals:")
                for planned in removals { lines.append("  " + line(planned, in: plan)) }
                lines.append("Check the source; if the removals are right, raise max_deletions / max_deletion_ratio for one run.")
                let others = plan.changes.filter { $0.change.action?.isRemoval != true }
                if !others.isEmpty {
                    lines.append("")
                    lines.append("Other planned changes (not written either):")
                    for planned in others { lines.append("  " + line(planned, in: plan)) }
                }
            } else if plan.changes.isEmpty {
                lines.append("No changes. SudoSOS is in step with the source.")
            } else {
                lines.append(summary.outcome == .success && !summary.dryRun ? "Changes made:" : "Planned changes:")
                for planned in plan.changes { lines.append("  " + line(planned, in: plan)) }
            }
            if !plan.rejected.isEmpty {
                lines.append("")
                lines.append("Rejected records (\(plan.rejected.count)):")
                for rejection in plan.rejected {
                    lines.append("  x \(free(rejection.record)): \(rejection.reason.rawValue): \(free(rejection.detail))")
                }
            }
            if !plan.warnings.isEmpty {
                lines.append("")
                lines.append("Warnings (\(plan.warnings.count)):")
                for warning in plan.warnings { lines.append("  ! \(free(warning))") }
            }
        }
        lines.append("")
        let entities = summary.entities
        lines.append("Entities: \(entities.passed) passed, \(entities.failed) failed, \(entities.skipped) skipped")
        lines.append("Changes: \(countsLine())")
        if !summary.rejected.isEmpty {
            let parts = summary.rejected.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
            lines.append("Rejected: " + parts.joined(separator: ", "))
        }
        if let error = summary.error, summary.outcome != .refused {
            lines.append("Error: \(free(error))")
        }
        let seconds = summary.finishedAt.timeIntervalSince(summary.startedAt)
        lines.append(
            "Outcome: \(summary.outcome.rawValue) (exit \(result.exitCode.rawValue)) in \(String(format: "%.1f", seconds))s")
        return lines.joined(separator: "\n") + "\n"
    }

    private func headline() -> String {
        let count = result.plan?.changes.filter { $0.change.action != nil }.count ?? 0
        let changes = "\(count) change\(count == 1 ? "" : "s")"
        switch result.summary.outcome {
        case .success: return result.summary.dryRun ? "\(changes) planned" : "\(changes) applied"
        case .refused: return "refused, \(changes) planned, none written"
        case .failure: return "failed"
        case .crash: return "crashed"
        case .timeout: return "timed out"
        case .notReady: return "source not ready"
        case .locked: return "another instance is running this service"
        }
    }

    /// `3 created, 1 updated` (actions with a count only), or `none`.
    private func countsLine() -> String {
        let counts = ChangeAction.allCases.compactMap { action -> String? in
            let n = result.summary.changes[action.rawValue] ?? 0
            return n == 0 ? nil : "\(n) \(action.rawValue)"
        }
        return counts.isEmpty ? "none" : counts.joined(separator: ", ")
    }

    /// One change, `+ create MEMBER "Jan Jansen" (member 1234): reason` style.
    func line(_ planned: PlannedChange, in plan: Plan) -> String {
        let reason = free(planned.reason)
        switch planned.change {
        case .createUser(let user):
            var details: [String] = []
            if let member = user.memberId { details.append("member \(member)") }
            if !user.email.isEmpty { details.append(email(user.email)) }
            let extra = details.isEmpty ? "" : " (\(details.joined(separator: ", ")))"
            return "+ create \(user.type.rawValue) \(quoted(fullName(user)))\(extra): \(reason)"
        case .updateUser(let userId, let fields):
            return "~ update user \(userId): \(fieldList(fields)) (\(reason))"
        case .deactivateUser(let userId, let fields):
            return "- deactivate user \(userId): \(reason)\(fieldSuffix(fields))"
        case .deleteUser(let userId, let fields):
            return "- delete user \(userId): \(reason)\(fieldSuffix(fields))"
        case .bind(let user, let uuid):
            return "+ bind \(name(user, in: plan)) to directory object \(uuid): \(reason)"
        case .unbind(let userId, let uuid):
            return "- unbind user \(userId) from directory object \(uuid): \(reason)"
        case .addRole(let user, _, let roleName):
            return "+ role \(quoted(roleName)) for \(name(user, in: plan)): \(reason)"
        case .removeRole(let userId, _, let roleName):
            return "- role \(quoted(roleName)) from user \(userId): \(reason)"
        case .addMembership(let user, let organ, let index):
            return "+ membership of \(name(user, in: plan)) in organ \(name(organ, in: plan)) (index \(index)): \(reason)"
        case .removeMembership(let userId, let organId):
            return "- membership of user \(userId) in organ user \(organId): \(reason)"
        case .notice(let userId, let kind, let message):
            return "! notice \(kind) for user \(userId): \(free(message)) (\(reason))"
        }
    }

    /// `user 42`, or `new ORGAN "BAC"` for a user the plan creates.
    private func name(_ ref: UserRef, in plan: Plan) -> String {
        switch ref {
        case .existing(let id): return "user \(id)"
        case .new(let n):
            for planned in plan.changes {
                if case .createUser(let user) = planned.change, user.ref == n {
                    return "new \(user.type.rawValue) \(quoted(fullName(user)))"
                }
            }
            return ref.description
        }
    }

    private func fullName(_ user: NewUser) -> String {
        user.lastName.isEmpty ? user.firstName : "\(user.firstName) \(user.lastName)"
    }

    /// `lastName Jansen → de Jong, active true → false`.
    private func fieldList(_ fields: [FieldChange]) -> String {
        guard !fields.isEmpty else { return "no fields" }
        return fields.map { change in
            "\(change.field.rawValue) \(value(change.old, of: change.field)) → \(value(change.new, of: change.field))"
        }.joined(separator: ", ")
    }

    private func fieldSuffix(_ fields: [FieldChange]) -> String {
        fields.isEmpty ? "" : " [\(fieldList(fields))]"
    }

    private func value(_ value: FieldValue, of field: UserField) -> String {
        switch value {
        case .flag(let flag): return flag ? "true" : "false"
        case .text(let text):
            let shown = field.isPersonalContact ? email(text) : free(text)
            return shown.isEmpty ? "\"\"" : shown
        }
    }

    private func quoted(_ text: String) -> String {
        "\"" + free(text).replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// An e-mail column's value, masked unless revealed.
    private func email(_ address: String) -> String {
        reveal ? address : Masking.maskEmail(address)
    }

    /// Free text: addresses in it masked unless revealed; kept on one line.
    private func free(_ text: String) -> String {
        let oneLine = text.replacingOccurrences(of: "\n", with: " ")
        return reveal ? oneLine : Masking.scrub(oneLine)
    }

    // MARK: - JSON

    /// The report as JSON (sorted keys, one object; the shape is documented in
    /// docs/operations.md and kept stable: fields may be added, never renamed).
    public func json(pretty: Bool = true) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(jsonValue())) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// The report as a JSON tree.
    public func jsonValue() -> JSONValue {
        let summary = result.summary
        var object: [String: JSONValue] = [
            "format": .number(1),
            "service": .string(summary.service),
            "outcome": .string(summary.outcome.rawValue),
            "exit_code": .number(Double(result.exitCode.rawValue)),
            "dry_run": .bool(summary.dryRun),
            "started_at": .string(Self.timestamp(summary.startedAt)),
            "finished_at": .string(Self.timestamp(summary.finishedAt)),
            "error": summary.error.map { .string(free($0)) } ?? .null,
            "entities": .object([
                "passed": .number(Double(summary.entities.passed)),
                "failed": .number(Double(summary.entities.failed)),
                "skipped": .number(Double(summary.entities.skipped)),
            ]),
            "changes_by_action": .object(Dictionary(uniqueKeysWithValues: ChangeAction.allCases.map {
                ($0.rawValue, JSONValue.number(Double(summary.changes[$0.rawValue] ?? 0)))
            })),
            "rejected_by_reason": .object(Dictionary(uniqueKeysWithValues: RejectionReason.allCases.map {
                ($0.rawValue, JSONValue.number(Double(summary.rejected[$0.rawValue] ?? 0)))
            })),
            "refused": summary.outcome == .refused ? .string(free(summary.error ?? "deletion threshold")) : .null,
        ]
        if let plan = result.plan {
            object["population"] = .number(Double(plan.population))
            object["changes"] = .array(plan.changes.map { json($0) })
            object["rejected"] = .array(plan.rejected.map {
                .object(["record": .string(free($0.record)), "reason": .string($0.reason.rawValue), "detail": .string(free($0.detail))])
            })
            object["warnings"] = .array(plan.warnings.map { .string(free($0)) })
        } else {
            object["population"] = .null
            object["changes"] = .array([])
            object["rejected"] = .array([])
            object["warnings"] = .array([])
        }
        return .object(object)
    }

    private func json(_ planned: PlannedChange) -> JSONValue {
        var object: [String: JSONValue] = [
            "action": .string(planned.change.action?.rawValue ?? "notice"),
            "reason": .string(free(planned.reason)),
        ]
        switch planned.change {
        case .createUser(let user):
            object["user"] = .object([
                "ref": .number(Double(user.ref)),
                "type": .string(user.type.rawValue),
                "first_name": .string(user.firstName),
                "last_name": .string(user.lastName),
                "email": .string(email(user.email)),
                "active": .bool(user.active),
                "of_age": .bool(user.ofAge),
                "accepted_tos": .string(user.acceptedToS.rawValue),
                "can_go_into_debt": .bool(user.canGoIntoDebt),
                "member_id": user.memberId.map { .number(Double($0)) } ?? .null,
            ])
        case .updateUser(let userId, let fields), .deactivateUser(let userId, let fields), .deleteUser(let userId, let fields):
            object["user"] = ref(.existing(userId))
            object["fields"] = .array(fields.map { change in
                .object([
                    "field": .string(change.field.rawValue),
                    "old": json(change.old, of: change.field),
                    "new": json(change.new, of: change.field),
                ])
            })
        case .bind(let user, let uuid):
            object["user"] = ref(user)
            object["uuid"] = .string(uuid)
        case .unbind(let userId, let uuid):
            object["user"] = ref(.existing(userId))
            object["uuid"] = .string(uuid)
        case .addRole(let user, let roleId, let roleName):
            object["user"] = ref(user)
            object["role"] = .object(["id": .number(Double(roleId)), "name": .string(roleName)])
        case .removeRole(let userId, let roleId, let roleName):
            object["user"] = ref(.existing(userId))
            object["role"] = .object(["id": .number(Double(roleId)), "name": .string(roleName)])
        case .addMembership(let user, let organ, let index):
            object["user"] = ref(user)
            object["organ"] = ref(organ)
            object["index"] = .number(Double(index))
        case .removeMembership(let userId, let organId):
            object["user"] = ref(.existing(userId))
            object["organ"] = ref(.existing(organId))
        case .notice(let userId, let kind, let message):
            object["user"] = ref(.existing(userId))
            object["kind"] = .string(kind)
            object["message"] = .string(free(message))
        }
        return .object(object)
    }

    /// `{"id": 42}` for an existing user, `{"new": 1}` for the plan's first created user.
    private func ref(_ ref: UserRef) -> JSONValue {
        switch ref {
        case .existing(let id): return .object(["id": .number(Double(id))])
        case .new(let n): return .object(["new": .number(Double(n))])
        }
    }

    private func json(_ value: FieldValue, of field: UserField) -> JSONValue {
        switch value {
        case .flag(let flag): return .bool(flag)
        case .text(let text): return .string(field.isPersonalContact ? email(text) : free(text))
        }
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}

/// A JSON value, for output whose shape is fixed by documentation rather than by a Swift type.
public enum JSONValue: Sendable, Hashable, Encodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value == value.rounded(), abs(value) < 1e15 { try container.encode(Int64(value)) } else { try container.encode(value) }
        case .string(let value): try container.encode(value)
        case .array(let values): try container.encode(values)
        case .object(let values): try container.encode(values)
        }
    }
}
