#!/usr/bin/env bash
# Benchmarks the asynchronous slot migration between two release codis-servers.
#
#   scripts/bench-migration.sh                 # 1,000,000 keys / 1,000,000 hash fields
#   KEYS=10000 FIELDS=10000 scripts/bench-migration.sh   # quick check
#
# Two scenarios, each on a fresh pair of servers:
#   1. KEYS small tagged keys in ONE slot, moved with SLOTSMGRTTAGSLOT-ASYNC
#      (KEY_TAGS distinct tags that all hash to that slot, so batches stay ~NUMKEYS keys);
#   2. one hash of FIELDS fields, moved with SLOTSMGRTSLOT-ASYNC (chunked).
# Both use the dashboard's parameters: maxbulks 200, maxbytes 32 MiB, numkeys 500.
# While a slot moves, redis-benchmark runs GET/SET on other keys of the source, and a probe
# measures the source's PING latency (p99.9 and max). Prints keys (or fields) per second,
# the latency figures, the source's RSS before and the target's RSS after.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
KEYS="${KEYS:-1000000}"
FIELDS="${FIELDS:-1000000}"
KEY_TAGS="${KEY_TAGS:-2000}"
MAXBULKS="${MAXBULKS:-200}"
MAXBYTES="${MAXBYTES:-33554432}"
NUMKEYS="${NUMKEYS:-500}"
TIMEOUT_MS="${TIMEOUT_MS:-5000}"
BENCH_CLIENTS="${BENCH_CLIENTS:-20}"

cargo build --release -q -p dataplane --bin codis-server
CODIS="$CARGO_TARGET_DIR/release/codis-server"
# WORK, PIDS (killed at exit), free_port, wait_port.
source scripts/bench-lib.sh
start() { # -> port
    local port
    port=$(free_port)
    "$CODIS" --port "$port" --bind 127.0.0.1 --loglevel warning --dir "$WORK" >/dev/null 2>&1 &
    PIDS+=($!)
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
    echo "$port"
}
rss_kb() { # port -> RSS in KiB of the server listening there
    local pid
    pid=$(redis-cli -p "$1" info server | tr -d '\r' | awk -F: '/^process_id:/ {print $2}')
    awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"
}

# Python helpers: load data, drive the migration, probe latency. Plain sockets, no modules.
cat >"$WORK/mig.py" <<'EOF'
import socket, sys, time, zlib

sys.path.insert(0, "scripts")
from bench_resp import conn, enc, read  # noqa: E402

def pipeline(port, cmds, batch=1000):
    s, f = conn(port)
    for i in range(0, len(cmds), batch):
        chunk = cmds[i:i + batch]
        s.sendall(b"".join(chunk))
        for _ in chunk:
            read(f)

def slot_tags(slot, n):
    """n distinct hash tags whose crc32 % 1024 == slot."""
    tags, i = [], 0
    while len(tags) < n:
        t = b"t%d" % i
        if zlib.crc32(t) % 1024 == slot:
            tags.append(t)
        i += 1
    return tags

cmd = sys.argv[1]
if cmd == "load-keys":
    port, keys, ntags, slot = map(int, sys.argv[2:6])
    tags = slot_tags(slot, ntags)
    cmds = [enc(b"SET", b"{%s}:%d" % (tags[i % ntags], i), b"v" * 16) for i in range(keys)]
    pipeline(port, cmds)
elif cmd == "load-hash":
    port, fields = int(sys.argv[2]), int(sys.argv[3])
    cmds = []
    for p in range(0, fields, 1000):
        args = [b"HSET", b"bighash"]
        for j in range(p, min(p + 1000, fields)):
            args += [b"field:%d" % j, b"%d" % j]
        cmds.append(enc(*args))
    pipeline(port, cmds, batch=50)
elif cmd == "migrate":
    port, tport, slot = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    verb, maxbulks, maxbytes, numkeys, timeout = sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8], sys.argv[9]
    s, f = conn(port)
    start, moved, calls = time.time(), 0, 0
    while True:
        s.sendall(enc(verb, "127.0.0.1", tport, timeout, maxbulks, maxbytes, slot, numkeys))
        n, remaining = read(f)
        moved += n
        calls += 1
        if remaining == 0:
            break
    print("%d %.3f %d" % (moved, time.time() - start, calls))
elif cmd == "probe":
    # PING the source every ms until the stop file appears; print p99.9 and max (ms).
    port, stop = int(sys.argv[2]), sys.argv[3]
    import os
    s, f = conn(port)
    lat = []
    while not os.path.exists(stop):
        t = time.perf_counter()
        s.sendall(b"PING\r\n")
        read(f)
        lat.append((time.perf_counter() - t) * 1000)
        time.sleep(0.001)
    lat.sort()
    p999 = lat[min(len(lat) - 1, int(len(lat) * 0.999))] if lat else 0
    print("%.3f %.3f %d" % (p999, lat[-1] if lat else 0, len(lat)))
EOF

SLOT=100
run_case() { # name load-args verb count label
    local name=$1 load=$2 verb=$3 unit=$4 label=$5
    local src dst
    src=$(start); dst=$(start)
    # shellcheck disable=SC2086
    python3 "$WORK/mig.py" ${load//%s/$src} >/dev/null
    local src_rss
    src_rss=$(rss_kb "$src")
    # Background GET/SET load on the source, in DB 1 so it never touches the moving slot.
    redis-benchmark -p "$src" --dbnum 1 -c "$BENCH_CLIENTS" -n 100000000 -t get,set -r 100000 -d 16 -q \
        >/dev/null 2>&1 &
    local bench=$!
    rm -f "$WORK/stop"
    python3 "$WORK/mig.py" probe "$src" "$WORK/stop" >"$WORK/probe.out" &
    local probe=$!
    sleep 0.5
    local res
    res=$(python3 "$WORK/mig.py" migrate "$src" "$dst" "$SLOT" "$verb" "$MAXBULKS" "$MAXBYTES" \
        "$NUMKEYS" "$TIMEOUT_MS")
    touch "$WORK/stop"
    wait "$probe" || true
    kill "$bench" 2>/dev/null || true
    wait "$bench" 2>/dev/null || true
    local moved secs calls p999 max samples
    read -r moved secs calls <<<"$res"
    read -r p999 max samples <"$WORK/probe.out"
    local dst_rss
    dst_rss=$(rss_kb "$dst")
    local per_sec
    per_sec=$(python3 -c "print(int($unit / max($secs, 1e-9)))")
    printf '| %s | %s keys in %s s (%s calls) | %s %s/s | %s ms | %s ms | %s MiB | %s MiB |\n' \
        "$name" "$moved" "$secs" "$calls" "$per_sec" "$label" \
        "$p999" "$max" "$((src_rss / 1024))" "$((dst_rss / 1024))"
}

echo "| scenario | moved | rate | source PING p99.9 | source PING max | source RSS before | target RSS after |"
echo "|---|---|---|---|---|---|---|"
run_case "$KEYS tagged keys, 1 slot, SLOTSMGRTTAGSLOT-ASYNC" "load-keys %s $KEYS $KEY_TAGS $SLOT" \
    SLOTSMGRTTAGSLOT-ASYNC "$KEYS" keys
# bighash's slot.
SLOT=$(python3 -c 'import zlib; print(zlib.crc32(b"bighash") % 1024)')
run_case "1 hash of $FIELDS fields, SLOTSMGRTSLOT-ASYNC" "load-hash %s $FIELDS" \
    SLOTSMGRTSLOT-ASYNC "$FIELDS" fields
