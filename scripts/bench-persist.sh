#!/usr/bin/env bash
# Benchmarks BGSAVE: release codis-server (thread + slot-level copy-on-write, no fork) against
# redis-server (fork) in the same run, on the same data.
#
#   scripts/bench-persist.sh                  # 1,000,000 keys
#   KEYS=100000 scripts/bench-persist.sh      # quick check
#   BENCH_CLIENTS=0 scripts/bench-persist.sh  # no background GET/SET load
#
# For each server: load KEYS string keys (16-byte values), start redis-benchmark GET/SET on
# the same keys (so writes hit slots the save has not reached yet), then run BGSAVE while a
# probe sends PING every millisecond. Prints the BGSAVE duration (polled with INFO every
# 10 ms; ROUNDS saves back to back, mean shown), the probe's p50/p99/p99.9/max latency over
# all the saves, and the file size.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
KEYS="${KEYS:-1000000}"
BENCH_CLIENTS="${BENCH_CLIENTS:-10}"
ROUNDS="${ROUNDS:-5}"

cargo build --release -q -p dataplane --bin codis-server
CODIS="$CARGO_TARGET_DIR/release/codis-server"
# WORK, PIDS (killed at exit), free_port, wait_port.
source scripts/bench-lib.sh

cat >"$WORK/p.py" <<'EOF'
import os, socket, sys, time

sys.path.insert(0, "scripts")
from bench_resp import conn, enc, read  # noqa: E402

cmd, port = sys.argv[1], int(sys.argv[2])
if cmd == "load":
    keys = int(sys.argv[3])
    s, f = conn(port)
    for i in range(0, keys, 1000):
        n = min(1000, keys - i)
        s.sendall(b"".join(enc(b"SET", b"key:%012d" % j, b"v" * 16) for j in range(i, i + n)))
        for _ in range(n):
            read(f)
elif cmd == "bgsave":
    # BGSAVE, then poll INFO until it is done; prints seconds.
    s, f = conn(port)
    t = time.perf_counter()
    s.sendall(enc(b"BGSAVE"))
    print(read(f).decode(), file=sys.stderr)
    while True:
        s.sendall(enc(b"INFO", b"persistence"))
        info = read(f).decode()
        if "rdb_bgsave_in_progress:0" in info:
            break
        time.sleep(0.01)
    assert "rdb_last_bgsave_status:ok" in info, info
    print("%.2f" % (time.perf_counter() - t))
elif cmd == "probe":
    stop = sys.argv[3]
    s, f = conn(port)
    lat = []
    while not os.path.exists(stop):
        t = time.perf_counter()
        s.sendall(b"PING\r\n")
        read(f)
        lat.append((time.perf_counter() - t) * 1000)
        time.sleep(0.001)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))]
    print("%.3f %.3f %.3f %.3f %d" % (q(0.5), q(0.99), q(0.999), lat[-1], len(lat)))
EOF

run_case() { # name command...
    local name=$1
    shift
    local port dir
    port=$(free_port)
    dir="$WORK/$name"
    mkdir -p "$dir"
    "$@" --port "$port" --bind 127.0.0.1 --save "" --loglevel warning --dir "$dir" \
        >/dev/null 2>&1 &
    PIDS+=($!)
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
    python3 "$WORK/p.py" load "$port" "$KEYS"
    local bench=""
    if [ "$BENCH_CLIENTS" -gt 0 ]; then
        redis-benchmark -p "$port" -c "$BENCH_CLIENTS" -n 100000000 -t get,set -r "$KEYS" \
            -d 16 -q >/dev/null 2>&1 &
        bench=$!
    fi
    rm -f "$WORK/stop"
    python3 "$WORK/p.py" probe "$port" "$WORK/stop" >"$WORK/probe.out" &
    local probe=$!
    sleep 0.5
    local secs
    secs=$(for _ in $(seq "$ROUNDS"); do python3 "$WORK/p.py" bgsave "$port" 2>/dev/null; done |
        awk '{ t += $1 } END { printf "%.2f", t / NR }')
    touch "$WORK/stop"
    wait "$probe" || true
    if [ -n "$bench" ]; then
        kill "$bench" 2>/dev/null || true
        wait "$bench" 2>/dev/null || true
    fi
    local p50 p99 p999 max samples
    read -r p50 p99 p999 max samples <"$WORK/probe.out"
    local size
    size=$(stat -c %s "$dir/dump.rdb")
    printf '| %s | %s | %s s | %s | %s | %s | %s | %s MiB |\n' "$name" "$KEYS" "$secs" \
        "$p50" "$p99" "$p999" "$max" "$((size / 1024 / 1024))"
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
}

echo "| server | keys | BGSAVE | PING p50 ms | p99 ms | p99.9 ms | max ms | file |"
echo "|---|---|---|---|---|---|---|---|"
run_case codis-server "$CODIS"
run_case redis-server redis-server
