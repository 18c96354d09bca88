#!/usr/bin/env bash
# Builds everything (servers, proxy, dashboard, fe and the web UI) and starts the local
# platform in the foreground until Ctrl-C (or SIGTERM), which stops every process it started:
#   codis-fe on :9090 (console + REST API), product1 (two groups of master + replica, proxy
#   :19000), product2 (one group of master + replica, proxy :19001), their dashboards, every
#   slot assigned, a few sample keys, product1 physically and product2 logically isolated.
# The coordinator is a folder; `--coordinator zookeeper|etcd` starts one from Debian's packages.
# A second start on the same data folder (tmp/platform, or --data DIR) comes back with the
# same groups, keys and audit history. Ports move with FE_PORT, P1_PROXY_PORT, ... (see
# scripts/platform.py). CODIS_BIN_DIR / CODIS_UI_DIR use already built binaries / UI.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
command -v python3 >/dev/null || { echo "python3 is needed (apt-get install python3)" >&2; exit 1; }
# A build interrupted by Ctrl-C or SIGTERM takes cargo and its rustc processes with it: it
# runs in a session (and process group) of its own, which is killed whole. A background job
# of a script ignores SIGINT, so killing cargo alone would leave rustc running.
build() {
    setsid "$@" &
    local pid=$! rc=0
    trap 'kill -TERM -- -'"$pid"' 2>/dev/null; wait '"$pid"' 2>/dev/null || true; exit 130' INT
    trap 'kill -TERM -- -'"$pid"' 2>/dev/null; wait '"$pid"' 2>/dev/null || true; exit 143' TERM
    trap 'kill -TERM -- -'"$pid"' 2>/dev/null; wait '"$pid"' 2>/dev/null || true; exit 129' HUP
    wait "$pid" || rc=$?
    trap - INT TERM HUP
    return "$rc"
}
if [ -z "${CODIS_BIN_DIR:-}" ]; then
    echo "== building codis-server, codis-proxy, codis-dashboard, codis-fe (release)"
    build cargo build --release -p dataplane -p backend --bins
    CODIS_BIN_DIR="$CARGO_TARGET_DIR/release"
fi
if [ -z "${CODIS_UI_DIR:-}" ]; then
    echo "== building the web UI (wasm32; wasm-bindgen as a library, wasm-opt from npm)"
    rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
    CODIS_UI_DIR="$CARGO_TARGET_DIR/ui-dist"
    build cargo run -q -p xtask -- dist "$CODIS_UI_DIR"
fi
exec python3 -u scripts/platform.py --bin "$CODIS_BIN_DIR" ${CODIS_UI_DIR:+--ui "$CODIS_UI_DIR"} "$@"
