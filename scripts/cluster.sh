#!/usr/bin/env bash
# Builds and starts the local cluster. Today the cluster is one codis-server (the proxy,
# dashboard and web console come with their issues); it runs in the foreground until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
PORT="${PORT:-6379}"
DATA="${DATA:-$PWD/tmp/cluster}"
mkdir -p "$DATA"
cargo build --release -p dataplane --bin codis-server
echo
echo "Starting codis-server on 127.0.0.1:$PORT (data dir $DATA)."
echo "Only the server exists so far: no proxy, dashboard or web UI yet, so there is no browser URL."
echo "Point redis-cli at it:   redis-cli -p $PORT"
echo
exec "$CARGO_TARGET_DIR/release/codis-server" --port "$PORT" --bind 127.0.0.1 --dir "$DATA"
