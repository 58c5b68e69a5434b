#!/usr/bin/env bash
# The ldap service at scale, against what the wire and the database allow, measured in one run.
#
#   bench/ldap-scale.sh [--ad] [--rounds R] N      as root; N people (e.g. 20000)
#
# Generates a directory of N people with bench/ldap-scale.py (deterministic, AD-like: 40
# organs, nesting 3 deep, 6 role groups, non-ASCII names), loads it into a throwaway slapd
# (with --ad: into a Samba AD DC, matching_rule_in_chain mode, page size 1,000, LDAPS), starts
# a throwaway PostgreSQL, and then, interleaved over R rounds (default 5), times:
#   people, groups   `ldapsearch` paged dumps (page size 1,000, the servers' limit) of the
#                    people and of the groups with the attributes the daemon asks for; with
#                    --ad also `ldapsearch -f` with the in-chain search of every synced group
#   load             `psql`: COPY, in one transaction, of exactly the rows the daemon's full
#                    sync wrote (users, member numbers, bindings, memberships, roles, its run
#                    and audit rows), into a fresh database
#   read             `psql`: the statements of a run's snapshot (what a no-change run compares)
#   full             `sudosos-sync once ldap` (release build, the whole process) on a fresh database
#   nochange         the same again: nothing to do (checked: no change planned)
#   changed          after N/100 people renamed and N/1000 moved between organs (then reverted)
# and prints the medians and the ratios against the limits:
#   full / (people + groups + load) <= 2,  nochange / (people + groups + read) <= 2,
#   changed / nochange <= 1.2.
# Peak RSS of the daemon (max over rounds) is printed too. Wall times are whole processes.
#
#   SKIP_BUILD=1   use the release binary as it is
#   KEEP=1         keep the state directory (its path is printed)
#   PROFILE=DIR    afterwards, a full and a no-change run under `perf record -e cpu-clock`:
#                  DIR/{full,nochange}.{data,self.txt,children.txt}; and under `perf stat`
#                  (CPU time, context switches)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ad=0 rounds=5
while [[ $# -gt 1 ]]; do
  case $1 in
  --ad) ad=1; shift ;;
  --rounds) rounds=$2; shift 2 ;;
  *) break ;;
  esac
done
n=${1:?usage: bench/ldap-scale.sh [--ad] [--rounds R] N}

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  swift build -c release --product sudosos-sync >&2
fi
bin=$(swift build -c release --show-bin-path)/sudosos-sync

state=$(mktemp -d /tmp/sudosos-ldap-scale.XXXXXX)
chmod 755 "$state"
cleanup() {
  bash scripts/lib/slapd.sh stop "$state/slapd" >/dev/null 2>&1 || true
  [[ $ad == 1 ]] && { bash scripts/lib/samba.sh stop "$state/samba" >/dev/null 2>&1 || true; }
  bash scripts/lib/postgres.sh stop "$state/postgres" >/dev/null 2>&1 || true
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $state" >&2; else rm -rf "$state"; fi
}
trap cleanup EXIT
say() { echo "ldap-scale: $*" >&2; }

# Times a command: prints "MILLISECONDS MAXRSS_KB" (the command's own output goes to $state/last.out).
timed() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
start = time.monotonic()
out = open(__import__("os").environ["TIMED_OUT"], "wb")
err = open(__import__("os").environ["TIMED_OUT"] + ".err", "wb")
rc = subprocess.call(sys.argv[1:], stdout=out, stderr=err, stdin=subprocess.DEVNULL)
ms = (time.monotonic() - start) * 1000
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{ms:.0f} {rss}")
sys.exit(rc)
PY
}
export TIMED_OUT=$state/last.out
run_timed() {  # run_timed NAME COMMAND...: appends the time to $state/NAME.ms, the RSS to $state/NAME.rss
  local name=$1; shift
  local r
  if ! r=$(timed "$@"); then
    say "$name failed:"; tail -n 20 "$TIMED_OUT" "$TIMED_OUT.err" >&2; exit 1
  fi
  echo "${r% *}" >>"$state/$name.ms"
  echo "${r#* }" >>"$state/$name.rss"
}

base="DC=gewiswg,DC=test"
org="OU=Organisation,$base"
target=slapd; [[ $ad == 1 ]] && target=samba
say "generating $n people ($target)"
python3 bench/ldap-scale.py "$target" "$n" "$base" "$state/gen"
cat "$state/gen/counts.txt" >&2

say "starting PostgreSQL"
bash scripts/lib/postgres.sh start "$state/postgres" >"$state/env"
if [[ $ad == 1 ]]; then
  say "starting Samba AD and loading the directory over LDAPS (slow: Samba adds entries one by one)"
  SAMBA_FIXTURE="$state/gen" bash scripts/lib/samba.sh start "$state/samba" >>"$state/env"
