#!/usr/bin/env bash
# The consistency check under faults (tests/tests/cluster/consistency.rs) at a bigger size than CI's,
# printing its figures: operations acknowledged (durable: covered by WAIT 1), acknowledged only,
# indeterminate, migrations done per method, the faults, and each check's result.
#
#   scripts/consistency.sh                              # 180 s of faults, 16 clients
#   CONSISTENCY_SECS=600 CONSISTENCY_CLIENTS=32 scripts/consistency.sh
#   CONSISTENCY_BALLAST=8000 scripts/consistency.sh     # keys beside the clients' in slot 7
#
# Needs Debian's zookeeper and redis-sentinel (see docs/TESTING.md). Exits non-zero when a
# check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
export CONSISTENCY_SECS="${CONSISTENCY_SECS:-180}"
export CONSISTENCY_CLIENTS="${CONSISTENCY_CLIENTS:-16}"
# The test starts the binaries of this tree: build them first.
cargo build -q -p dataplane -p backend --bins
cargo test -q -p e2e --test cluster consistency:: -- --nocapture 2>&1 |
    grep -E '^\[|^---- consistency|^clients|^WAIT|^migrations|^failovers|^list audits|^client errors|^check |^    [^ ]|^result'
