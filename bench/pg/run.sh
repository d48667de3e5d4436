#!/usr/bin/env bash
# The PostgreSQL baseline for the earn benchmark: what a scheme would otherwise deploy.
#
# Starts a throwaway PostgreSQL cluster (Debian's package; installed if missing) in a temporary
# directory with durable commits (fsync=on, synchronous_commit=on: the defaults, set explicitly),
# creates the accounts and entries tables, and drives earn.sql with pgbench: per transaction a
# budget debit with a non-negative check, a member credit and an entry row. Clients connect over
# TCP on 127.0.0.1, as the load generator does to timecredits.
#
# Two layouts are measured by default (PARTNERS="1 64"):
#   1  all clients issue from one earn partner's budget, as the timecredits run does: every
#      transaction updates the same row, so row locks serialise the commits;
#   64 one budget per client: no row contention, PostgreSQL's best case.
#
# Settings (environment): DURATION (s, 10), WARMUP (s, 2), CLIENTS (64), MEMBERS (1000),
# PARTNERS ("1 64"), JSON_OUT (a file for the results as JSON lines; optional).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
duration="${DURATION:-10}"
warmup="${WARMUP:-2}"
clients="${CLIENTS:-64}"
members="${MEMBERS:-1000}"
partners_list="${PARTNERS:-1 64}"
json_out="${JSON_OUT:-}"

pg_bin() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$dir" && -x "$dir/postgres" && -x "$dir/pgbench" ]] && echo "$dir"
}

bin="$(pg_bin || true)"
if [[ -z "$bin" ]]; then
    echo "PostgreSQL is not installed; installing Debian's package" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
    bin="$(pg_bin)"
fi

# PostgreSQL refuses to run as root: run it as the package's postgres user then.
as_pg=()
if [[ $EUID -eq 0 ]]; then
    as_pg=(runuser -u postgres --)
fi

work="$(mktemp -d -t timecredits-pg.XXXXXX)"
pgdata="$work/data"
port=""
cleanup() {
    if [[ -f "$pgdata/postmaster.pid" ]]; then
        "${as_pg[@]}" "$bin/pg_ctl" -D "$pgdata" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
# The SQL files are copied so that the postgres user can read them whatever the checkout's
# permissions.
cp "$here/schema.sql" "$here/earn.sql" "$work/"
if [[ $EUID -eq 0 ]]; then
    chown -R postgres: "$work"
fi

"${as_pg[@]}" "$bin/initdb" -D "$pgdata" -U bench --auth=trust -E UTF8 >"$work/initdb.log"

# A free port is not known in advance; a few random tries are plenty on a quiet machine.
for _ in 1 2 3 4 5; do
    try_port=$((20000 + RANDOM % 20000))
    if "${as_pg[@]}" "$bin/pg_ctl" -D "$pgdata" -w -t 30 -l "$work/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $try_port -k $work -c fsync=on \
            -c synchronous_commit=on -c max_connections=$((clients + 20)) \
            -c shared_buffers=256MB" start >/dev/null; then
        port="$try_port"
        break
    fi
done
if [[ -z "$port" ]]; then
    echo "PostgreSQL did not start; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi

psql=("${as_pg[@]}" "$bin/psql" -h 127.0.0.1 -p "$port" -U bench -X -q -v ON_ERROR_STOP=1)
pgbench=("${as_pg[@]}" "$bin/pgbench" -h 127.0.0.1 -p "$port" -U bench)

version="$("${psql[@]}" -At -d postgres -c 'SHOW server_version')"
settings="$("${psql[@]}" -At -d postgres -c \
    "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings
     WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes')")"
echo "PostgreSQL $version ($settings), port $port, data in a temporary directory"

# Busy CPU time of the whole machine in clock ticks, to report what the run used.
machine_busy_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}
ticks_per_s="$(getconf CLK_TCK)"

