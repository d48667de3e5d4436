#!/usr/bin/env bash
# The HTTP benchmark of issue 3, in one command:
#
#   bench/http.sh
#
# 1. builds the release binaries (service and load generator);
# 2. RUNS times: starts the service on a fresh temporary data directory, runs
#    timecredits-loadgen (64 keep-alive connections: POST /v1/earn, then GET /v1/accounts/{id}
#    balance reads, then GET /v1/entries/{id}/receipt receipts), then wrk on the same balance
#    read as a cross-check, and stops the service;
# 3. RUNS times: the PostgreSQL baseline (bench/pg/run.sh) at the same concurrency;
# 4. prints a markdown table of medians with the targets, and the machine.
#
# Settings (environment): RUNS (3), DURATION (s per measurement, 10), WARMUP (s, 2),
# CONNECTIONS (64), MEMBERS (1000), WORKERS (the service's HTTP workers; default: one per
# core), QUIET_WAIT (s, 120: how long each run may wait for the machine to be idle),
# RESULTS_DIR (keep the raw JSON there; default: a temporary directory, removed).
#
# The load generator runs on the same 2 cores as the service. It uses one thread and reports
# the CPU it, the service and everything else used in each window, so a reader can see what the
# service had; wrk (Debian's package, installed if missing and possible) is a second opinion
# for the read path.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${RUNS:-3}"
duration="${DURATION:-10}"
warmup="${WARMUP:-2}"
connections="${CONNECTIONS:-64}"
members="${MEMBERS:-1000}"

cargo build --release --locked --bin timecredits --bin timecredits-loadgen
target="${CARGO_TARGET_DIR:-target}/release"

work="$(mktemp -d -t timecredits-bench.XXXXXX)"
results="${RESULTS_DIR:-$work/results}"
mkdir -p "$results"
# shellcheck source=bench/lib.sh
source bench/lib.sh
server_pid=""
cleanup() {
    stop_service
    rm -rf "$work"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null && [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get install -y -qq wrk >/dev/null 2>&1 || echo "wrk could not be installed; skipping it" >&2
fi

# Cores busy over the next 2 seconds, from /proc/stat (idle and iowait excluded).
busy_cores() {
    local a b
    a="$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat)"
    sleep 2
    b="$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat)"
    awk -v a="$a" -v b="$b" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / t / 2 }'
}

# Other work on the machine (builds, tests) takes cores from both the service and the
# baseline: wait for a quiet moment, and say so when there was none.
wait_for_quiet() {
    local deadline=$((SECONDS + ${QUIET_WAIT:-120})) busy
    while :; do
        busy="$(busy_cores)"
        if awk -v b="$busy" 'BEGIN { exit !(b < 0.3) }'; then
            return
        fi
        if ((SECONDS >= deadline)); then
            echo "warning: the machine is busy (${busy} cores used by other work); measuring anyway" >&2
            return
        fi
    done
}

# The load generator is one client with one key: the rate limits would measure themselves.
worker_args=(--rate-per-key 0 --rate-per-address 0)
if [[ -n "${WORKERS:-}" ]]; then
    worker_args+=(--workers "$WORKERS")
fi

for run in $(seq "$runs"); do
    wait_for_quiet
    data="$work/data-$run"
    port="$(free_port)"
    start_service "$target/timecredits" "$data" "$port" "$work/server-$run.log" "${worker_args[@]}"
    echo "== run $run/$runs: timecredits on port $port"
    "$target/timecredits-loadgen" --addr "127.0.0.1:$port" --admin-key-file "$data/admin-api-key" \
        --connections "$connections" --duration "$duration" --warmup "$warmup" \
        --members "$members" --server-pid "$server_pid" \
        --json "$results/loadgen-$run.json" --member-out "$work/member.json"
    if command -v wrk >/dev/null; then
        path="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["account_path"])' "$work/member.json")"
        credential="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["credential"])' "$work/member.json")"
        # One wrk thread, like the load generator; `times` gives the CPU wrk used.
        (
            wrk -t1 -c"$connections" -d"$((duration + warmup))s" --latency \
                -H "Authorization: Bearer $credential" "http://127.0.0.1:$port$path"
            times
        ) >"$results/wrk-$run.txt" 2>&1 || true
        grep -E "Requests/sec|^ +(50|90|99)%|Non-2xx" "$results/wrk-$run.txt" | sed 's/^/wrk: /'
    fi
    stop_service
    rm -rf "$data"
done

for run in $(seq "$runs"); do
    wait_for_quiet
    echo "== run $run/$runs: PostgreSQL baseline"
    DURATION="$duration" WARMUP="$warmup" CLIENTS="$connections" MEMBERS="$members" \
        JSON_OUT="$results/pg-$run.jsonl" bench/pg/run.sh
done

fsync_rate=""
pg_test_fsync="$(ls /usr/lib/postgresql/*/bin/pg_test_fsync 2>/dev/null | sort -V | tail -n 1 || true)"
if [[ -n "$pg_test_fsync" ]]; then
    # The disk's fdatasync rate bounds every durable commit, ours and PostgreSQL's.
    fsync_rate="$("$pg_test_fsync" -s 2 -f "$work/fsync-test" 2>/dev/null |
        awk '/fdatasync/ && /ops\/sec/ { print $(NF-3); exit }')"
fi