else
  say "starting slapd"
  bash scripts/lib/slapd.sh start "$state/slapd" --load "$state/gen/entries.ldif" "$state/gen/groups.ldif" >>"$state/env"
fi
set -a; source "$state/env"; set +a
pg_admin=$SUDOSOS_TEST_PG_URL
db_url() { echo "${SUDOSOS_TEST_PG_URL%/*}/$1"; }
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

if [[ $ad == 1 ]]; then
  export LDAPTLS_CACERT=$SUDOSOS_TEST_AD_CA
  url=$SUDOSOS_TEST_AD_URL bind_dn=$SUDOSOS_TEST_AD_BIND_DN bind_pw=$SUDOSOS_TEST_AD_BIND_PW
  admin_dn=$bind_dn admin_pw=$bind_pw
  mode=matching_rule_in_chain ca_line="    ca_file: $SUDOSOS_TEST_AD_CA"
else
  url=$SUDOSOS_TEST_SLAPD_URL bind_dn=$SUDOSOS_TEST_SLAPD_BIND_DN bind_pw=$SUDOSOS_TEST_SLAPD_BIND_PW
  admin_dn=$SUDOSOS_TEST_SLAPD_ADMIN_DN admin_pw=$SUDOSOS_TEST_SLAPD_ADMIN_PW
  mode=member_attribute ca_line=""
fi

mkdir -m 700 "$state/credentials"
printf '%s\n' "$bind_pw" >"$state/credentials/LDAP_BIND_PW"
config() {  # config DB: the daemon's configuration for database DB
  cat <<YAML
database:
  url: $(db_url "$1")
services:
  ldap:
    enabled: true
    interval: 1h
    timeout: 10m
    server_url: $url
    base: $org
    bind_user: $bind_dn
    shared_account_filter: OU=Shared,$org
    role_filter: OU=Roles,$org
    service_account_filter: CN=SudoSOS Service Accounts,OU=Groups,$org
    guid_attribute: objectGUID
    nested_groups: $mode
    max_deletions: 100000
    max_deletion_ratio: 1.0
$ca_line
YAML
}
daemon() {  # daemon DB [ARGS...]
  local db=$1; shift
  config "$db" >"$state/config-$db.yaml"
  CREDENTIALS_DIRECTORY="$state/credentials" "$bin" once ldap --json --config "$state/config-$db.yaml" "$@"
}
export -f daemon config db_url
export state bin url org bind_dn mode ca_line SUDOSOS_TEST_PG_URL

say "base database: the SudoSOS tables, $(wc -l <"$state/gen/roles.txt") roles, our schema (a dry run creates it)"
psql_q "$pg_admin" -c "CREATE DATABASE bench_base TEMPLATE sudosos_template"
while read -r role; do
  # -c does not interpolate variables; standard input does (:'name' is a quoted literal).
  echo "INSERT INTO role (version, name) VALUES (1, :'name')" | psql_q "$(db_url bench_base)" -v name="$role"
done <"$state/gen/roles.txt"
daemon bench_base --dry-run >"$state/dry.json" 2>"$state/dry.log" || { tail "$state/dry.log" >&2; exit 1; }

# The rows a full sync writes: taken once from a probe run, as COPY text.
written_tables=('"user"' member_user ldap_authenticator organ_membership assigned_role)
psql_q "$pg_admin" -c "CREATE DATABASE bench_probe TEMPLATE bench_base"
daemon bench_probe >"$state/probe.json" 2>"$state/probe.log" || { tail "$state/probe.log" >&2; exit 1; }
{
  echo 'BEGIN;'
  for t in "${written_tables[@]}"; do
    f="$state/rows-$(echo "$t" | tr -d '"').copy"
    psql_q "$(db_url bench_probe)" -c "\\copy $t TO '$f'"
    echo "\\copy $t FROM '$f'"
  done
  f="$state/rows-run.copy"
  psql_q "$(db_url bench_probe)" -c "\\copy (SELECT * FROM sudosos_sync.run WHERE id > (SELECT max(id) FROM sudosos_sync.run) - 1) TO '$f'"
  echo "\\copy sudosos_sync.run FROM '$f'"
  f="$state/rows-audit.copy"
  psql_q "$(db_url bench_probe)" -c "\\copy sudosos_sync.audit TO '$f'"
  echo "\\copy sudosos_sync.audit FROM '$f'"
  echo 'COMMIT;'
} >"$state/load.sql"
rows=$(cat "$state"/rows-*.copy | wc -l)
say "a full sync writes $rows rows: $(for t in "$state"/rows-*.copy; do printf '%s=%s ' "$(basename "$t" .copy | sed 's/^rows-//')" "$(wc -l <"$t")"; done)"
psql_q "$pg_admin" -c "DROP DATABASE bench_probe"
# The snapshot's statements (Sources/SudoSOSStore/SnapshotReader.swift), as a run reads them.
cat >"$state/read.sql" <<'SQL'
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
\copy (SELECT id, version, "firstName", "lastName", active, "ofAge", email, deleted, type, "acceptedToS", "canGoIntoDebt" FROM "user" WHERE type = ANY('{INTEGRATION,MEMBER,ORGAN}'::text[])) TO '/dev/null'
\copy (SELECT "userId" AS k, lower("UUID") AS v FROM ldap_authenticator) TO '/dev/null'
\copy (SELECT "userId" AS k, "memberId" AS v FROM member_user) TO '/dev/null'
\copy (SELECT "userId", "organId", "index" FROM organ_membership ORDER BY "organId", "index", "userId") TO '/dev/null'
\copy (SELECT id, name FROM role ORDER BY id) TO '/dev/null'
\copy (SELECT "userId", "roleId" FROM assigned_role) TO '/dev/null'
\copy (SELECT key AS k, value AS v FROM server_setting) TO '/dev/null'
COMMIT;
SQL