for partners in $partners_list; do
    db="earn_$partners"
    "${psql[@]}" -d postgres -c "CREATE DATABASE $db"
    "${psql[@]}" -d "$db" -v partners="$partners" -v members="$members" -f "$work/schema.sql"
    common=(-n -M prepared -c "$clients" -j 2 -f "$work/earn.sql"
        -D partners="$partners" -D members="$members")
    # Warm-up: connections, caches and the first checkpoint's full-page writes are not measured.
    "${pgbench[@]}" "${common[@]}" -T "$warmup" "$db" >/dev/null 2>&1
    logs="$work/log-$partners"
    mkdir -p "$logs"
    if [[ $EUID -eq 0 ]]; then
        chown postgres: "$logs"
    fi
    busy_before="$(machine_busy_ticks)"
    started="$(date +%s.%N)"
    # `times` in the subshell prints the CPU its children (pgbench) used.
    output="$( (
        "${pgbench[@]}" "${common[@]}" -T "$duration" -l --log-prefix="$logs/tx" "$db" 2>&1
        times
    ))"
    busy_after="$(machine_busy_ticks)"
    elapsed="$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
    tps="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$output")"
    failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$output")"
    if [[ -z "$tps" ]]; then
        echo "pgbench gave no result:" >&2
        echo "$output" >&2
        exit 1
    fi
    # The children's user and system time: the last line of `times`, e.g. "0m1.20s 0m0.80s".
    pgbench_cpu="$(tail -n 1 <<<"$output" | awk '{
        n = split($1 " " $2, t, " "); s = 0
        for (i = 1; i <= n; i++) { split(t[i], p, "m"); sub("s", "", p[2]); s += p[1] * 60 + p[2] }
        print s }')"
    # Per-transaction latencies (field 3, microseconds) from pgbench's logs: nearest-rank
    # percentiles, like the load generator's.
    read -r count p50 p90 p99 max mean < <(cat "$logs"/tx* | awk '$3 ~ /^[0-9]+$/ { print $3 }' |
        sort -n | awk '{ v[NR] = $1; sum += $1 }
        END {
            if (NR == 0) { print 0, 0, 0, 0, 0, 0; exit }
            split("0.50 0.90 0.99", q, " ")
            for (i = 1; i <= 3; i++) { r = int(q[i] * NR); if (r < q[i] * NR) r++; if (r < 1) r = 1; p[i] = v[r] }
            printf "%d %.3f %.3f %.3f %.3f %.3f\n", NR, p[1] / 1000, p[2] / 1000, p[3] / 1000, v[NR] / 1000, sum / NR / 1000
        }')
    # Per second of the whole pgbench run (connecting included), not of -T alone.
    machine_cores="$(awk -v a="$busy_before" -v b="$busy_after" -v t="$ticks_per_s" -v d="$elapsed" \
        'BEGIN { printf "%.2f", (b - a) / t / d }')"
    pgbench_cores="$(awk -v c="$pgbench_cpu" -v d="$elapsed" 'BEGIN { printf "%.2f", c / d }')"
    entries="$("${psql[@]}" -At -d "$db" -c 'SELECT count(*) FROM entries')"
    echo "pg earn, $partners budget(s): $clients clients, ${duration} s: ${tps%.*} TPS," \
        "$count transactions logged, ${failed:-0} failed; latency ms p50 $p50 p90 $p90" \
        "p99 $p99 max $max mean $mean; CPU cores: pgbench $pgbench_cores," \
        "machine $machine_cores; $entries entry rows"
    if [[ -n "$json_out" ]]; then
        printf '{"partners": %s, "clients": %s, "duration_s": %s, "tps": %s, "failed": %s, "p50_ms": %s, "p90_ms": %s, "p99_ms": %s, "max_ms": %s, "mean_ms": %s, "pgbench_cores": %s, "machine_cores": %s, "version": "%s"}\n' \
            "$partners" "$clients" "$duration" "$tps" "${failed:-0}" "$p50" "$p90" "$p99" \
            "$max" "$mean" "$pgbench_cores" "$machine_cores" "$version" >>"$json_out"
    fi
done
