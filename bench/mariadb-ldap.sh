#!/usr/bin/env bash
# The full LDAP sync of 20,000 people (10 organs with a nested group each, 2 roles; slapd,
# member_attribute mode) into a MariaDB with SudoSOS's real schema, and the no-change resync,
# beside the `mariadb` client loading exactly the rows the daemon wrote (SudoSOS's tables and
# our run and audit rows, from mariadb-dump) in one transaction into a fresh copy of the
# schema, on the same server in the same run. Prints the three times.
#
#   bench/mariadb-ldap.sh [PEOPLE]   starts MariaDB itself, as root (a few minutes)
#
# The daemon's time is the whole run (lock, schema check, LDAP read, plan, validate, write
# with its audit rows); the client's is the load alone.
set -euo pipefail
cd "$(dirname "$0")/.."
state=$(mktemp -d /tmp/sudosos-mariadb-bench.XXXXXX)
chmod 755 "$state"
cleanup() {
  bash scripts/lib/mariadb.sh stop "$state/mariadb" || true
  rm -rf "$state"
}
trap cleanup EXIT
# The test starts a slapd of its own (scripts/lib/slapd.sh) and loads the organisation into it.
{
  bash scripts/lib/mariadb.sh start "$state/mariadb"
  echo "SUDOSOS_TEST_SLAPD_SCRIPT=$PWD/scripts/lib/slapd.sh"
} >"$state/env"
set -a; source "$state/env"; set +a
export SUDOSOS_BENCH_MARIADB_PEOPLE=${1:-20000}
swift build --build-tests >&2
swift test --skip-build --filter MariaDBLDAPBench 2>&1 | tee "$state/test.log" | grep -E '✘|✔ Test run' >&2 || true
echo "sudosos-sync ldap service on MariaDB, $SUDOSOS_BENCH_MARIADB_PEOPLE people"
grep -o 'MARIADB-BENCH .*' "$state/test.log" | sed 's/^MARIADB-BENCH /  /'
grep -q '✔ Test run' "$state/test.log"
