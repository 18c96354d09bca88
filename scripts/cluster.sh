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
if [ -z "${CODIS_BIN_DIR:-}" ]; then
    echo "== building codis-server, codis-proxy, codis-dashboard, codis-fe (release)"
    cargo build --release -p dataplane -p backend --bins
    CODIS_BIN_DIR="$CARGO_TARGET_DIR/release"
fi
if [ -z "${CODIS_UI_DIR:-}" ] && [ -x scripts/build-ui.sh ]; then
    echo "== building the web UI"
    CODIS_UI_DIR=$(scripts/build-ui.sh | tail -1)
fi
exec python3 -u scripts/platform.py --bin "$CODIS_BIN_DIR" ${CODIS_UI_DIR:+--ui "$CODIS_UI_DIR"} "$@"
