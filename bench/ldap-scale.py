#!/usr/bin/env python3
"""A deterministic AD-like organisation of N people for bench/ldap-scale.sh.

    ldap-scale.py slapd|samba N DOMAIN_DN OUTDIR

Same seed, same N: byte-identical output. Writes into OUTDIR:
- entries.ldif   containers, N people (OU=People), a few service accounts (OU=Service)
- groups.ldif    every group with its person members (plain entries)
- links.ldif     group-in-group members (changetype: modify; Samba's linked `member` must
                 name existing objects); empty for slapd, whose groups.ldif has them inline
- change.ldif    the 1 %-change: N/100 people renamed (givenName, sn, displayName),
                 N/1000 people moved from one organ's group to another organ's
- revert.ldif    undoes change.ldif
- roles.txt      the SudoSOS role names (five of the six role groups; one has no role)
- groups.txt     DNs of the groups whose members a run needs (organs, roles, service group)
- counts.txt     what was generated

Shape (for N = 20,000): 40 organs under OU=Shared, each with direct members and a year group
(OU=Groups) that holds people and a sub-group, so an organ's people are up to 3 levels deep;
6 role groups under OU=Roles whose members are organs, year groups and people; the service
group; mailing lists that no synced group uses (read, never used). About 3.5 % of the people
are in organs (1-3 each); 90 % have an employeeNumber, 85 % a mail; names mix Dutch, Polish,
Icelandic, Chinese, accented and plain ASCII.
"""
import hashlib, os, random, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "ldap"))
from ldif import line, rdn_value  # noqa: E402

target, n, domain, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rng = random.Random(20261203 + n)
org = "OU=Organisation," + domain

GIVEN = ["Anna", "Bram", "Zoë", "José", "Łukasz", "Anaïs", "Björk", "小龙", "Daan", "Eva", "Fleur", "Gijs",
         "Hanna", "Ivo", "Joost", "Małgorzata", "Søren", "Ngọc", "Renée", "Çağla", "Thijs", "Noor", "Sven", "Ïda"]
SN = ["de Vries", "Jansen", "Dąbrowska", "Núñez", "Żółć", "Müller", "Guðmundsdóttir", "陈", "van der Berg", "Smit",
      "Bakker", "Visser", "Meijer", "de Boer", "Mulder", "Šimić", "Ødegård", "Nguyễn", "Lefèvre", "Yılmaz",
      "Peeters", "Hendriks", "Dekker", "van Dijk"]
ORGAN_WORDS = ["Commissie", "Ééntje", "Borrel", "Fiets", "Café", "Übergroep", "Zeil", "Muziek", "Sport", "Reis"]


def entry(dn, attrs):
    return "\n".join([line("dn", dn)] + [line(a, v) for a, v in attrs]) + "\n\n"


def guid(key):
    return hashlib.md5(("sudosos-scale:" + key).encode()).digest()


# People.
people = []  # (key, dn, given, sn)
person_entries = []
for i in range(n):
    given, sn = rng.choice(GIVEN), rng.choice(SN)
    cn = f"{given} {sn} {i:06d}"
    key = f"p{i}"
    dn = f"CN={rdn_value(cn)},OU=People,{org}"
    attrs = []
    if target == "slapd":
        attrs += [("objectClass", "inetOrgPerson"), ("objectClass", "adObject"), ("objectGUID", guid(key)), ("sn", sn)]
    else:
        attrs += [("objectClass", "user"), ("sAMAccountName", f"u{i:06d}"), ("sn", sn)]
    attrs += [("cn", cn), ("givenName", given), ("displayName", f"{given} {sn}")]
    if rng.random() < 0.85:
        attrs.append(("mail", f"user{i}@example.org"))
    if rng.random() < 0.90:
        attrs.append(("employeeNumber", str(100000 + i)))
    people.append((key, dn, given, sn))
    person_entries.append(entry(dn, attrs))