people_attrs=(objectGUID objectClass cn displayName givenName sn mail employeeNumber)
group_attrs=("${people_attrs[@]}")
[[ $ad == 1 ]] || group_attrs+=(member)
dump() { ldapsearch -x -LLL -H "$url" -D "$bind_dn" -w "$bind_pw" -b "$org" -E pr=1000/noprompt "$@" >/dev/null; }
export -f dump; export bind_pw
# In-chain member searches, one per synced group (AD mode), from one ldapsearch process.
chain() {
  ldapsearch -x -LLL -H "$url" -D "$bind_dn" -w "$bind_pw" -b "$org" -E pr=1000/noprompt \
    -f "$state/gen/groups.txt" '(&(objectClass=person)(memberOf:1.2.840.113556.1.4.1941:=%s))' "${people_attrs[@]}" >/dev/null
}
export -f chain

check_changes() {  # check_changes FILE WANT: WANT "none" or "some"
  python3 - "$1" "$2" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
changes = sum(report["changes_by_action"].values())
if (changes == 0) != (sys.argv[2] == "none"):
    sys.exit(f"expected {sys.argv[2]} changes, the report has {changes}")
PY
}

for r in $(seq 1 "$rounds"); do
  say "round $r of $rounds"
  run_timed people bash -c 'dump "(objectClass=person)" "$@"' _ "${people_attrs[@]}"
  run_timed groups bash -c 'dump "(objectClass=group)" "$@"' _ "${group_attrs[@]}"
  [[ $ad == 1 ]] && run_timed chain bash -c chain
  psql_q "$pg_admin" -c "CREATE DATABASE load_$r TEMPLATE bench_base" -c "CREATE DATABASE run_$r TEMPLATE bench_base"
  run_timed load psql -X -q -v ON_ERROR_STOP=1 "$(db_url load_$r)" -f "$state/load.sql"
  run_timed full bash -c "daemon run_$r"
  check_changes "$TIMED_OUT" some
  run_timed nochange bash -c "daemon run_$r"
  check_changes "$TIMED_OUT" none
  run_timed read psql -X -q -v ON_ERROR_STOP=1 "$(db_url run_$r)" -f "$state/read.sql"
  ldapmodify -x -H "$url" -D "$admin_dn" -w "$admin_pw" -f "$state/gen/change.ldif" >/dev/null
  run_timed changed bash -c "daemon run_$r"
  check_changes "$TIMED_OUT" some
  cp "$TIMED_OUT" "$state/changed.json"
  ldapmodify -x -H "$url" -D "$admin_dn" -w "$admin_pw" -f "$state/gen/revert.ldif" >/dev/null
  psql_q "$pg_admin" -c "DROP DATABASE load_$r" -c "DROP DATABASE run_$r"
done

