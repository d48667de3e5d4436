#!/usr/bin/env bash
# An A/B comparison of the API's earn throughput between two builds of the service, in one
# command:
#
#   bench/ab.sh OTHER_RELEASE_DIR
#
# OTHER_RELEASE_DIR holds another build's `timecredits` (for example a
# worktree of an earlier commit: `git worktree add ../before REV && (cd ../before && cargo build
# --release --bin timecredits)`, then `bench/ab.sh ../before/target/release`). The load comes from
# this checkout's `timecredits-loadgen` for both, so only the service differs.
# This checkout's release build is the other side. Runs alternate between the two (A B A B ...)
# so that a machine whose load drifts treats both alike; each run is a fresh data directory and
# `timecredits-loadgen --scenario earn` (64 connections, 10 s after 2 s of warm-up, rate limits
# off, nothing else using the service: no page is open). It prints each run's requests/s and
# both medians. A benchmark, not a test: run it on a quiet machine.
#
# Settings (environment): RUNS (3 per side), CONNECTIONS (64), DURATION (10), WARMUP (2).
set -euo pipefail
cd "$(dirname "$0")/.."
other="${1:?usage: bench/ab.sh OTHER_RELEASE_DIR}"
runs="${RUNS:-3}"
cargo build --release --locked --bin timecredits --bin timecredits-loadgen
this="${CARGO_TARGET_DIR:-target}/release"

work="$(mktemp -d -t timecredits-ab.XXXXXX)"
# shellcheck source=bench/lib.sh
source bench/lib.sh
server_pid=""
trap 'stop_service; rm -rf "$work"' EXIT

# run SIDE DIR N: one run of DIR's build; prints "SIDE requests/s".
run() {
    local side="$1" dir="$2" n="$3" data="$work/data-$1-$3" port
    port="$(free_port)"
    start_service "$dir/timecredits" "$data" "$port" "$work/server-$side-$n.log" \
        --rate-per-key 0 --rate-per-address 0
    "$this/timecredits-loadgen" --addr "127.0.0.1:$port" --admin-key-file "$data/admin-api-key" \
        --scenario earn --connections "${CONNECTIONS:-64}" --duration "${DURATION:-10}" \
        --warmup "${WARMUP:-2}" --json "$work/$side-$n.json" >/dev/null
    stop_service
    python3 -c 'import json, sys; r = json.load(open(sys.argv[2]))[0]; print(sys.argv[1], round(r["requests_per_s"]))' \
        "$side" "$work/$side-$n.json"
}

for n in $(seq "$runs"); do
    run this "$this" "$n"
    run other "$other" "$n"
done | tee "$work/runs.txt"
python3 - "$work/runs.txt" <<'PY'
import statistics, sys
runs = [line.split() for line in open(sys.argv[1])]
for side in ("this", "other"):
    values = [float(v) for s, v in runs if s == side]
    print(f"{side}: median {statistics.median(values):,.0f} requests/s over {len(values)} runs")
PY
