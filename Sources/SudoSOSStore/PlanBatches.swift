import Foundation
import SyncEngine

/// A plan sorted into the kinds of change the appliers write, one bulk step per kind, in the
/// order they are applied (docs/database.md): creates, user updates, unbinds, binds, role
/// removals, role additions, membership removals, membership additions, notices.
///
/// Engine-independent: `PlanApplier` (PostgreSQL) and `MariaDBPlanApplier` take the same
/// batches, so the rules below (merging, type checks, ref resolution) exist once.
struct PlanBatches {
    var creates: [(user: NewUser, reason: String)] = []
    var edits: [UserEdit] = []
    var unbinds: [(userId: Int, uuid: String, reason: String)] = []
    var binds: [(user: UserRef, uuid: String, reason: String)] = []
    var roleRemovals: [(userId: Int, roleId: Int, reason: String)] = []
    var roleAdditions: [(user: UserRef, roleId: Int, reason: String)] = []
    var membershipRemovals: [(userId: Int, organId: Int, reason: String)] = []
    var membershipAdditions: [(user: UserRef, organ: UserRef, index: Int, reason: String)] = []
    var notices: [(userId: Int, kind: String, message: String, reason: String)] = []

    /// One change of a user's own columns, with its reason.
    struct UserEdit {
        var userId: Int
        var action: ChangeAction
        var fields: [FieldChange]
        var reason: String
    }

    init(_ plan: Plan) throws {
        for planned in plan.changes {
            let reason = planned.reason
            switch planned.change {
            case .createUser(let user): creates.append((user, reason))
            case .updateUser(let id, let fields): edits.append(UserEdit(userId: id, action: .updated, fields: fields, reason: reason))
            case .deactivateUser(let id, let fields):
                edits.append(UserEdit(userId: id, action: .deactivated, fields: fields, reason: reason))
            case .deleteUser(let id, let fields):
                edits.append(UserEdit(userId: id, action: .deleted, fields: fields, reason: reason))
            case .bind(let user, let uuid): binds.append((user, uuid, reason))
            case .unbind(let id, let uuid): unbinds.append((id, uuid, reason))
            case .addRole(let user, let roleId, _): roleAdditions.append((user, roleId, reason))
            case .removeRole(let id, let roleId, _): roleRemovals.append((id, roleId, reason))
            case .addMembership(let user, let organ, let index): membershipAdditions.append((user, organ, index, reason))
            case .removeMembership(let id, let organId): membershipRemovals.append((id, organId, reason))
            case .notice(let id, let kind, let message): notices.append((id, kind, message, reason))
            }
        }
        var seen = Set<Int>()
        for (user, _) in creates where !seen.insert(user.ref).inserted {
            throw SyncError.failed("the plan creates new user #\(user.ref) twice")
        }
    }

    /// The plan's verdicts to record, one per user (the last one the plan gives for a user),
    /// new users resolved to their ids, by id.
    static func latestVerdicts(_ plan: Plan, resolve: (UserRef) throws -> Int) throws -> [(key: Int, value: Bool)] {
        var latest: [Int: Bool] = [:]
        for verdict in plan.verdicts { latest[try resolve(verdict.user)] = verdict.vouches }
        return latest.sorted { $0.key < $1.key }
    }

    /// Resolves plan refs once the new users' ids are known (`newIds`: ref → id).
    static func resolver(_ newIds: [Int: Int]) -> (UserRef) throws -> Int {
        { ref in
            switch ref {
            case .existing(let id): return id
            case .new(let n):
                guard let id = newIds[n] else {
                    throw SyncError.failed("the plan refers to new user #\(n), which it does not create")
                }
                return id
            }
        }
    }

    /// The user edits merged per row: each user once (in first-seen order), with the old
    /// values the optimistic check expects (the first `old` of each field) and the values to
    /// set (the last `new`, plus what deactivating and deleting imply).
    struct MergedEdits {
        var order: [Int] = []
        var expect: [Int: [UserField: FieldValue]] = [:]
        var set: [Int: [UserField: FieldValue]] = [:]