if [[ -n ${PROFILE:-} ]]; then
  # Where the daemon's CPU time goes: perf's cpu-clock samples (this machine's perf has no
  # hardware counters, and valgrind 3.19 cannot run the Swift 6.3 binary), plus its CPU time
  # and context switches.
  mkdir -p "$PROFILE"
  psql_q "$pg_admin" -c "CREATE DATABASE prof TEMPLATE bench_base"
  config prof >"$state/config-prof.yaml"
  for what in full nochange; do
    say "profile: $what"
    CREDENTIALS_DIRECTORY="$state/credentials" perf record -q -e cpu-clock -F 4000 -g -o "$PROFILE/$what.data" \
      "$bin" once ldap --json --config "$state/config-prof.yaml" >/dev/null 2>"$PROFILE/$what.log"
    perf report -i "$PROFILE/$what.data" --stdio --no-children --sort symbol -g none --percent-limit 0.5 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -60 >"$PROFILE/$what.self.txt" || true
    perf report -i "$PROFILE/$what.data" --stdio --children --sort symbol -g none --percent-limit 2 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -80 >"$PROFILE/$what.children.txt" || true
  done
  for what in full nochange; do
    psql_q "$pg_admin" -c "DROP DATABASE prof" -c "CREATE DATABASE prof TEMPLATE bench_base"
    if [[ $what == nochange ]]; then daemon prof >/dev/null 2>&1; fi
    CREDENTIALS_DIRECTORY="$state/credentials" perf stat -e task-clock,context-switches,cpu-migrations -o "$PROFILE/$what.stat" \
      "$bin" once ldap --json --config "$state/config-prof.yaml" >/dev/null 2>&1
    if [[ $what == full ]]; then psql_q "$pg_admin" -c "DROP DATABASE prof" -c "CREATE DATABASE prof TEMPLATE bench_base"; fi
    CREDENTIALS_DIRECTORY="$state/credentials" "$bin" once ldap --json --log-level debug --config "$state/config-prof.yaml" \
      >/dev/null 2>"$PROFILE/$what.debug.log" || true
    say "perf stat $what: $(grep -E 'task-clock|context-switches|elapsed' "$PROFILE/$what.stat" | awk '{print $1, $2}' | tr '\n' ' ')"
  done
  # The 1 %-changed run's log, on the resynced database.
  ldapmodify -x -H "$url" -D "$admin_dn" -w "$admin_pw" -f "$state/gen/change.ldif" >/dev/null
  CREDENTIALS_DIRECTORY="$state/credentials" "$bin" once ldap --json --log-level debug --config "$state/config-prof.yaml" \
    >/dev/null 2>"$PROFILE/changed.debug.log" || true
  ldapmodify -x -H "$url" -D "$admin_dn" -w "$admin_pw" -f "$state/gen/revert.ldif" >/dev/null
fi

python3 - "$state" "$n" "$ad" "$rounds" <<'PY'
import json, os, statistics, sys
state, n, ad, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
def ms(name):
    return [int(x) for x in open(os.path.join(state, name + ".ms"))]
def med(name):
    return statistics.median(ms(name))
def rss(name):
    return max(int(x) for x in open(os.path.join(state, name + ".rss")))
wire = med("people") + med("groups") + (med("chain") if ad else 0)
changed = json.load(open(os.path.join(state, "changed.json")))
print(f"ldap-scale: {n} people, {'Samba AD, matching_rule_in_chain' if ad else 'OpenLDAP slapd, member_attribute'}, "
      f"PostgreSQL; medians of {rounds} interleaved rounds (ms); load average {os.getloadavg()[0]:.1f}")
print(open(os.path.join(state, "gen", "counts.txt")).read().strip())
rows = [("ldapsearch people (paged, 1,000)", "people"), ("ldapsearch groups", "groups")]
if ad:
    rows.append(("ldapsearch in-chain members, every synced group", "chain"))
rows += [("psql COPY of the rows a full sync writes", "load"), ("psql read of what a no-change run compares", "read"),
         ("daemon: full sync from empty", "full"), ("daemon: no-change resync", "nochange"),
         ("daemon: 1 %-changed resync", "changed")]
for label, name in rows:
    values = " ".join(str(v) for v in ms(name))
    print(f"  {label:<50} {med(name):>7.0f}   [{values}]")
full_limit = wire + med("load")
nochange_limit = wire + med("read")
print(f"  full     / (ldap + load) = {med('full'):.0f} / {full_limit:.0f} = {med('full') / full_limit:.2f}  (goal <= 2.0)")
print(f"  nochange / (ldap + read) = {med('nochange'):.0f} / {nochange_limit:.0f} = {med('nochange') / nochange_limit:.2f}  (goal <= 2.0)")
print(f"  changed  / nochange      = {med('changed'):.0f} / {med('nochange'):.0f} = {med('changed') / med('nochange'):.2f}  (goal <= 1.2)")
print(f"  daemon peak RSS: full {rss('full') / 1024:.0f} MiB, nochange {rss('nochange') / 1024:.0f} MiB, changed {rss('changed') / 1024:.0f} MiB")
print("  1 %-changed run wrote: " + ", ".join(f"{k} {v}" for k, v in sorted(changed["changes_by_action"].items()) if v))
PY
