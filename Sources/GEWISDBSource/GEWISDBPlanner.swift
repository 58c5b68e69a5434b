import Foundation
import SyncEngine

/// The `gewisdb` plan as a pure function of GEWISDB's answers and the SudoSOS snapshot.
///
/// Per targeted user (a MEMBER, not deleted, with a `member_user` row):
/// - a valid member (not deleted, `checkedAt` not past `expiration`): firstName = given_name,
///   lastName = middle_name + " " + family_name (family_name alone without a middle name),
///   email, ofAge = is_18_plus, active = true; only fields GEWISDB sent; `email: null` keeps the
///   stored address; only values that differ become a change.
/// - a down member (expired, deleted, or HTTP 204), only when the server setting
///   `allowGewisSyncDelete` is `true`: balance known to be zero → closed and deleted;
///   otherwise closed (inactive, no debt) and, when it was active, the closing notice the
///   original e-mails is recorded (`Change.notice`, no mail sent).
/// - an answer that cannot be used (failed request, unparsable body, missing or unparsable
///   expiration, a name over 64 characters): rejected or failed, the user is left alone, the
///   run goes on. An invalid or empty e-mail only drops the e-mail (`invalid_email`).
public enum GEWISDBPlanner {
    /// The server setting that allows closing members (SudoSOS stores JSON `true` / `false`).
    public static let allowDeleteSetting = MemberClosing.allowDeleteSetting
    /// The service whose verdict counts for members bound to a directory object.
    public static let directoryService = "ldap"

    public static func plan(
        service: String = "gewisdb", answers: GEWISDBAnswers, targeted: [User], snapshot: Snapshot
    ) -> Plan {
        var plan = Plan(service: service, population: targeted.count)
        let allowClose = MemberClosing.isAllowed(in: snapshot)
        let directory = snapshot.peers[directoryService]
        var downButNotAllowed = 0
        var keptByDirectory = 0
        var directoryUnknown = 0
        var failedRequests: [String] = []

        for user in targeted.sorted(by: { $0.id < $1.id }) {
            guard let lidnr = snapshot.memberNumbers[user.id] else { continue }
            let record = "member \(lidnr)"
            let why: String
            switch answers.answers[lidnr] {
            case nil:
                plan.entities.failed += 1
                failedRequests.append("\(record): not read")
                continue
            case .failed(let problem)?:
                plan.entities.failed += 1
                failedRequests.append("\(record): \(problem)")
                continue
            case .unparsable(let detail)?:
                plan.entities.failed += 1
                plan.rejected.append(Rejection(record: record, reason: .unparsable, detail: detail))
                continue
            case .notFound?:
                why = "\(record) is unknown to GEWISDB (HTTP 204)"
            case .found(let member)? where member.deleted:
                // Deleted wins over a missing or unparsable expiration.
                why = "\(record) is deleted in GEWISDB"
            case .found(let member)?:
                let expiration: Date
                switch member.expiration {
                case .missing:
                    plan.entities.failed += 1
                    plan.rejected.append(Rejection(record: record, reason: .missingAttribute, detail: "expiration is missing"))
                    continue
                case .invalid(let text):
                    plan.entities.failed += 1
                    plan.rejected.append(
                        Rejection(record: record, reason: .unparsable, detail: "expiration is not a date: \(text)"))
                    continue
                case .date(let date):
                    expiration = date
                }
                if answers.checkedAt > expiration {
                    why = "\(record) expired on \(day(expiration))"
                } else {
                    // A valid member: GEWISDB vouches, whatever becomes of the profile fields.
                    plan.verdicts.append(Verdict(user: .existing(user.id), vouches: true))
                    do {
                        let (wanted, dropped) = try values(for: member, record: record)
                        plan.rejected += dropped
                        plan.entities.passed += 1
                        let fields = FieldChange.diff(user, to: wanted)
                        if !fields.isEmpty {
                            let names = fields.map(\.field.rawValue).joined(separator: ", ")
                            plan.append(.updateUser(userId: user.id, fields: fields), reason: "\(record) in GEWISDB: \(names)")
                        }
                    } catch {
                        plan.entities.failed += 1
                        plan.rejected.append(error)
                    }
                    continue
                }
            }

            // Down: expired, deleted or unknown.
            plan.entities.passed += 1
            plan.verdicts.append(Verdict(user: .existing(user.id), vouches: false))
            // A member bound to a directory object is the directory's too: not closed while the
            // ldap service still vouches (its object exists), nor on a missing or stale verdict.
            if let uuid = snapshot.ldapBindings[user.id], let directory {
                switch directory.say(about: user.id) {
                case .vouches:
                    keptByDirectory += 1
                    continue
                case .unknown:
                    directoryUnknown += 1
                    continue
                case .doesNotVouch:
                    // Neither vouches: the whole down, the directory's part too (as the original
                    // runs down() on every service).
                    plan.append(
                        .unbind(userId: user.id, uuid: uuid.lowercased()),
                        reason: "\(why); the ldap service does not vouch either (directory object \(uuid.lowercased()) is gone)")
                }
            }
            guard allowClose else {
                downButNotAllowed += 1
                continue
            }
            plan.changes += MemberClosing.changes(closing: user, why: why, snapshot: snapshot)
        }
        if !failedRequests.isEmpty {
            let shown = failedRequests.prefix(10).joined(separator: "; ")
            let more = failedRequests.count > 10 ? "; and \(failedRequests.count - 10) more" : ""
            plan.warnings.append(
                "\(failedRequests.count) member(s) left alone because their GEWISDB request failed: \(shown)\(more)")
        }
        if keptByDirectory > 0 {
            plan.warnings.append(
                "\(keptByDirectory) member(s) are expired, deleted or unknown in GEWISDB but kept open: the ldap service "
                    + "still vouches for them (their directory object exists)")
        }
        if directoryUnknown > 0, let directory {
            plan.warnings.append(
                "\(directoryUnknown) member(s) are expired, deleted or unknown in GEWISDB and bound to a directory object, "
                    + "but the ldap service's verdict on them is missing or older than "
                    + "\(Int(directory.maxAgeSeconds / 3600))h: left alone until it has run")
        }
        if downButNotAllowed > 0 {
            plan.warnings.append(
                "\(downButNotAllowed) member(s) are expired, deleted or unknown in GEWISDB, but the server setting "
                    + "\(allowDeleteSetting) is not true: none closed")
        }
        return plan
    }

