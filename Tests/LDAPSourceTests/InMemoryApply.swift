import SyncEngine

/// Applies a plan to a snapshot in memory, as the store would to the tables, so planner tests
/// can check that a second plan over the result is empty.
func apply(_ plan: Plan, to snapshot: Snapshot) -> Snapshot {
    var next = snapshot
    var nextId = (snapshot.users.keys.max() ?? 0) + 1
    var refs: [Int: Int] = [:]
    func id(_ ref: UserRef) -> Int {
        switch ref {
        case .existing(let id): return id
        case .new(let n): return refs[n]!
        }
    }
    for planned in plan.changes {
        switch planned.change {
        case .createUser(let new):
            let user = User(
                id: nextId, firstName: new.firstName, lastName: new.lastName, active: new.active, ofAge: new.ofAge,
                email: new.email, type: new.type, acceptedToS: new.acceptedToS, canGoIntoDebt: new.canGoIntoDebt)
            next.users[nextId] = user
            if let member = new.memberId { next.memberNumbers[nextId] = member }
            refs[new.ref] = nextId
            nextId += 1
        case .updateUser(let userId, let fields), .deactivateUser(let userId, let fields), .deleteUser(let userId, let fields):
            for field in fields { next.users[userId]![field.field] = field.new }
            next.users[userId]!.version += 1
        case .bind(let user, let uuid):
            next.ldapBindings[id(user)] = uuid
        case .unbind(let userId, _):
            next.ldapBindings[userId] = nil
        case .addRole(let user, let roleId, _):
            next.roleAssignments.insert(RoleAssignment(userId: id(user), roleId: roleId))
        case .removeRole(let userId, let roleId, _):
            next.roleAssignments.remove(RoleAssignment(userId: userId, roleId: roleId))
        case .addMembership(let user, let organ, let index):
            next.organMemberships.append(OrganMembership(userId: id(user), organId: id(organ), index: index))
        case .removeMembership(let userId, let organId):
            next.organMemberships.removeAll { $0.userId == userId && $0.organId == organId }
        case .notice:
            break
        }
    }
    return next
}
