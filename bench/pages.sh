#!/usr/bin/env bash
# The pages' benchmark (issue 15's targets), in one command:
#
#   bench/pages.sh
#
# Starts the release service on a fresh temporary data directory with a small scheme (an earn
# partner with 200 members, each with some hours; a venue), signs a coordinator in to the partner
# desk, a member in to their wallet and an administrator in to the programme office, and measures
# each page with wrk for SECONDS over CONNECTIONS keep-alive connections, all in one session (the
# server looks the session up and renders the page on every request), in two ways: as CONNECTIONS
# users each opening the page once a second (the latency is the page's own), then flat out (each
# connection sends its next request as soon as it is answered: the latency is mostly the queue
# of the other 63 on 2 cores, and requests/s is what the machine can render). It prints, per page
# and way, requests/s, the latency percentiles and the bytes of one answer.
#
# Targets: a page rendered in ≤ 5 ms at the median under 64 concurrent users; every page ≤ 150 KB.
# A benchmark, not a test: run it on a quiet machine. Needs wrk (Debian's package).
#
# Settings (environment): CONNECTIONS (64), DURATION (10 seconds a page), MEMBERS (200).
set -euo pipefail
cd "$(dirname "$0")/.."

connections="${CONNECTIONS:-64}"
seconds="${DURATION:-10}"
members="${MEMBERS:-200}"
command -v wrk >/dev/null || { echo "bench/pages.sh needs wrk (apt-get install wrk)" >&2; exit 2; }

cargo build --release --locked --bin timecredits
target="${CARGO_TARGET_DIR:-target}/release"

work="$(mktemp -d -t timecredits-pages.XXXXXX)"
# shellcheck source=bench/lib.sh
source bench/lib.sh
server_pid=""
trap 'stop_service; rm -rf "$work"' EXIT

data="$work/data"
port="$(free_port)"
base="http://127.0.0.1:$port"
start_service "$target/timecredits" "$data" "$port" "$work/server.log" \
    --rate-per-key 0 --rate-per-address 0
admin="$(cat "$data/admin-api-key")"

# call METHOD PATH [JSON]: the API as the administrator (or TOKEN), a fresh idempotency key.
call() {
    curl -fsS -X "$1" "$base$2" -H "Authorization: Bearer ${TOKEN:-$admin}" \
        -H "Idempotency-Key: $(python3 -c 'import uuid; print(uuid.uuid4())')" \
        -H 'Content-Type: application/json' ${3:+-d "$3"}
}
field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

club="$(call POST /v1/partners '{"name": "Riverside Lunch Club", "roles": ["earn"]}' | field '["partner"]["id"]')"
call POST /v1/allocations "{\"partner_id\": \"$club\", \"hours\": 100000}" >/dev/null
club_key="$(call POST /v1/api-keys "{\"label\": \"bench\", \"holder\": {\"kind\": \"partner\", \"id\": \"$club\"}}" | field '["secret"]')"
credential=""
for i in $(seq "$members"); do
    registered="$(TOKEN="$club_key" call POST "/v1/members?reference=M-$i")"
    member="$(echo "$registered" | field '["member_id"]')"
    credential="$(echo "$registered" | field '["credential"]')"
    for _ in 1 2 3; do
        TOKEN="$club_key" call POST /v1/earn "{\"member_id\": \"$member\", \"minutes\": 90, \"activity\": \"lunch club\"}" >/dev/null
    done
done
password="$(call POST /v1/staff-logins "{\"username\": \"coordinator\", \"label\": \"bench\", \"holder\": {\"kind\": \"partner\", \"id\": \"$club\"}}" | field '["password"]')"

# session FORM_ACTION FIELDS...: signs in with the form's fields; prints the session cookie.
session() {
    local jar="$work/jar.$RANDOM" action="$1"
    shift
    local csrf
    csrf="$(curl -fsS -c "$jar" "$base/app/" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//; s/"$//')"
    curl -fsS -b "$jar" -c "$jar" -o /dev/null -X POST "$base$action" --data-urlencode "csrf=$csrf" "$@"
    awk '$6 == "tc_session" { print "tc_session=" $7 }' "$jar"
}
desk="$(session /app/sign-in --data-urlencode username=coordinator --data-urlencode "password=$password")"
wallet="$(session /app/member-sign-in --data-urlencode "credential=$credential")"
office="$(session /app/sign-in --data-urlencode username=admin --data-urlencode "password=$(cat "$data/admin-password")")"

# wrk with a Lua script that waits a second before each request: CONNECTIONS users each opening
# the page once a second, rather than CONNECTIONS connections flat out.
printf 'function delay() return 1000 end\n' >"$work/think.lua"

# row NAME PATH COOKIE [WRK ARGS...]: one page's line of a table.
row() {
    local name="$1" path="$2" cookie="$3"
    shift 3
    local bytes out
    bytes="$(curl -fsS -H "Cookie: $cookie" "$base$path" | wc -c)"
    out="$(wrk -t1 -c"$connections" -d"${seconds}s" --latency -H "Cookie: $cookie" "$@" "$base$path")"
    python3 - "$name" "$bytes" <<EOF
import re, sys
out = """$out"""
def ms(p):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)" % p, out, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
print(f"| {sys.argv[1]} | {float(rps):.0f} | {ms(50):.2f} | {ms(90):.2f} | {ms(99):.2f} | {sys.argv[2]} |")
EOF
}

pages=("desk /app/desk $desk" "wallet /app/wallet $wallet" "office /app/office $office" "sign-in /app/ -")
for mode in users flat-out; do
    if [[ "$mode" == users ]]; then
        echo "$connections users, each opening the page once a second:"
    else
        echo "$connections connections flat out (each sends its next request as soon as it is answered):"
    fi
    echo "| page | requests/s | p50 (ms) | p90 (ms) | p99 (ms) | bytes |"
    echo "|---|---|---|---|---|---|"
    for page in "${pages[@]}"; do
        read -r name path cookie <<<"$page"
        if [[ "$mode" == users ]]; then
            row "$name" "$path" "$cookie" -s "$work/think.lua"
        else
            row "$name" "$path" "$cookie"
        fi
    done
    echo
done
