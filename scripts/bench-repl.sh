#!/usr/bin/env bash
# Benchmarks replication: release codis-server against Debian's redis-server in the same run.
#
#   scripts/bench-repl.sh                 # 1,000,000 keys
#   KEYS=100000 scripts/bench-repl.sh     # quick check
#
# For each server kind (a codis master with a codis replica, a redis master with a redis
# replica): load KEYS string keys (16-byte values); measure the master's SET throughput with
# redis-benchmark (-P 16, 50 clients) with no replica; start a replica and time REPLICAOF
# until the replica's link is up and its offset equals the master's (full resync: payload,
# load, catch-up; redis with diskless sync and no delay, its default apart from the delay);
# then the same SET throughput with the replica attached. The master's CPU time per SET
# (user + system, from /proc) is printed beside each throughput: on this 2-core machine the
# replica process takes CPU from the master, so the CPU cost is the figure that carries over
# to a replica on its own machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
KEYS="${KEYS:-1000000}"
REQS="${REQS:-2000000}"

cargo build --release -q -p dataplane --bin codis-server
CODIS="$CARGO_TARGET_DIR/release/codis-server"
# WORK, PIDS (killed at exit), free_port, wait_port.
source scripts/bench-lib.sh

cat >"$WORK/p.py" <<'EOF'
import socket, sys, time

sys.path.insert(0, "scripts")
from bench_resp import conn, enc, read  # noqa: E402

def field(s, f, name):
    s.sendall(enc(b"INFO", b"replication"))
    for l in read(f).decode().splitlines():
        if l.startswith(name + ":"):
            return l.split(":", 1)[1]
    return ""

cmd, port = sys.argv[1], int(sys.argv[2])
if cmd == "load":
    keys = int(sys.argv[3])
    s, f = conn(port)
    for i in range(0, keys, 1000):
        n = min(1000, keys - i)
        s.sendall(b"".join(enc(b"SET", b"key:%012d" % j, b"v" * 16) for j in range(i, i + n)))
        for _ in range(n):
            read(f)
elif cmd == "sync":
    # REPLICAOF on the replica (argv[3]) until its link is up at the master's offset.
    mport = port
    rport = int(sys.argv[3])
    m, mf = conn(mport)
    r, rf = conn(rport)
    t = time.perf_counter()
    r.sendall(enc(b"REPLICAOF", b"127.0.0.1", mport))
    read(rf)
    while True:
        if field(r, rf, "master_link_status") == "up" and \
                field(r, rf, "slave_repl_offset") == field(m, mf, "master_repl_offset"):
            break
        time.sleep(0.01)
    print("%.2f" % (time.perf_counter() - t))
elif cmd == "sink":
    # A replica that costs this machine almost nothing (as one on another machine would):
    # PSYNC, then read the payload and the stream into nothing, acking once a second.
    s, f = conn(port)
    # Redis refuses a PSYNC pipelined behind another request ("pending output").
    s.sendall(enc(b"REPLCONF", b"listening-port", b"1"))
    f.readline()
    s.sendall(enc(b"PSYNC", b"?", b"-1"))
    f.readline()
    line = f.readline()
    while line.strip() == b"":
        line = f.readline()
    if line.startswith(b"$EOF:"):
        # Diskless: the payload ends with the 40-byte mark.
        mark, buf = line[5:45], b""
        while mark not in buf:
            buf = buf[-40:] + f.read1(1 << 20)
    else:
        n = int(line[1:])
        while n > 0:
            n -= len(f.read(min(n, 1 << 20)))
    off, last = 0, time.time()
    open(sys.argv[3], "w").write("ready")
    while True:
        b = f.read1(1 << 20)
        if not b:
            break
        off += len(b)
        if time.time() - last >= 1:
            s.sendall(enc(b"REPLCONF", b"ACK", off))
            last = time.time()
EOF

start() { # kind port
    mkdir -p "$WORK/$2"
    if [ "$1" = codis ]; then
        "$CODIS" --port "$2" --save "" --dir "$WORK/$2" >"$WORK/$2.log" 2>&1 &
    else
        (cd "$WORK/$2" && exec redis-server --port "$2" --save "" --appendonly no \
            --repl-diskless-sync yes --repl-diskless-sync-delay 0 >"$WORK/$2.log" 2>&1) &
    fi
    PIDS+=($!)
    for _ in $(seq 100); do redis-cli -p "$2" ping >/dev/null 2>&1 && return; sleep 0.05; done
    echo "$1 did not start" >&2; exit 1
}

sets() { # port -> SET ops/s
    redis-benchmark -p "$1" -t set -P 16 -c 50 -n "$REQS" -r "$KEYS" -d 16 -q 2>/dev/null \
        | tr '\r' '\n' | grep -o 'SET: [0-9.]*' | tail -1 | awk '{print $2}'
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
timed_sets() { # port pid -> "ops/s, X.XX us CPU/SET"
    local t0 t1 ops
    t0=$(cpu_ticks "$2")
    ops=$(sets "$1")
    t1=$(cpu_ticks "$2")
    echo "$ops/s, $(python3 -c "print(f'{($t1-$t0)/$TCK/$REQS*1e6:.2f}')") us CPU/SET"
}

echo "| master | keys | SET -P 16, no replica | full resync | SET -P 16, replica attached | SET -P 16, sink replica |"
echo "|---|---|---|---|---|---|"
for kind in codis redis; do
    mp=$(free_port); start "$kind" "$mp"; mpid=${PIDS[-1]}
    python3 "$WORK/p.py" load "$mp" "$KEYS"
    alone=$(timed_sets "$mp" "$mpid")
    rp=$(free_port); start "$kind" "$rp"
    secs=$(python3 "$WORK/p.py" sync "$mp" "$rp")
    with=$(timed_sets "$mp" "$mpid")
    for p in "${PIDS[@]:1}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    rm -f "$WORK/sink.ready"
    python3 "$WORK/p.py" sink "$mp" "$WORK/sink.ready" & PIDS+=($!)
    until [ -f "$WORK/sink.ready" ]; do sleep 0.05; done
    sink=$(timed_sets "$mp" "$mpid")
    echo "| $kind-server | $KEYS | $alone | $secs s | $with | $sink |"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    PIDS=()
    sleep 0.5
done
