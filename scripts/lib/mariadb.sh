#!/usr/bin/env bash
# A throwaway MariaDB server for tests and the demo (Debian's mariadb-server).
#   mariadb.sh start DIR   mariadb-install-db into DIR, mariadbd (as the mysql user) on a free
#                          loopback port, template databases sudosos_template (May 2026 schema),
#                          sudosos_template_oldest and sudosos_template_newest from
#                          fixtures/sql/mariadb; prints KEY=VALUE lines for the test environment.
#   mariadb.sh start DIR --bare   the same server without the templates (for tests that stop it)
#   mariadb.sh stop DIR    stop it and remove DIR.
# MariaDB has no template databases: TestKit copies a template per test (docs/testing.md).
source "$(dirname "$0")/common.sh"
cmd=${1:?usage: mariadb.sh start|stop DIR}; dir=${2:?usage: mariadb.sh start|stop DIR}

client() { mariadb --no-defaults --protocol=socket --socket="$dir/mysqld.sock" -uroot "$@"; }

case "$cmd" in
start)
  mkdir -p "$dir"; chmod o+x "$(dirname "$dir")"; chown mysql: "$dir"; chmod 700 "$dir"
  port=$(free_port)
  mariadb-install-db --no-defaults --user=mysql --datadir="$dir/data" --auth-root-authentication-method=normal \
    --skip-test-db >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; exit 1; }
  # Not durable (it is thrown away): no flush per commit, no doublewrite, no binary log.
  mariadbd --no-defaults --user=mysql --datadir="$dir/data" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --bind-address=127.0.0.1 --port="$port" --skip-name-resolve \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci --max-connections=300 \
    --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --innodb-buffer-pool-size=128M --skip-log-bin \
    --log-error="$dir/server.log" </dev/null >/dev/null 2>&1 &
  wait_for "mariadbd to accept connections" 60 client -e 'SELECT 1' || { cat "$dir/server.log" >&2; exit 1; }
  # The tests (and the demo) connect over TCP as root without a password.
  client -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
  if [[ ${3:-} == --bare ]]; then
    echo "SUDOSOS_TEST_MARIADB_URL=mariadb://root@127.0.0.1:$port/mysql"
    echo "SUDOSOS_TEST_MARIADB_PID=$(cat "$dir/mysqld.pid")"
    exit 0
  fi
  for schema in default oldest newest; do
    template=sudosos_template; [[ $schema == default ]] || template=sudosos_template_$schema
    client -e "CREATE DATABASE $template CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    for f in $(sudosos_schema_files mariadb "$schema"); do
      client "$template" <"$f"
    done
  done
  # MariaDB has no template databases: each test loads a dump of its template (TestKit).
  for t in sudosos_template sudosos_template_oldest sudosos_template_newest; do
    mariadb-dump --no-defaults --socket="$dir/mysqld.sock" -uroot --skip-comments --skip-dump-date "$t" >"$dir/$t.sql"
    chmod 644 "$dir/$t.sql"
  done
  echo "SUDOSOS_TEST_MARIADB_URL=mariadb://root@127.0.0.1:$port/mysql"
  echo "SUDOSOS_TEST_MARIADB_DUMP=$dir/sudosos_template.sql"
  echo "SUDOSOS_TEST_MARIADB_DUMP_OLDEST=$dir/sudosos_template_oldest.sql"
  echo "SUDOSOS_TEST_MARIADB_DUMP_NEWEST=$dir/sudosos_template_newest.sql"
  echo "SUDOSOS_TEST_MARIADB_PORT=$port"
  echo "SUDOSOS_TEST_MARIADB_SOCKET=$dir/mysqld.sock"
  echo "SUDOSOS_TEST_MARIADB_TEMPLATE=sudosos_template"
  echo "SUDOSOS_TEST_MARIADB_TEMPLATE_OLDEST=sudosos_template_oldest"
  echo "SUDOSOS_TEST_MARIADB_TEMPLATE_NEWEST=sudosos_template_newest"
  echo "SUDOSOS_TEST_MARIADB_PID=$(cat "$dir/mysqld.pid")"
  ;;
stop)
  if [[ -f "$dir/mysqld.pid" ]]; then
    pid=$(cat "$dir/mysqld.pid")
    kill "$pid" 2>/dev/null || true
    wait_for "mariadbd to stop" 60 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  ;;
*) echo "usage: mariadb.sh start|stop DIR" >&2; exit 64 ;;
esac
