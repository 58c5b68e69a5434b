#!/usr/bin/env bash
# Supervisor figures: RSS and CPU of an idle `sudosos-sync run` over 60 s, and the time from
# a run's due instant to the child's first line of work (the worker's `started` message).
# Usage: bench/supervisor.sh [BINARY] [IDLE_SECONDS]   (default .build/release/sudosos-sync
# if built, else .build/debug/sudosos-sync; 60 s). Prints KEY=VALUE lines.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-}
if [ -z "$binary" ]; then
    binary=.build/release/sudosos-sync
    [ -x "$binary" ] || binary=.build/debug/sudosos-sync
fi
idle=${2:-60}
work=$(mktemp -d /tmp/sudosos-bench.XXXXXX)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)

cpu_seconds() { # utime + stime of $1, in seconds
    awk -v t="$ticks" '{ sub(/^.*\) /, ""); print ($12 + $13) / t }' "/proc/$1/stat"
}
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# 1. Idle: two services on schedules far away; nothing runs.
cat > "$work/idle.yaml" <<YAML
database: { url: "postgresql://x@127.0.0.1:1/x" }
metrics: { listen: "127.0.0.1:0" }
services:
  ldap: { enabled: true, schedule: "0 3 1 1 *", server_url: "ldap://127.0.0.1:1", base: "dc=x", guid_attribute: entryUUID, nested_groups: member_attribute }
  gewisdb: { enabled: true, schedule: "0 4 1 1 *", api_url: "http://127.0.0.1:1/api" }
YAML
export GEWISDB_API_KEY=bench
"$binary" run --config "$work/idle.yaml" 2>"$work/idle.log" &
pid=$!
until grep -q "supervisor ready" "$work/idle.log"; do
    kill -0 $pid 2>/dev/null || { cat "$work/idle.log" >&2; exit 1; }
    sleep 0.1
done
sleep 2
cpu0=$(cpu_seconds $pid); rss0=$(rss_kib $pid)
sleep "$idle"
cpu1=$(cpu_seconds $pid); rss1=$(rss_kib $pid)
kill -TERM $pid; wait $pid || true
echo "binary=$binary"
echo "idle_seconds=$idle"
echo "idle_rss_kib_start=$rss0"
echo "idle_rss_kib_end=$rss1"
awk -v a="$cpu0" -v b="$cpu1" -v s="$idle" 'BEGIN { printf "idle_cpu_seconds=%.2f\nidle_cpu_percent=%.3f\n", b - a, 100 * (b - a) / s }'

# 2. Due instant → first line of work: a run that fails at once (database unreachable) and is
#    retried every second; each retry's worker reports `started`.
unset GEWISDB_API_KEY
cat > "$work/latency.yaml" <<YAML
database: { url: "postgresql://x@127.0.0.1:1/x" }
metrics: { listen: "127.0.0.1:0" }
supervisor: { backoff: { initial: 1s, max: 1s, multiplier: 1, jitter: 0, reset_after: 10m } }
services:
  ldap: { enabled: true, interval: 1h, run_on_start: true, server_url: "ldap://127.0.0.1:1", base: "dc=x", guid_attribute: entryUUID, nested_groups: member_attribute }
YAML
"$binary" run --config "$work/latency.yaml" 2>"$work/latency.log" &
pid=$!
until [ "$(grep -c 'first work' "$work/latency.log")" -ge 21 ]; do
    kill -0 $pid 2>/dev/null || { cat "$work/latency.log" >&2; exit 1; }
    sleep 0.2
done
kill -TERM $pid; wait $pid || true
grep -o 'first work [0-9]* ms' "$work/latency.log" | awk '{print $3}' | tail -20 | sort -n > "$work/ms"
echo "start_latency_runs=$(wc -l < "$work/ms")"
echo "start_latency_ms_min=$(head -1 "$work/ms")"
echo "start_latency_ms_median=$(sed -n 10p "$work/ms")"
echo "start_latency_ms_max=$(tail -1 "$work/ms")"
