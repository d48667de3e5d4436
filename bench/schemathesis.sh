#!/usr/bin/env bash
# Runs Schemathesis with every check against a fresh timecredits service, using the committed
# openapi/openapi.json, in three passes, each with the credential its operations need:
#
# 1. every operation with the administrator key the service creates on first run;
# 2. the earn partner's and venue's operations (earn, batch earn, redemptions, member
#    registration) with the key of a partner that has both roles and a budget;
# 3. the member's operations (gifts, spend codes) with a member's credential, the member
#    holding credits.
#
#   bench/schemathesis.sh [extra schemathesis options, e.g. --max-examples 200]
#
# Builds the release binary, starts it on a free port with a temporary data directory, runs
# Schemathesis (installed from PyPI if missing), stops the service and exits non-zero if any pass
# failed. Reports (JUnit, NDJSON, and a VCR cassette of every request) are written to
# $REPORT_DIR/<pass> (default: a temporary directory, printed at the end). Settings: MAX_EXAMPLES
# (50), SEED (1: the same run every time), WORKERS (1).
set -euo pipefail
cd "$(dirname "$0")/.."

schemathesis_version="4.32.5"
if ! command -v schemathesis >/dev/null ||
    [[ "$(schemathesis --version 2>/dev/null)" != *"$schemathesis_version"* ]]; then
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

cargo build --release --locked --bin timecredits
bin="${CARGO_TARGET_DIR:-target}/release/timecredits"

work="$(mktemp -d -t timecredits-schemathesis.XXXXXX)"
report_dir="${REPORT_DIR:-$work/report}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
server_pid=""
cleanup() {
    stop_service
    # The reports stay when they were asked for elsewhere; the data directory never does.
    rm -rf "$work/data"
    if [[ -z "${REPORT_DIR:-}" ]]; then
        echo "reports were in $report_dir (removed; set REPORT_DIR to keep them)"
        rm -rf "$work"
    fi
}
trap cleanup EXIT

port="$(free_port)"
# Schemathesis is one client sending many requests: no rate limits (tested in tests/).
start_service "$bin" "$work/data" "$port" "$work/server.log" --rate-per-key 0 --rate-per-address 0
admin_key="$(cat "$work/data/admin-api-key")"

base="http://127.0.0.1:$port"

# check PASS TOKEN [schemathesis options...]: one pass with TOKEN as the bearer credential.
status=0
check() {
    local pass="$1" token="$2"
    shift 2
    echo "=== pass: $pass"
    schemathesis --config-file bench/schemathesis.toml run openapi/openapi.json \
        --url "$base" \
        --checks all \
        -H "Authorization: Bearer $token" \
        --max-examples "${MAX_EXAMPLES:-50}" \
        --seed "${SEED:-1}" \
        --workers "${WORKERS:-1}" \
        --generation-database none \
        --report junit,ndjson,vcr --report-dir "$report_dir/$pass" \
        --no-color \
        "$@" || status=1
}

# post TOKEN PATH JSON: a setup request; prints the answer.
post() {
    local body=()
    if [[ -n "${3:-}" ]]; then
        body=(-H "Content-Type: application/json" -d "$3")
    fi
    curl -fsS -X POST "$base$2" -H "Authorization: Bearer $1" \
        -H "Idempotency-Key: setup-$(date +%s%N)" "${body[@]}"
}
# json_field KEY [KEY]: a field of the JSON object on standard input.
json_field() {
    python3 -c 'import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1:]:
    value = value[key]
print(value)' "$@"
}

check admin "$admin_key" "$@"

partner_id="$(post "$admin_key" /v1/partners '{"name": "Schemathesis", "roles": ["earn", "spend"]}' | json_field partner id)"
partner_key="$(post "$admin_key" /v1/api-keys "{\"label\": \"schemathesis\", \"holder\": {\"kind\": \"partner\", \"id\": \"$partner_id\"}}" | json_field secret)"
post "$admin_key" /v1/allocations "{\"partner_id\": \"$partner_id\", \"hours\": 1000000}" >/dev/null
member="$(post "$partner_key" /v1/members)"
member_id="$(echo "$member" | json_field member_id)"
member_credential="$(echo "$member" | json_field credential)"
post "$partner_key" /v1/earn "{\"member_id\": \"$member_id\", \"hours\": 100000, \"activity\": \"setup\"}" >/dev/null

check partner "$partner_key" --include-path /v1/earn --include-path /v1/earn/batch \
    --include-path /v1/redemptions --include-path /v1/members "$@"
check member "$member_credential" --include-path /v1/gifts --include-path /v1/spend-codes "$@"

# A request the service could not even parse is answered by actix before any handler, and a
# panic or a 5xx is logged: show both, since Schemathesis sees only the status.
if grep -E "ERROR|panicked" "$work/server.log" >/dev/null; then
    echo "--- errors in the server log:"
    grep -E "ERROR|panicked" "$work/server.log" | sort | uniq -c | sort -rn | head -20
fi
exit "$status"