    /// The user columns a valid member asks for; only fields GEWISDB sent. Names and the
    /// e-mail address go through the engine's `Validation` (64 characters as PostgreSQL counts
    /// them, no NUL, e-mail syntax); a rejection never quotes the address. A bad name rejects
    /// the member; a bad or empty address only drops the address (returned as a rejection to
    /// count, `invalid_email`), and the rest is applied.
    static func values(
        for member: GEWISDBMember, record: String
    ) throws(Rejection) -> (values: [(UserField, FieldValue)], dropped: [Rejection]) {
        var dropped: [Rejection] = []
        var wanted: [(UserField, FieldValue)] = []
        if let given = member.givenName.value {
            wanted.append((.firstName, .text(try Validation.name(given, field: "given_name", record: record))))
        }
        if let family = member.familyName.value {
            let middle = member.middleName.value ?? ""
            let last = middle.isEmpty ? family : "\(middle) \(family)"
            wanted.append((.lastName, .text(try Validation.name(last, field: "middle_name + family_name", record: record))))
        }
        if let email = member.email.value {
            do throws(Rejection) {
                wanted.append((.email, .text(try Validation.email(email, field: "email", record: record))))
            } catch {
                dropped.append(Rejection(record: error.record, reason: .invalidEmail, detail: error.detail))
            }
        }
        if let ofAge = member.isEighteenPlus.value {
            wanted.append((.ofAge, .flag(ofAge)))
        }
        wanted.append((.active, .flag(true)))
        return (wanted, dropped)
    }

    static func day(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: .gmt).year().month().day())
    }

    static func describe(_ balance: Balance) -> String { MemberClosing.describe(balance) }
}