        /// `expect` and `set` keyed by `schema`'s column names, each value in its column's type
        /// (`acceptedToS` text or `tosRequired` boolean).
        func byColumn(_ schema: SudoSOSSchema) -> (expect: [Int: [String: FieldValue]], set: [Int: [String: FieldValue]]) {
            func convert(_ values: [UserField: FieldValue]) -> [String: FieldValue] {
                Dictionary(uniqueKeysWithValues: values.map { (schema.userColumn($0.key).column, schema.columnValue($0.value, of: $0.key)) })
            }
            return (expect.mapValues(convert), set.mapValues(convert))
        }
    }

    func mergedEdits() throws -> MergedEdits {
        var merged = MergedEdits()
        for edit in edits {
            if merged.expect[edit.userId] == nil {
                merged.order.append(edit.userId)
                merged.expect[edit.userId] = [:]
                merged.set[edit.userId] = [:]
            }
            for change in edit.fields {
                try Self.checkType(change.new, of: change.field, user: edit.userId)
                try Self.checkType(change.old, of: change.field, user: edit.userId)
                if merged.expect[edit.userId]![change.field] == nil && merged.set[edit.userId]![change.field] == nil {
                    merged.expect[edit.userId]![change.field] = change.old
                }
                merged.set[edit.userId]![change.field] = change.new
            }
            switch edit.action {
            case .deactivated:
                merged.set[edit.userId]![.active] = .flag(false)
            case .deleted:
                merged.set[edit.userId]![.deleted] = .flag(true)
                merged.set[edit.userId]![.active] = .flag(false)
                merged.set[edit.userId]![.canGoIntoDebt] = .flag(false)
            default:
                break
            }
        }
        return merged
    }

    /// A text field must get text (and `acceptedToS` a known value), a flag a boolean.
    static func checkType(_ value: FieldValue, of field: UserField, user: Int) throws {
        switch (field, value) {
        case (.acceptedToS, .text(let v)) where TermsOfServiceStatus(rawValue: v) == nil:
            throw SyncError.failed("the plan sets acceptedToS of user \(user) to an unknown value")
        case (.firstName, .text), (.lastName, .text), (.email, .text), (.acceptedToS, .text),
            (.active, .flag), (.ofAge, .flag), (.deleted, .flag), (.canGoIntoDebt, .flag):
            return
        default:
            throw SyncError.failed("the plan gives \(field.rawValue) of user \(user) a value of the wrong type")
        }
    }

    /// Whether a user column holds a boolean (`tinyint` on MariaDB) rather than text.
    static func isFlag(_ field: UserField) -> Bool {
        switch field {
        case .firstName, .lastName, .email, .acceptedToS: return false
        case .active, .ofAge, .deleted, .canGoIntoDebt: return true
        }
    }

    /// The failure when rows changed under the run: names them, says nothing was written.
    static func stale(_ what: String, _ items: [String]) -> SyncError {
        .failed("\(what): \(list(items)) no longer as this run read it; nothing was written, the next run plans again")
    }

    /// The failure when users changed (or vanished) since the snapshot.
    static func staleUsers(_ ids: [Int]) -> SyncError {
        .failed(
            "\(list(ids.map { "user \($0)" })) changed (or vanished) since this run read it; "
                + "nothing was written, the next run plans again")
    }

    /// Up to five items, then a count.
    static func list(_ items: [String]) -> String {
        items.count <= 5 ? items.joined(separator: ", ") : items.prefix(5).joined(separator: ", ") + " and \(items.count - 5) more"
    }
}

/// A JSON scalar for the appliers' parameters.
enum JSONScalar: Encodable, CustomStringConvertible {
    case text(String)
    case flag(Bool)
    case int(Int)
    case null

    init(_ value: FieldValue) {
        switch value {
        case .text(let s): self = .text(s)
        case .flag(let b): self = .flag(b)
        }
    }

    var description: String {
        switch self {
        case .text(let s): return s
        case .flag(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .null: return "NULL"
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .text(let s): try container.encode(s)
        case .flag(let b): try container.encode(b)
        case .int(let i): try container.encode(i)
        case .null: try container.encodeNil()
        }
    }
}
