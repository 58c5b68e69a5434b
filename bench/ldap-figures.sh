#!/usr/bin/env bash
# The ldap service's cost figure: LDAP searches, LDAP page requests and SQL round trips of a
# first run (everything created) and a second run (nothing to do) over a directory of 200 and
# of 2,000 people (10 organs with a nested group each, 2 roles), in member_attribute mode
# against slapd. Searches and round trips must be the same for both sizes; only the page
# requests grow (500 entries a page).
#
#   bench/ldap-figures.sh            starts PostgreSQL and slapd itself, as root (~1 minute)
#
# In matching_rule_in_chain mode (Active Directory) a run makes 4 searches plus one per organ,
# role and service group: also independent of the number of people.
set -euo pipefail
cd "$(dirname "$0")/.."
state=$(mktemp -d /tmp/sudosos-ldap-bench.XXXXXX)
chmod 755 "$state"
cleanup() {
  bash scripts/lib/postgres.sh stop "$state/postgres" || true
  rm -rf "$state"
}
trap cleanup EXIT
# The test starts a slapd of its own (scripts/lib/slapd.sh) and loads the organisations into it.
{
  bash scripts/lib/postgres.sh start "$state/postgres"
  echo "SUDOSOS_TEST_SLAPD_SCRIPT=$PWD/scripts/lib/slapd.sh"
} >"$state/env"
set -a; source "$state/env"; set +a
swift build --build-tests >&2
swift test --skip-build --filter LDAPScaleTests 2>&1 | tee "$state/test.log" | grep -E '✘|✔ Test run' >&2 || true
echo "sudosos-sync ldap service: requests per run (member_attribute mode, slapd, page size 500)"
grep -o 'LDAP-FIGURE .*' "$state/test.log" | sed 's/^LDAP-FIGURE /  /'
grep -q '✔ Test run' "$state/test.log"
