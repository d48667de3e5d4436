#!/usr/bin/env bash
# Runs Schemathesis with every check against a fresh timecredits service, using the committed
# openapi/openapi.json and the administrator key the service creates on first run.
#
#   bench/schemathesis.sh [extra schemathesis options, e.g. --max-examples 200]
#
# Builds the release binary, starts it on a free port with a temporary data directory, runs
# Schemathesis (installed from PyPI if missing), stops the service and exits with Schemathesis's
# status. Reports (JUnit, NDJSON, and a VCR cassette of every request) are written to
# $REPORT_DIR (default: a temporary directory, printed at the end). Settings: MAX_EXAMPLES (50),
# SEED (1: the same run every time), WORKERS (1).
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
start_service "$bin" "$work/data" "$port" "$work/server.log"
admin_key="$(cat "$work/data/admin-api-key")"

status=0
schemathesis --config-file bench/schemathesis.toml run openapi/openapi.json \
    --url "http://127.0.0.1:$port" \
    --checks all \
    -H "Authorization: Bearer $admin_key" \
    --max-examples "${MAX_EXAMPLES:-50}" \
    --seed "${SEED:-1}" \
    --workers "${WORKERS:-1}" \
    --generation-database none \
    --report junit,ndjson,vcr --report-dir "$report_dir" \
    --no-color \
    "$@" || status=$?

# A request the service could not even parse is answered by actix before any handler, and a
# panic or a 5xx is logged: show both, since Schemathesis sees only the status.
if grep -E "ERROR|panicked" "$work/server.log" >/dev/null; then
    echo "--- errors in the server log:"
    grep -E "ERROR|panicked" "$work/server.log" | sort | uniq -c | sort -rn | head -20
fi
exit "$status"
