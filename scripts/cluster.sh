#!/usr/bin/env bash
# Builds and starts the local cluster and runs it in the foreground until Ctrl-C.
# Today: two codis-servers (one per group) behind one codis-proxy whose slot table is
# filled from a file (slots 0-511 on the first server, 512-1023 on the second). The
# dashboard, coordinator and web console come with their issues; there is no browser URL yet.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
PROXY_PORT="${PROXY_PORT:-19000}"
ADMIN_PORT="${ADMIN_PORT:-11080}"
S1="${S1:-6379}"
S2="${S2:-6380}"
DATA="${DATA:-$PWD/tmp/cluster}"
mkdir -p "$DATA"
cargo build --release -p dataplane --bin codis-server --bin codis-proxy
BIN="$CARGO_TARGET_DIR/release"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM
for p in "$S1" "$S2"; do
    mkdir -p "$DATA/server-$p"
    "$BIN/codis-server" --port "$p" --bind 127.0.0.1 --dir "$DATA/server-$p" \
        --logfile "$DATA/server-$p/server.log" &
    PIDS+=($!)
done
python3 - "$S1" "$S2" >"$DATA/slots.json" <<'PY'
import json, sys
a, b = sys.argv[1], sys.argv[2]
print(json.dumps([{"id": i, "backend_addr": f"127.0.0.1:{a if i < 512 else b}",
                   "backend_addr_group_id": 1 if i < 512 else 2} for i in range(1024)], indent=4))
PY
cat >"$DATA/proxy.toml" <<TOML
product_name = "codis-demo"
proxy_addr = "127.0.0.1:$PROXY_PORT"
admin_addr = "127.0.0.1:$ADMIN_PORT"
TOML
"$BIN/codis-proxy" --config "$DATA/proxy.toml" --fillslots "$DATA/slots.json" \
    --log "$DATA/proxy.log" &
PIDS+=($!)
for p in "$S1" "$S2" "$PROXY_PORT"; do
    until redis-cli -p "$p" ping >/dev/null 2>&1; do sleep 0.1; done
done
echo
echo "Local cluster is up (data and logs in $DATA):"
echo "  codis-proxy   redis-cli -p $PROXY_PORT        (admin API: http://127.0.0.1:$ADMIN_PORT/proxy)"
echo "  group 1       codis-server 127.0.0.1:$S1 (slots 0-511)"
echo "  group 2       codis-server 127.0.0.1:$S2 (slots 512-1023)"
echo "No dashboard or web console yet, so there is no browser URL. Ctrl-C stops everything."
wait