services = []
for i in range(max(2, n // 4000)):
    cn = f"svc-pos-{i:02d}"
    dn = f"CN={cn},OU=Service,{org}"
    attrs = ([("objectClass", "inetOrgPerson"), ("objectClass", "adObject"), ("objectGUID", guid("svc" + str(i))), ("sn", cn)]
             if target == "slapd" else [("objectClass", "user"), ("sAMAccountName", f"svc{i:03d}")])
    attrs += [("cn", cn), ("displayName", f"POS {i}")]
    services.append(dn)
    person_entries.append(entry(dn, attrs))

# Groups: (dn, cn, display, person members, group members)
groups = []


def group(ou, cn, display=None, people_dns=(), group_dns=()):
    dn = f"CN={rdn_value(cn)},OU={ou},{org}"
    groups.append([dn, cn, display, list(people_dns), list(group_dns)])
    return groups[-1]


active = rng.sample(range(n), max(40, round(0.035 * n)))
organ_count = 40
leaves = []  # per organ: the groups holding its people (organ itself, year group, sub-group)
organs = []
for k in range(organ_count):
    members = [active[j] for j in range(len(active)) if j % organ_count == k]
    # Some people are in more than one organ.
    members += rng.sample(active, min(len(active), max(1, len(members) // 3)))
    members = sorted(set(members))
    rng.shuffle(members)
    a, b = len(members) // 3, 2 * len(members) // 3
    word = ORGAN_WORDS[k % len(ORGAN_WORDS)]
    sub = group("Groups", f"{word} {k} Kern", people_dns=[people[i][1] for i in members[b:]])
    year = group("Groups", f"{word} {k} 2026", people_dns=[people[i][1] for i in members[a:b]], group_dns=[sub[0]])
    organ = group("Shared", f"{word} {k}", display=f"{word} {k} – Ééntje", people_dns=[people[i][1] for i in members[:a]],
                  group_dns=[year[0]])
    organs.append((organ, year, sub))
    leaves.append([organ, year, sub])
roles = []
role_names = []
for r in range(6):
    picks = rng.sample(range(organ_count), 3)
    gm = [organs[picks[0]][0][0], organs[picks[1]][1][0], organs[picks[2]][2][0]]
    pm = [people[i][1] for i in rng.sample(active, min(len(active), 5))]
    cn = f"Rol {r} Beheer" if r < 5 else "Rol zonder SudoSOS"
    roles.append(group("Roles", cn, people_dns=pm, group_dns=gm))
    if r < 5:
        role_names.append(cn)
service_group = group("Groups", "SudoSOS Service Accounts", people_dns=services)
# Mailing lists and other groups a run reads but never uses.
for m in range(max(0, 300 - len(groups))):
    size = rng.randint(5, max(6, n // 400))
    group("Groups", f"Lijst {m:03d}", people_dns=[people[i][1] for i in rng.sample(range(n), min(n, size))])

# The 1 %-change.
renamed = rng.sample(range(n), max(1, n // 100))
moved = rng.sample(active, max(1, n // 1000))
change, revert = [], []
for i in renamed:
    key, dn, given, sn = people[i]
    new_given, new_sn = given + "-Marie", sn + " Hernoemd"
    for g, s, out_list in [(new_given, new_sn, change), (given, sn, revert)]:
        out_list.append("\n".join([line("dn", dn), "changetype: modify", "replace: givenName", line("givenName", g), "-",
                                   "replace: sn", line("sn", s), "-", "replace: displayName",
                                   line("displayName", f"{g} {s}"), "-"]) + "\n\n")
for t, i in enumerate(moved):
    pdn = people[i][1]
    holders = [g for g in groups[:3 * organ_count] if pdn in g[3]]
    source = holders[0]
    # Into a leaf group of an organ the person is not in yet.
    own = {id(x) for leaf in leaves if any(pdn in g[3] for g in leaf) for x in leaf}
    dest = next(leaf[2] for leaf in leaves[t % organ_count:] + leaves[:t % organ_count] if id(leaf[2]) not in own)
    for (frm, to, out_list) in [(source, dest, change), (dest, source, revert)]:
        out_list.append("\n".join([line("dn", frm[0]), "changetype: modify", "delete: member", line("member", pdn), "-"]) + "\n\n")
        out_list.append("\n".join([line("dn", to[0]), "changetype: modify", "add: member", line("member", pdn), "-"]) + "\n\n")

containers = []
if target == "slapd":
    dc = domain.split(",")[0].split("=")[1]
    containers.append(entry(domain, [("objectClass", "dcObject"), ("objectClass", "organization"), ("dc", dc), ("o", "GEWIS")]))
    containers.append(entry("OU=System," + domain, [("objectClass", "organizationalUnit"), ("ou", "System")]))
containers.append(entry(org, [("objectClass", "organizationalUnit"), ("ou", "Organisation")]))
for ou in ["People", "Service", "Groups", "Shared", "Roles"]:
    containers.append(entry(f"OU={ou},{org}", [("objectClass", "organizationalUnit"), ("ou", ou)]))

group_entries, links = [], []
for idx, (dn, cn, display, pm, gm) in enumerate(groups):
    attrs = [("objectClass", "group")]
    attrs += [("objectClass", "adObject"), ("objectGUID", guid("g" + cn))] if target == "slapd" else [("sAMAccountName", f"grp{idx:04d}")]
    attrs.append(("cn", cn))
    if display:
        attrs.append(("displayName", display))
    attrs += [("member", m) for m in pm]
    if target == "slapd":
        # slapadd loads it offline: members need not exist yet, so nesting goes in at once.
        attrs += [("member", m) for m in gm]
    group_entries.append(entry(dn, attrs))
    if gm and target != "slapd":
        links.append("\n".join([line("dn", dn), "changetype: modify", "add: member"] + [line("member", m) for m in gm]) + "\n-\n\n")

os.makedirs(out, exist_ok=True)
files = {
    "entries.ldif": containers + person_entries, "groups.ldif": group_entries, "links.ldif": links,
    "change.ldif": change, "revert.ldif": revert,
    "roles.txt": [r + "\n" for r in role_names],
    "groups.txt": [g[0][0] + "\n" for g in organs] + [r[0] + "\n" for r in roles[:5]] + [service_group[0] + "\n"],
    "counts.txt": [f"people={n} services={len(services)} groups={len(groups)} organs={organ_count} roles={len(roles)} "
                   f"in_organs={len(active)} renamed={len(renamed)} moved={len(moved)}\n"],
}
for name, chunks in files.items():
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        f.write("".join(chunks))
