#!/usr/bin/env bash
# Builds and starts the local cluster and runs it in the foreground until Ctrl-C:
# a filesystem coordinator (a folder), codis-dashboard, two groups of one codis-server each,
# and one codis-proxy that comes online through the dashboard; the 1024 slots are split
# between the groups with the dashboard's rebalance. The web console (codis-fe) comes with
# its issue; until then the browser URL is the dashboard's overview JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
PRODUCT="${PRODUCT:-codis-demo}"
PROXY_PORT="${PROXY_PORT:-19000}"
ADMIN_PORT="${ADMIN_PORT:-11080}"
DASHBOARD_PORT="${DASHBOARD_PORT:-18080}"
S1="${S1:-6379}"
S2="${S2:-6380}"
DATA="${DATA:-$PWD/tmp/cluster}"
mkdir -p "$DATA"
cargo build --release -p dataplane --bin codis-server --bin codis-proxy
cargo build --release -p backend --bin codis-dashboard
BIN="$CARGO_TARGET_DIR/release"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM
for p in "$S1" "$S2"; do
    mkdir -p "$DATA/server-$p"
    "$BIN/codis-server" --port "$p" --bind 127.0.0.1 --dir "$DATA/server-$p" \
        --logfile "$DATA/server-$p/server.log" &
    PIDS+=($!)
done
for p in "$S1" "$S2"; do
    until redis-cli -p "$p" ping >/dev/null 2>&1; do sleep 0.1; done
done
cat >"$DATA/dashboard.toml" <<TOML
coordinator_name = "filesystem"
coordinator_addr = "$DATA/coordinator"
product_name = "$PRODUCT"
admin_addr = "127.0.0.1:$DASHBOARD_PORT"
TOML
"$BIN/codis-dashboard" --config "$DATA/dashboard.toml" --log "$DATA/dashboard.log" &
PIDS+=($!)
XAUTH=$(python3 -c "import hashlib; print(hashlib.sha256(b'Codis-XAuth-[$PRODUCT]').hexdigest()[:32])")
api() { # PATH: PUT, print the Codis error body on failure
    local out
    out=$(curl -s -w '\n%{http_code}' -X PUT "http://127.0.0.1:$DASHBOARD_PORT/api/topom/$1/$XAUTH${2:-}")
    [ "${out##*$'\n'}" = 200 ] || { echo "dashboard: $1 failed: ${out%$'\n'*}" >&2; return 1; }
}
until curl -sf "http://127.0.0.1:$DASHBOARD_PORT/topom/model" >/dev/null; do sleep 0.1; done
# A second start on the same folder finds the groups already there.
api group/create /1 2>/dev/null || true
api group/create /2 2>/dev/null || true
api group/add "/1/127.0.0.1:$S1" 2>/dev/null || true
api group/add "/2/127.0.0.1:$S2" 2>/dev/null || true
cat >"$DATA/proxy.toml" <<TOML
product_name = "$PRODUCT"
proxy_addr = "127.0.0.1:$PROXY_PORT"
admin_addr = "127.0.0.1:$ADMIN_PORT"
TOML
"$BIN/codis-proxy" --config "$DATA/proxy.toml" --dashboard "127.0.0.1:$DASHBOARD_PORT" \
    --log "$DATA/proxy.log" &
PIDS+=($!)
api slots/rebalance /1
until redis-cli -p "$PROXY_PORT" ping 2>/dev/null | grep -q PONG; do sleep 0.1; done
# Wait for rebalance to assign every slot.
until curl -sf "http://127.0.0.1:$DASHBOARD_PORT/topom/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(0 if all(m["group_id"] and not m["action"] for m in s["slots"]) else 1)'; do sleep 0.2; done
echo
echo "Local cluster is up (data and logs in $DATA):"
echo "  codis-proxy      redis-cli -p $PROXY_PORT        (admin API: http://127.0.0.1:$ADMIN_PORT/proxy)"
echo "  codis-dashboard  http://127.0.0.1:$DASHBOARD_PORT/topom  (xauth $XAUTH)"
echo "  group 1          codis-server 127.0.0.1:$S1 (slots 0-511)"
echo "  group 2          codis-server 127.0.0.1:$S2 (slots 512-1023)"
echo "Point a browser at http://127.0.0.1:$DASHBOARD_PORT/topom (the web console comes with codis-fe)."
echo "Ctrl-C stops everything."
wait
