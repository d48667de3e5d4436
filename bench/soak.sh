#!/usr/bin/env bash
# The memory soak of issue 10, in one command:
#
#   bench/soak.sh
#
# Starts the release service on a fresh temporary data directory and keeps a steady mixed load on
# it (timecredits-loadgen at RATE requests/s: earns, then balance reads, then receipts, a
# SCENARIO_SECONDS window each, over and over) for MINUTES, sampling the service's resident
# memory (RSS) every SAMPLE seconds. It prints the curve as a markdown table (one row per
# ROW_MINUTES) and keeps the raw samples (seconds, RSS in KiB, ledger entries) in OUT.
#
# What it shows: whether memory levels off under a load that never stops. Every cache and table
# in the service has a bound (ARCHITECTURE.md, "Memory"); the largest, sled's page cache, fills up
# to its 256 MiB first. A benchmark, not a test: run it on a quiet machine.
#
# Settings (environment): MINUTES (60), RATE (500), SCENARIO_SECONDS (20), SAMPLE (10),
# ROW_MINUTES (5), MEMBERS (200), OUT (soak.csv in a temporary directory, printed).
set -euo pipefail
cd "$(dirname "$0")/.."

minutes="${MINUTES:-60}"
rate="${RATE:-500}"
scenario_seconds="${SCENARIO_SECONDS:-20}"
sample="${SAMPLE:-10}"
row_minutes="${ROW_MINUTES:-5}"
members="${MEMBERS:-200}"

cargo build --release --locked --bin timecredits --bin timecredits-loadgen
target="${CARGO_TARGET_DIR:-target}/release"

work="$(mktemp -d -t timecredits-soak.XXXXXX)"
out="${OUT:-$work/soak.csv}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
server_pid=""
load_pid=""
cleanup() {
    [[ -n "$load_pid" ]] && kill "$load_pid" 2>/dev/null || true
    stop_service
    [[ -z "${OUT:-}" ]] && echo "samples were in $out (removed with $work)" >&2
    rm -rf "$work"
}
trap cleanup EXIT

data="$work/data"
port="$(free_port)"
# One client with one key: the rate limits would refuse the load itself.
start_service "$target/timecredits" "$data" "$port" "$work/server.log" \
    --rate-per-key 0 --rate-per-address 0
echo "== soak: $minutes min at $rate requests/s on port $port (pid $server_pid)" >&2

end=$((SECONDS + minutes * 60))
# One generator for the whole soak: its partner, key and members are registered once, so the
# registry does not grow under the measurement (only the ledger does).
rounds=$(((minutes * 60 + 3 * scenario_seconds - 1) / (3 * scenario_seconds)))
"$target/timecredits-loadgen" --addr "127.0.0.1:$port" \
    --admin-key-file "$data/admin-api-key" --connections 16 --rate "$rate" \
    --duration "$scenario_seconds" --warmup 0 --members "$members" --rounds "$rounds" \
    --scenario earn,balance,receipt >/dev/null 2>"$work/loadgen.log" &
load_pid=$!

echo "seconds,rss_kib,entries" >"$out"
start=$SECONDS
while ((SECONDS < end)); do
    if ! kill -0 "$load_pid" 2>/dev/null; then
        echo "the load generator stopped early:" >&2
        cat "$work/loadgen.log" >&2
        exit 1
    fi
    rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status")"
    entries="$(curl -fs "http://127.0.0.1:$port/readyz" | python3 -c 'import json, sys; print(json.load(sys.stdin)["entries"])' || echo "")"
    echo "$((SECONDS - start)),$rss,$entries" >>"$out"
    sleep "$sample"
done
kill "$load_pid" 2>/dev/null || true
wait "$load_pid" 2>/dev/null || true
load_pid=""

python3 - "$out" "$row_minutes" "$rate" "$minutes" <<'EOF'
import csv, sys
path, row_minutes, rate, minutes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = list(csv.DictReader(open(path)))
print(f"RSS of the service under {rate} requests/s for {minutes} min (earns, balance reads, receipts in turn):\n")
print("| minute | RSS (MiB) | entries |")
print("|---|---|---|")
step = row_minutes * 60
next_at = 0
for r in rows:
    t = int(r["seconds"])
    if t >= next_at:
        print(f"| {t // 60} | {int(r['rss_kib']) / 1024:.0f} | {r['entries']} |")
        next_at += step
last = rows[-1]
print(f"| {int(last['seconds']) // 60} (end) | {int(last['rss_kib']) / 1024:.0f} | {last['entries']} |")
EOF
