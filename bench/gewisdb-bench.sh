#!/usr/bin/env bash
# Members checked per second by the gewisdb client against gewisdb-fake, next to the
# latency-bound limit MEMBERS × LATENCY / CONCURRENCY. Release build, loopback only, bounded
# (MEMBERS requests per concurrency value). Prints a table; see docs/gewisdb.md for results.
#   bench/gewisdb-bench.sh [MEMBERS=5000] [LATENCY_MS=20] [CONCURRENCIES=8,16,32]
set -euo pipefail
cd "$(dirname "$0")/.."
members=${1:-5000}
latency=${2:-20}
concurrencies=${3:-8,16,32}
swift build -c release --product gewisdb-fake >&2
swift build -c release --product gewisdb-bench >&2
bin=$(swift build -c release --show-bin-path)
state=$(mktemp -d /tmp/gewisdb-bench.XXXXXX)
"$bin/gewisdb-fake" --port 0 --port-file "$state/port" --generate "$members" --latency-ms "$latency" \
  --api-key bench-key >"$state/fake.log" 2>&1 &
fake=$!
trap 'kill $fake 2>/dev/null; wait $fake 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 100); do [[ -s "$state/port" ]] && break; sleep 0.1; done
port=$(cat "$state/port")
echo "gewisdb-fake: $members members, ${latency} ms per request, on 127.0.0.1:$port; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/gewisdb-bench" --url "http://127.0.0.1:$port/api" --api-key bench-key --members "$members" \
  --latency-ms "$latency" --concurrency "$concurrencies"
echo "server: $(curl -s "http://127.0.0.1:$port/_admin/stats")"
