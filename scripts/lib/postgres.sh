#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and the demo.
#   postgres.sh start DIR   initdb in DIR (as the postgres user), start on a free loopback port,
#                           build the template databases of SudoSOS's schemas from
#                           fixtures/sql/postgres (fixtures/sql/README.md): "sudosos_template"
#                           (May 2026), "sudosos_template_oldest" (the initial migration) and
#                           "sudosos_template_newest"; print KEY=VALUE lines for the test environment.
#   postgres.sh stop DIR    stop it (fast shutdown) and remove DIR.
source "$(dirname "$0")/common.sh"
cmd=${1:?usage: postgres.sh start|stop DIR}; dir=${2:?usage: postgres.sh start|stop DIR}
pgbin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
root=$(repo_root)

case "$cmd" in
start)
  mkdir -p "$dir"; chmod o+x "$(dirname "$dir")"; chown postgres: "$dir"; chmod 700 "$dir"
  port=$(free_port)
  runuser -u postgres -- "$pgbin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  url="postgresql://postgres@127.0.0.1:$port/postgres"
  for schema in default oldest newest; do
    template=sudosos_template; [[ $schema == default ]] || template=sudosos_template_$schema
    psql -q -v ON_ERROR_STOP=1 "$url" -c "CREATE DATABASE $template" >/dev/null
    for f in $(sudosos_schema_files postgres "$schema"); do
      psql -q -v ON_ERROR_STOP=1 "postgresql://postgres@127.0.0.1:$port/$template" -f "$f" >/dev/null
    done
  done
  echo "SUDOSOS_TEST_PG_URL=$url"
  echo "SUDOSOS_TEST_PG_TEMPLATE=sudosos_template"
  echo "SUDOSOS_TEST_PG_TEMPLATE_OLDEST=sudosos_template_oldest"
  echo "SUDOSOS_TEST_PG_TEMPLATE_NEWEST=sudosos_template_newest"
  echo "SUDOSOS_TEST_PG_DATA=$dir/data"
  echo "SUDOSOS_TEST_PG_BIN=$pgbin"
  ;;
stop)
  if [[ -f "$dir/data/postmaster.pid" ]]; then
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null || true
  fi
  rm -rf "$dir"
  ;;
*) echo "usage: postgres.sh start|stop DIR" >&2; exit 64 ;;
esac
