#!/usr/bin/env bash
# Figures of the web console (docs/BENCHMARKS.md, "Web console"):
# - the bundle: each file's size and the size served gzipped (the .gz siblings codis-fe sends);
# - total first-visit download and time from navigation to an interactive product list (with
#   an empty browser cache, and again with the bundle cached), read from the Performance API
#   in headless Chromium by the browser test;
# - requests per minute of an idle open page (product list, product overview), counted by the
#   browser test over CODIS_UI_IDLE_SECS (default 60) seconds per page.
# Needs what scripts/test.sh installs (chromium, chromium-driver, the wasm32 target, npm).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
export CODIS_UI_DIST="$CARGO_TARGET_DIR/ui-dist"
export CODIS_UI_IDLE_SECS="${CODIS_UI_IDLE_SECS:-60}"

echo "== bundle"
cargo run -q -p xtask -- dist "$CODIS_UI_DIST" 2>/dev/null | tee /tmp/bench-ui-sizes.txt
echo "== browser (idle pages counted for ${CODIS_UI_IDLE_SECS}s each)"
cargo build -q --bins -p backend -p dataplane
cargo test -q -p e2e --test cluster ui:: -- --nocapture 2>&1 | grep -E '^UI-FIGURE|test result' \
    | sed 's/^UI-FIGURE //'
