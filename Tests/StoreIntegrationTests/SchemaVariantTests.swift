import Foundation
import Logging
import Testing

import SudoSOSStore
import SyncEngine
import TestKit

/// The store reads and writes each schema variant in its own tables and columns, through the
/// runner (which resolves the variant before the snapshot): member numbers, memberships with
/// and without `index`, and the terms of service as `acceptedToS` or `tosRequired`. The SQL is
/// plain enough for both engines' test clients.
@Suite struct SchemaVariantTests {
    /// What the plan closure saw in the snapshot.
    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Snapshot?
        var snapshot: Snapshot? { lock.withLock { value } }
        func record(_ snapshot: Snapshot) { lock.withLock { value = snapshot } }
    }

    @Test(arguments: [SudoSOSTestSchema.oldest, .default, .newest])
    func snapshotAndApplyUseTheVariantsNames(_ schema: SudoSOSTestSchema) async throws {
        let db = try TemporaryDatabase.create(schema: schema)
        defer { db.drop() }
        let old = schema == .oldest
        let memberships = old ? "member_authenticator" : "organ_membership"
        let organColumn = old ? "authenticateAsId" : "organId"
        let members = old ? "gewis_user" : "member_user"
        let number = old ? "gewisId" : "memberId"
        let tosRequired = schema == .newest
        let tosColumn = tosRequired ? "tosRequired" : "acceptedToS"

        func user(_ name: String, _ type: String, tos: String) throws -> Int {
            Int(try db.sql(
                #"INSERT INTO "user" (version, "firstName", type, active, "\#(tosColumn)") VALUES (1, '\#(name)', '\#(type)', true, \#(tos)) RETURNING id"#))!
        }
        let organ = try user("Organ", "ORGAN", tos: tosRequired ? "false" : "'NOT_REQUIRED'")
        let anna = try user("Anna", "MEMBER", tos: tosRequired ? "true" : "'ACCEPTED'")
        let bert = try user("Bert", "MEMBER", tos: tosRequired ? "true" : "'NOT_ACCEPTED'")
        try db.sql(#"INSERT INTO \#(members) ("userId", "\#(number)") VALUES (\#(anna), 501)"#)
        if old {
            try db.sql(#"INSERT INTO member_authenticator (version, "userId", "authenticateAsId") VALUES (1, \#(bert), \#(organ)), (1, \#(anna), \#(organ))"#)
        } else {
            try db.sql(#"INSERT INTO organ_membership (version, "userId", "organId", "index") VALUES (1, \#(anna), \#(organ), 3), (1, \#(bert), \#(organ), 7)"#)
        }

        let seen = Seen()
        let service = PlannedService(snapshotRequest: SnapshotRequest(userTypes: [.member, .organ])) { snapshot in
            seen.record(snapshot)
            var plan = Plan(service: "test", population: 3)
            plan.append(
                .createUser(NewUser(ref: 0, type: .member, firstName: "Cees", acceptedToS: .notAccepted, memberId: 777)),
                reason: "new member")
            plan.append(.addMembership(user: .new(0), organ: .existing(organ), index: 2), reason: "joins")
            plan.append(.removeMembership(userId: bert, organId: organ), reason: "leaves")
            plan.append(
                .updateUser(userId: organ, fields: [
                    FieldChange(field: .acceptedToS, old: .text("NOT_REQUIRED"), new: .text("NOT_ACCEPTED")),
                ]), reason: "needs the terms")
            return plan
        }
        let store = PostgresStore(url: db.url, connectTimeout: .seconds(5), logger: Logger(label: "test.store"))
        let runner = SyncRunner(
            database: store, threshold: DeletionThreshold(maxDeletions: 50, maxRatio: 1), logger: Logger(label: "test.runner"))
        let result = await runner.run(service, dryRun: false, reporter: SilentReporter())
        #expect(result.exitCode == .success, "\(result.summary.error ?? "")")

        // Read in the variant's names.
        let snapshot = try #require(seen.snapshot)
        #expect(snapshot.memberNumbers == [anna: 501])
        let indices = snapshot.organMemberships.filter { $0.organId == organ }.map { [$0.userId, $0.index] }
        // Without an index column: numbered by user id, as the migration that adds it does.
        #expect(indices == (old ? [[anna, 0], [bert, 1]] : [[anna, 3], [bert, 7]]))
        #expect(snapshot.users[organ]?.acceptedToS == .notRequired)
        #expect(snapshot.users[anna]?.acceptedToS == (tosRequired ? .notAccepted : .accepted))

        // Written in the variant's names.
        let cees = try db.sql(#"SELECT id FROM "user" WHERE "firstName" = 'Cees'"#)
        #expect(try db.sql(#"SELECT "\#(number)" FROM \#(members) WHERE "userId" = \#(cees)"#) == "777")
        #expect(try db.sql(#"SELECT "userId" FROM \#(memberships) WHERE "\#(organColumn)" = \#(organ) ORDER BY "userId""#)
            == "\(anna)\n\(cees)")
        if !old {
            #expect(try db.sql(#"SELECT "index" FROM organ_membership WHERE "userId" = \#(cees)"#) == "2")
        }
        // The terms-of-service state as text on both schemas (`tosRequired` as yes/no).
        let tos = tosRequired ? #"CASE WHEN "tosRequired" THEN 'yes' ELSE 'no' END"# : #""acceptedToS""#
        #expect(try db.sql(#"SELECT version, \#(tos) FROM "user" WHERE id = \#(organ)"#)
            == (tosRequired ? "2|yes" : "2|NOT_ACCEPTED"))
        #expect(try db.sql(#"SELECT \#(tos) FROM "user" WHERE id = \#(cees)"#) == (tosRequired ? "yes" : "NOT_ACCEPTED"))
        #expect(try db.sql("SELECT count(*) FROM sudosos_sync.audit") == "4")
        #expect(try db.sql("SELECT table_name FROM sudosos_sync.audit ORDER BY id")
            == "user\nuser\n\(memberships)\n\(memberships)")
    }
}
