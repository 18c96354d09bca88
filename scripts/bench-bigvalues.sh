#!/usr/bin/env bash
# Big values, codis-server vs Debian's redis-server on this machine: one client
# (`redis-benchmark -c 1`) SETting and GETting a value of SIZE bytes, the servers taking turns
# for each round so both see the same conditions. Prints seconds per run (lower is better).
#
#   scripts/bench-bigvalues.sh                       # 4 MiB, 500 SETs and 2,000 GETs, 3 rounds
#   SIZE=1048576 ROUNDS=5 scripts/bench-bigvalues.sh
#   BASELINE_SERVER=/path/to/old/codis-server scripts/bench-bigvalues.sh   # adds a column
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
SIZE="${SIZE:-4194304}"
SETS="${SETS:-500}"
GETS="${GETS:-2000}"
ROUNDS="${ROUNDS:-3}"
BASELINE_SERVER="${BASELINE_SERVER:-}"
. scripts/bench-lib.sh

cargo build --release -q -p dataplane --bin codis-server
CODIS="$CARGO_TARGET_DIR/release/codis-server"
NAMES=(redis-server codis-server)
RP=$(free_port); CP=$(free_port)
mkdir -p "$WORK/r" "$WORK/c" "$WORK/b"
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
    --dir "$WORK/r" >/dev/null 2>&1 &
PIDS+=($!)
"$CODIS" --port "$CP" --bind 127.0.0.1 --loglevel warning --dir "$WORK/c" >/dev/null 2>&1 &
PIDS+=($!)
PORTS=("$RP" "$CP")
if [ -n "$BASELINE_SERVER" ]; then
    BP=$(free_port)
    "$BASELINE_SERVER" --port "$BP" --bind 127.0.0.1 --loglevel warning --dir "$WORK/b" \
        >/dev/null 2>&1 &
    PIDS+=($!)
    PORTS+=("$BP")
    NAMES+=(baseline)
fi
for p in "${PORTS[@]}"; do wait_port "$p"; done

head -c "$SIZE" /dev/zero | tr '\0' x >"$WORK/value"
for p in "${PORTS[@]}"; do redis-cli -p "$p" -x SET big <"$WORK/value" >/dev/null; done

seconds() { # port, then redis-benchmark arguments -> elapsed seconds
    local p=$1
    shift
    local s e
    s=$(date +%s.%N)
    redis-benchmark -p "$p" -c 1 -q "$@" >/dev/null 2>&1
    e=$(date +%s.%N)
    python3 -c "print(f'{$e - $s:.2f}')"
}

echo "machine: $(nproc) cores; redis-server $(redis-server --version | awk '{print $3}'); value $SIZE bytes"
header="| round | row |"
for n in "${NAMES[@]}"; do header="$header $n |"; done
echo "$header"
echo "|---|---|$(printf -- '---|%.0s' "${PORTS[@]}")"
for r in $(seq "$ROUNDS"); do
    row="| $r | $SETS SET |"
    for p in "${PORTS[@]}"; do row="$row $(seconds "$p" -n "$SETS" -d "$SIZE" -t set) s |"; done
    echo "$row"
    row="| $r | $GETS GET |"
    for p in "${PORTS[@]}"; do row="$row $(seconds "$p" -n "$GETS" GET big) s |"; done
    echo "$row"
done
