#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, clippy, unit and integration tests
# (the integration tests start real redis-server processes to compare replies byte for byte).
# Installs what it needs (Debian's redis-server, redis-tools, redis-sentinel, zookeeper,
# etcd-server, chromium, chromium-driver), schemathesis (pip) and the wasm32 target when
# missing; builds the web UI bundle (xtask) that the browser test serves.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
# Debian packages the tests run: redis-server/redis-tools (differential tests), zookeeper and
# etcd-server (the coordinator conformance tests start both on free loopback ports),
# redis-sentinel (the proxy follows a sentinel failover).
missing=()
if ! need redis-server || ! need redis-cli || ! need redis-benchmark; then
    missing+=(redis-server redis-tools)
fi
if ! need java || [ ! -f /usr/share/java/zookeeper.jar ]; then
    missing+=(zookeeper)
fi
if ! need etcd; then
    missing+=(etcd-server)
fi
if ! need redis-sentinel; then
    missing+=(redis-sentinel)
fi
# The web console's browser test (tests/tests/cluster/ui.rs) drives Chromium through WebDriver.
if ! need chromium || ! need chromedriver; then
    missing+=(chromium chromium-driver)
fi
# The UI bundle's wasm-opt comes from npm's binaryen (xtask installs it with npm).
if ! need npm; then
    missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "== installing ${missing[*]} (apt)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup component add clippy rustfmt >/dev/null 2>&1 || true
# The web UI is compiled to wasm32; CI starts with only the host target.
rustup target add wasm32-unknown-unknown
# schemathesis (PyPI) fuzzes codis-fe's API from its OpenAPI document in the cluster test.
if ! need schemathesis; then
    echo "== installing schemathesis (pip)"
    python3 -m pip install -q schemathesis
    hash -r
fi
need schemathesis || { echo "schemathesis is not on PATH after pip install" >&2; exit 1; }

# The build cache lives outside the clone so repeated runs (and CI) reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
# The frontend as the browser runs it.
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings
echo "== web UI bundle (xtask: wasm32 build, wasm-bindgen, npm binaryen wasm-opt, gzip)"
cargo run -q -p xtask -- dist "$CARGO_TARGET_DIR/ui-dist"
export CODIS_UI_DIST="$CARGO_TARGET_DIR/ui-dist"
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary, the last being the
# doc tests, which are few).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
