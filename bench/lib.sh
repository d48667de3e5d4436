# Shared by the bench scripts (sourced, not run): starting a throwaway timecredits service.

# A free TCP port on 127.0.0.1. The address must be known before the clients start, so the
# kernel picks one and it is handed over (a race with other programs is harmless here).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_service BIN DATA_DIR PORT LOG [serve options...]: starts the service in the background,
# sets server_pid, and returns once it answers /healthz and has written its administrator key.
start_service() {
    local bin="$1" data="$2" port="$3" log="$4"
    shift 4
    "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" "$@" >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        if [[ -s "$data/admin-api-key" ]] && curl -fs "http://127.0.0.1:$port/healthz" >/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "the service did not start; its log:" >&2
    cat "$log" >&2
    return 1
}

# Stops the service start_service started, if it runs.
stop_service() {
    if [[ -n "${server_pid:-}" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
