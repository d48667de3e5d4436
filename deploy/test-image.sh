#!/usr/bin/env bash
# Checks deploy/ on this machine:
#  1. deploy/timecredits.service with `systemd-analyze verify` (no warning allowed) and
#     `systemd-analyze security --offline` (exposure at most 2.0), and its SystemCallFilter=
#     against the calls the binary makes under strace;
#  2. deploy/Caddyfile (caddy validate) and deploy/nginx.conf (nginx -t), where installed;
#  3. an image of the built binary (deploy/Containerfile.scratch: FROM scratch, the binary with
#     the shared libraries it needs) run with podman and a volume: it writes (a partner, an
#     allocation, each with an Idempotency-Key), the health probe answers, the container stops
#     on SIGTERM with status 0, `timecredits check` finds the volume sound, and after a restart
#     the data, the idempotency record and the identity (GET /v1/ledger/key) are intact.
# A part whose tool cannot run here says so and is skipped; the other part still runs.
#
#   deploy/test-image.sh [BINARY]     (default: cargo build, then target/debug/timecredits)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [[ $# -ge 1 ]]; then
    bin=$(realpath "$1")
else
    cargo build -q --locked -p timecredits-server --bin timecredits
    bin=$root/target/debug/timecredits
fi
[[ -x $bin ]] || { echo "deploy test: no binary at $bin" >&2; exit 2; }

