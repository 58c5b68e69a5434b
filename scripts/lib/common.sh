# Shared helpers for the service scripts. Source it; do not run it.
set -euo pipefail

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# wait_for DESCRIPTION SECONDS COMMAND...: runs COMMAND until it succeeds, or fails after SECONDS.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then
      echo "timed out after ${seconds}s waiting for ${what}" >&2
      return 1
    fi
    sleep 0.1
  done
}

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

# sudosos_schema_files ENGINE SCHEMA: prints, in order, the fixture files that build SudoSOS's
# schema SCHEMA (oldest | default | newest) for ENGINE (mariadb | postgres); see fixtures/sql/README.md.
sudosos_schema_files() {
  local dir; dir="$(repo_root)/fixtures/sql/$1"
  case "$2" in
  oldest) echo "$dir/10-initial-1743601882766.sql" ;;
  default) echo "$dir/10-initial-1743601882766.sql" "$dir/20-to-1778769232000.sql" ;;
  newest) echo "$dir/10-initial-1743601882766.sql" "$dir/20-to-1778769232000.sql" "$dir/30-to-1785401380818.sql" ;;
  *) echo "sudosos_schema_files: unknown schema $2" >&2; return 64 ;;
  esac
}