echo
echo "## Results ($(date -u +%Y-%m-%d), medians of $runs runs, ${duration} s each, $connections connections)"
echo
python3 - "$results" "$runs" "$fsync_rate" <<'EOF'
import glob, json, re, statistics, sys

results, runs, fsync_rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
loadgen = [r for f in sorted(glob.glob(f"{results}/loadgen-*.json")) for r in json.load(open(f))]
pg = [json.loads(l) for f in sorted(glob.glob(f"{results}/pg-*.jsonl")) for l in open(f)]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def lg(scenario, key):
    return med([r[key] for r in loadgen if r["scenario"] == scenario])


def runs_of(scenario, key, fmt):
    return " / ".join(fmt.format(r[key]) for r in loadgen if r["scenario"] == scenario)


wrk_rps, wrk_p99, wrk_cpu = [], [], []
for f in sorted(glob.glob(f"{results}/wrk-*.txt")):
    text = open(f).read()
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        wrk_rps.append(float(m.group(1)))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)$", text, re.M)
    if m:
        wrk_p99.append(float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)])

rows = []


def row(figure, value, fmt, target="", met=""):
    rows.append((figure, "n/a" if value is None else fmt.format(value), target, met))


earn = lg("earn", "requests_per_s")
earn_p99 = lg("earn", "p99_ms")
balance = lg("balance", "requests_per_s")
row("earn requests/s", earn, "{:,.0f}", "≥ 10,000", "yes" if earn and earn >= 10000 else "no")
row("earn latency p50 / p90 ms", None if earn is None else f"{lg('earn', 'p50_ms'):.1f} / {lg('earn', 'p90_ms'):.1f}", "{}")
row("earn latency p99 ms", earn_p99, "{:.1f}", "≤ 25", "yes" if earn_p99 is not None and earn_p99 <= 25 else "no")
row("earn latency max ms", lg("earn", "max_ms"), "{:.1f}")
row("balance reads/s (loadgen)", balance, "{:,.0f}", "≥ 40,000", "yes" if balance and balance >= 40000 else "no")
row("balance latency p50 / p99 / max ms", None if balance is None else f"{lg('balance', 'p50_ms'):.2f} / {lg('balance', 'p99_ms'):.2f} / {lg('balance', 'max_ms'):.1f}", "{}")
receipts = lg("receipt", "requests_per_s")
row("receipts/s (loadgen)", receipts, "{:,.0f}", "≥ 20,000", "yes" if receipts and receipts >= 20000 else "no")
row("receipt latency p50 / p99 / max ms", None if receipts is None else f"{lg('receipt', 'p50_ms'):.2f} / {lg('receipt', 'p99_ms'):.2f} / {lg('receipt', 'max_ms'):.1f}", "{}")
row("balance reads/s (wrk -t1)", med(wrk_rps), "{:,.0f}", "≥ 40,000", "yes" if wrk_rps and med(wrk_rps) >= 40000 else "no")
row("balance latency p99 ms (wrk)", med(wrk_p99), "{:.2f}")
for layout, label in ((1, "one budget row, as timecredits"), (64, "64 budget rows, no contention")):
    tps = med([p["tps"] for p in pg if p["partners"] == layout])
    row(f"PostgreSQL TPS ({label})", tps, "{:,.0f}")
    row(f"PostgreSQL latency p50 / p99 ms ({layout} budget{'s' if layout > 1 else ''})",
        None if tps is None else f"{med([p['p50_ms'] for p in pg if p['partners'] == layout]):.1f} / "
        f"{med([p['p99_ms'] for p in pg if p['partners'] == layout]):.1f}", "{}")
    if tps and earn:
        row(f"ratio earn/s ÷ PostgreSQL TPS ({layout} budget{'s' if layout > 1 else ''})", earn / tps, "{:.1f}×")

print("| figure | value | target | met |")
print("|---|---|---|---|")
for figure, value, target, met in rows:
    print(f"| {figure} | {value} | {target} | {met} |")
print()
print("Each run (earn req/s; balance req/s; receipts/s):",
      runs_of("earn", "requests_per_s", "{:,.0f}"), ";", runs_of("balance", "requests_per_s", "{:,.0f}"),
      ";", runs_of("receipt", "requests_per_s", "{:,.0f}"))
print("Cores other work used in each window (earn; balance):",
      " / ".join(f"{r['other_cores'] or 0:.2f}" for r in loadgen if r["scenario"] == "earn"), ";",
      " / ".join(f"{r['other_cores'] or 0:.2f}" for r in loadgen if r["scenario"] == "balance"))
for scenario in ("earn", "balance", "receipt"):
    print(f"CPU during {scenario} (median cores of 2): service {lg(scenario, 'server_cores') or 0:.2f}, "
          f"load generator {lg(scenario, 'loadgen_cores'):.2f}, everything else {lg(scenario, 'other_cores') or 0:.2f}")
if fsync_rate:
    print(f"Disk: {fsync_rate} fdatasync/s (pg_test_fsync, one 8 kB write each)")
EOF

echo
echo "Machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)," \
    "$(free -g | awk '/^Mem:/ { print $2 }') GiB, kernel $(uname -r)"
if [[ -z "${RESULTS_DIR:-}" ]]; then
    echo "(raw results were in $results and are removed; set RESULTS_DIR to keep them)"
fi