work=$(mktemp -d /tmp/timecredits-deploy.XXXXXX)
container=
tracer=
P=()
cleanup() {
    if [[ -n $tracer ]] && kill -0 "$tracer" 2>/dev/null; then
        for child in $(pgrep -P "$tracer"); do kill -KILL "$child" 2>/dev/null || true; done
        kill -KILL "$tracer" 2>/dev/null || true
        wait "$tracer" 2>/dev/null || true
    fi
    if [[ -n $container ]]; then
        "${P[@]}" rm -f -t 5 "$container" >/dev/null 2>&1 || true
    fi
    if [[ ${#P[@]} -gt 0 ]]; then
        # Only the test's own store (--root): its images, so nothing stays mounted under it.
        "${P[@]}" rmi -af >/dev/null 2>&1 || true
    fi
    rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT
fail() { echo "deploy test FAILED: $*" >&2; exit 1; }

# --- 1. the systemd unit -------------------------------------------------------------------
if command -v systemd-analyze >/dev/null && systemd-analyze --version >/dev/null 2>&1; then
    mkdir -p "$work/unit"
    # verify checks that ExecStart's program exists: point it at the binary under test.
    sed "s#^ExecStart=/usr/local/bin/timecredits #ExecStart=$bin #" deploy/timecredits.service \
        > "$work/unit/timecredits.service"
    grep -q "^ExecStart=$bin serve" "$work/unit/timecredits.service" || fail "unit: no ExecStart"
    out=$(cd "$work/unit" && systemd-analyze verify ./timecredits.service 2>&1) \
        || fail "systemd-analyze verify: $out"
    [[ -z $out ]] || fail "systemd-analyze verify warns: $out"
    if ! out=$(cd "$work/unit" && systemd-analyze security --offline=true --threshold=20 \
            ./timecredits.service 2>&1); then
        fail "systemd-analyze security: exposure above 2.0 or error: $(tail -n 1 <<<"$out")"
    fi
    echo "deploy test: systemd unit verified ($(tail -n 1 <<<"$out" | sed 's/^→ //'))"
else
    echo "deploy test: SKIPPED the systemd unit check: systemd-analyze is not installed"
fi

# The unit's system call filter against the calls the service makes: the binary run under
# strace (start, writes, a key rotation, a member, SIGTERM), each call looked up in the groups
# the unit allows (@system-service) and denies (@privileged @resources).
if command -v systemd-analyze >/dev/null && command -v strace >/dev/null; then
    sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    strace -f -qq -o "$work/strace.out" "$bin" serve --data-dir "$work/strace-data" \
        --listen "127.0.0.1:$sport" > "$work/strace-serve.log" 2>&1 &
    tracer=$!
    sbase=http://127.0.0.1:$sport
    for _ in $(seq 1 150); do
        curl -fsS -o /dev/null "$sbase/readyz" 2>/dev/null && break
        sleep 0.2
    done
    sadmin=(-H "Authorization: Bearer $(cat "$work/strace-data/admin-api-key")" -H 'content-type: application/json')
    spartner=$(curl -fsS "$sbase/v1/partners" "${sadmin[@]}" -H 'Idempotency-Key: s-p' \
        -d '{"name":"Syscall Club","roles":["earn","spend"]}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["partner"]["id"])') \
        || fail "strace run: create a partner"
    curl -fsS -o /dev/null "$sbase/v1/allocations" "${sadmin[@]}" -H 'Idempotency-Key: s-a' \
        -d '{"partner_id":"'"$spartner"'","hours":3,"reference":"syscalls"}' || fail "strace run: allocate"
    skey=$(curl -fsS "$sbase/v1/api-keys" "${sadmin[@]}" -H 'Idempotency-Key: s-k' \
        -d '{"label":"club","holder":{"kind":"partner","id":"'"$spartner"'"}}' \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])') || fail "strace run: API key"
    curl -fsS -o /dev/null -X POST "$sbase/v1/members" -H "Authorization: Bearer $skey" \
        -H 'Idempotency-Key: s-m' || fail "strace run: member"
    curl -fsS -o /dev/null -X POST "$sbase/v1/key-rotations" "${sadmin[@]}" \
        -H 'Idempotency-Key: s-r' || fail "strace run: key rotation"
    server=$(pgrep -P "$tracer" | head -n 1)
    [[ -n $server ]] || fail "strace run: no server process"
    kill -TERM "$server"
    wait "$tracer" || true
    tracer=
    systemd-analyze syscall-filter > "$work/syscall-groups.txt" 2>/dev/null
    python3 - "$work/strace.out" "$work/syscall-groups.txt" <<'PY' || fail "the unit's SystemCallFilter= would refuse a call the service makes"
import re, sys
used = set()
for line in open(sys.argv[1]):
    m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
    if m:
        used.add(m.group(1))
groups, current = {}, None
for line in open(sys.argv[2]):
    line = line.rstrip()
    if re.fullmatch(r"@[\w-]+", line):
        current = groups.setdefault(line, [])
    elif current is not None and line.strip() and not line.strip().startswith("#"):
        current.append(line.strip())
def expand(group):
    out = set()
    for member in groups.get(group, []):
        out |= expand(member) if member.startswith("@") else {member}
    return out
allowed = expand("@system-service") - expand("@privileged") - expand("@resources")
if len(used) < 20 or not allowed:
    sys.exit(f"strace or systemd-analyze gave too little: {len(used)} calls, {len(allowed)} allowed")
refused = sorted(used - allowed)
if refused:
    sys.exit(f"calls the filter refuses: {refused}")
print(f"deploy test: the unit's system call filter allows all {len(used)} calls the service made")
PY
else
    echo "deploy test: SKIPPED the system call filter check: strace or systemd-analyze is not installed"
fi

# --- 2. the reverse-proxy examples (where caddy or nginx is installed) ----------------------
if command -v caddy >/dev/null; then
    out=$(XDG_DATA_HOME=$work/caddy XDG_CONFIG_HOME=$work/caddy \
        caddy validate --adapter caddyfile --config deploy/Caddyfile 2>&1) \
        || fail "caddy validate deploy/Caddyfile: $(tail -n 3 <<<"$out")"
    echo "deploy test: deploy/Caddyfile is valid"
else
    echo "deploy test: SKIPPED deploy/Caddyfile: caddy is not installed"
fi
if command -v nginx >/dev/null && command -v openssl >/dev/null; then
    mkdir -p "$work/nginx"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=credits.example.org -keyout "$work/nginx/key.pem" -out "$work/nginx/cert.pem" \
        >/dev/null 2>&1 || fail "openssl: a test certificate"
    sed -e "s#/etc/letsencrypt/live/credits.example.org/fullchain.pem#$work/nginx/cert.pem#" \
        -e "s#/etc/letsencrypt/live/credits.example.org/privkey.pem#$work/nginx/key.pem#" \
        deploy/nginx.conf > "$work/nginx/site.conf"
    cat > "$work/nginx/nginx.conf" <<NGINX
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    include $work/nginx/site.conf;
}
NGINX
    out=$(nginx -t -c "$work/nginx/nginx.conf" 2>&1) || fail "nginx -t deploy/nginx.conf: $out"
    echo "deploy test: deploy/nginx.conf is valid (nginx -t)"
else
    echo "deploy test: SKIPPED deploy/nginx.conf: nginx or openssl is not installed"
fi

# --- 3. the image --------------------------------------------------------------------------
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
    echo "deploy test: SKIPPED the image check: podman or runc is not installed"
    exit 0
fi
if [[ $(id -u) != 0 ]]; then
    # The volume is a host directory given to the image's user 65532, which takes root.
    echo "deploy test: SKIPPED the image check: it runs podman as root (rootful), and this is uid $(id -u)"
    exit 0
fi
printf '[containers]\ndefault_ulimits = []\n' > "$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
# An image store of its own, so the test neither sees nor touches other images and containers.
P=(podman --runtime runc --cgroup-manager=cgroupfs
   --root "$work/storage" --runroot "$work/run" --tmpdir "$work/tmp")
mkdir -p "$work/tmp"
if ! "${P[@]}" info >/dev/null 2>"$work/podman-info.err"; then
    echo "deploy test: SKIPPED the image check: podman cannot run here: $(tail -n 1 "$work/podman-info.err")"
    P=()
    exit 0
fi

# The build context: the binary, the shared libraries it loads, busybox for the probe.
ctx=$work/ctx
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/data"
cp "$bin" "$ctx/rootfs/usr/local/bin/timecredits"
while read -r lib; do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
done < <(ldd "$bin" | grep -o '/[^ ]*' | sort -u)
busybox=$(command -v busybox || true)
if [[ -n $busybox ]] && file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    cp -L "$busybox" "$ctx/rootfs/usr/local/bin/busybox"
    probe=yes
else
    echo "deploy test: no statically linked busybox (Debian package busybox-static): the image has no health probe, its check is skipped"
    probe=
fi
cp deploy/Containerfile.scratch "$ctx/Containerfile"
"${P[@]}" build -q --format docker -t timecredits-test:latest "$ctx" >/dev/null \
    || fail "podman build"

hc=$("${P[@]}" image inspect -f '{{.Config.Healthcheck.Test}} {{.Config.StopSignal}} {{.Config.User}}' \
    timecredits-test:latest) || fail "podman image inspect"
[[ $hc == *"/readyz"*" SIGTERM 65532:65532" ]] || fail "image config: $hc"

data=$work/data
mkdir -m 0700 "$data"
chown 65532:65532 "$data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
container=timecredits-test-$$
origin=deploy-test.example/timecredits
"${P[@]}" run -d --name "$container" --read-only --cap-drop=ALL \
    --security-opt no-new-privileges -p "127.0.0.1:$port:8080" -v "$data:/data" \
    -e TIMECREDITS_ORIGIN="$origin" timecredits-test:latest >/dev/null 2>"$work/podman.err" \
    || fail "podman run: $(cat "$work/podman.err")"

wait_ready() {
    for _ in $(seq 1 150); do
        if curl -fsS -o /dev/null "$base/readyz" 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    "${P[@]}" logs "$container" >&2 || true
    fail "the service was not ready within 30 s"
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

wait_ready
[[ $(stat -c %u "$data/journal") == 65532 ]] || fail "the journal is not owned by the service user 65532"
admin=$(cat "$data/admin-api-key")
auth=(-H "Authorization: Bearer $admin" -H 'content-type: application/json')
partner=$(curl -fsS "$base/v1/partners" "${auth[@]}" -H 'Idempotency-Key: deploy-partner-1' \
    -d '{"name":"Deploy Test Club","roles":["earn"]}') || fail "create a partner"
partner_id=$(json 'd["partner"]["id"]' <<<"$partner")
budget=$(json 'd["partner"]["budget_account"]' <<<"$partner")
alloc=$(curl -fsS "$base/v1/allocations" "${auth[@]}" -H 'Idempotency-Key: deploy-grant-1' \
    -d '{"partner_id":"'"$partner_id"'","hours":7,"reference":"deploy test"}') || fail "allocate"
alloc_seq=$(json 'd["entry"]["seq"]' <<<"$alloc")
key_before=$(curl -fsS "$base/v1/ledger/key") || fail "GET /v1/ledger/key"
[[ $(json 'd["origin"]' <<<"$key_before") == "$origin" ]] || fail "origin: $key_before"
size_before=$(curl -fsS "$base/v1/ledger/checkpoint" | sed -n 2p)
balance() { curl -fsS "$base/v1/accounts/$budget" "${auth[@]}" | json 'd["balance_minutes"]'; }
[[ $(balance) == 420 ]] || fail "the budget is not 420 minutes before the restart"

if [[ -n $probe ]]; then
    "${P[@]}" healthcheck run "$container" >/dev/null 2>>"$work/podman.err" \
        || fail "the health check did not pass"
fi

"${P[@]}" stop -t 40 "$container" >/dev/null 2>>"$work/podman.err" || fail "podman stop"
code=$("${P[@]}" inspect -f '{{.State.ExitCode}}' "$container")
[[ $code == 0 ]] || fail "SIGTERM: the service exited $code, not 0"
"${P[@]}" run --rm --read-only -v "$data:/data" timecredits-test:latest check --data-dir /data \
    > "$work/check.out" 2>&1 || { cat "$work/check.out" >&2; fail "timecredits check on the volume"; }

"${P[@]}" start "$container" >/dev/null 2>>"$work/podman.err" || fail "podman start"
wait_ready
key_after=$(curl -fsS "$base/v1/ledger/key")
[[ $key_after == "$key_before" ]] || fail "the identity changed: $key_before -> $key_after"
[[ $(balance) == 420 ]] || fail "the budget is not 420 minutes after the restart"
[[ $(curl -fsS "$base/v1/ledger/checkpoint" | sed -n 2p) == "$size_before" ]] \
    || fail "the checkpoint size changed across the restart"
again=$(curl -fsS "$base/v1/allocations" "${auth[@]}" -H 'Idempotency-Key: deploy-grant-1' \
    -d '{"partner_id":"'"$partner_id"'","hours":7,"reference":"deploy test"}') || fail "repeat"
[[ $(json 'd["entry"]["seq"]' <<<"$again") == "$alloc_seq" ]] || fail "the repeat wrote again: $again"
[[ $(balance) == 420 ]] || fail "the repeat moved the balance"
curl -fsS "$base/v1/partners" "${auth[@]}" | grep -q 'Deploy Test Club' || fail "the partner is gone"
"${P[@]}" stop -t 40 "$container" >/dev/null 2>>"$work/podman.err"
echo "deploy test: image built FROM scratch, ran as 65532 on a volume, wrote, drained on SIGTERM (exit 0), passed timecredits check, restarted with its data and identity"
