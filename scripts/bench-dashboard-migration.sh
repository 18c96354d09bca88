#!/usr/bin/env bash
# Benchmarks a dashboard-driven migration, as an operator runs it: 1,000,000 keys spread over
# 512 slots move from group 1 to group 2 with migration_parallel_slots = 100, once with
# migration_method = sync and once with semi-async, while clients read and write keys of the
# moving slots through codis-proxy (CLIENTS connections, one request per millisecond each).
# Prints the migration time (keys/s), the clients' latency percentiles and their errors.
#
#   scripts/bench-dashboard-migration.sh             # 1,000,000 keys
#   KEYS=100000 scripts/bench-dashboard-migration.sh # quick check
#
# Everything runs on 127.0.0.1 in a temp dir with a filesystem coordinator; release builds.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
KEYS="${KEYS:-1000000}"
SLOTS="${SLOTS:-512}"
PARALLEL="${PARALLEL:-100}"
METHODS="${METHODS:-sync semi-async}"
CLIENTS="${CLIENTS:-4}"

cargo build --release -q -p dataplane --bin codis-server --bin codis-proxy
cargo build --release -q -p backend --bin codis-dashboard
BIN="$CARGO_TARGET_DIR/release"
# WORK, PIDS (killed at exit), free_port, wait_port.
source scripts/bench-lib.sh
xauth=$(python3 -c 'import hashlib; print(hashlib.sha256(b"Codis-XAuth-[bench]").hexdigest()[:32])')
api() { # METHOD PATH -> body; fails on a non-200 status
    local out code
    out=$(curl -s -w '\n%{http_code}' -X "$1" "http://127.0.0.1:$DPORT$2")
    code=${out##*$'\n'}
    [ "$code" = 200 ] || { echo "API $1 $2 -> $code ${out%$'\n'*}" >&2; return 1; }
    echo "${out%$'\n'*}"
}

# Keys without hash tags whose slot is below $SLOTS, as redis-cli --pipe input.
python3 - "$KEYS" "$SLOTS" >"$WORK/load.txt" <<'EOF'
import sys, zlib
n, slots = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout
i = made = 0
while made < n:
    k = b"key:%d" % i
    i += 1
    if zlib.crc32(k) % 1024 < slots:
        out.write("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$8\r\nvalue-%02d\r\n" % (len(k), k.decode(), made % 100))
        made += 1
EOF

run() { # method
    local method=$1 dir="$WORK/$1"
    mkdir -p "$dir"
    S1=$(free_port); S2=$(free_port); DPORT=$(free_port); PPORT=$(free_port); PADMIN=$(free_port)
    for p in $S1 $S2; do
        "$BIN/codis-server" --port "$p" --bind 127.0.0.1 --loglevel warning --dir "$dir" >/dev/null 2>&1 &
        PIDS+=($!)
        wait_port "$p"
    done
    cat >"$dir/dashboard.toml" <<EOT
coordinator_name = "filesystem"
coordinator_addr = "$dir/coord"
product_name = "bench"
admin_addr = "127.0.0.1:$DPORT"
migration_method = "$method"
migration_parallel_slots = $PARALLEL
EOT
    "$BIN/codis-dashboard" --config "$dir/dashboard.toml" --log "$dir/dashboard.log" --log-level warn &
    PIDS+=($!)
    wait_port "$DPORT"
    cat >"$dir/proxy.toml" <<EOT
product_name = "bench"
proxy_addr = "127.0.0.1:$PPORT"
admin_addr = "127.0.0.1:$PADMIN"
EOT
    "$BIN/codis-proxy" --config "$dir/proxy.toml" --dashboard "127.0.0.1:$DPORT" --ncpu 1 --log-level error >/dev/null 2>&1 &
    PIDS+=($!)
    api PUT "/api/topom/group/create/$xauth/1" >/dev/null
    api PUT "/api/topom/group/create/$xauth/2" >/dev/null
    api PUT "/api/topom/group/add/$xauth/1/127.0.0.1:$S1" >/dev/null
    api PUT "/api/topom/group/add/$xauth/2/127.0.0.1:$S2" >/dev/null
    python3 -c 'import json; print(json.dumps([{"id": i, "group_id": 1} for i in range(1024)]))' >"$dir/assign.json"
    curl -sf -X PUT --data-binary @"$dir/assign.json" "http://127.0.0.1:$DPORT/api/topom/slots/assign/$xauth" >/dev/null
    until redis-cli -p "$PPORT" ping 2>/dev/null | grep -q PONG; do sleep 0.1; done
    redis-cli -p "$S1" --pipe <"$WORK/load.txt" >/dev/null
    local loaded
    loaded=$(redis-cli -p "$S1" dbsize)
    # Clients through the proxy: $CLIENTS connections, each a SET or GET of a random key of
    # the moving slots every millisecond (a steady load, not a saturating one, so the
    # latencies are the migration's effect and not the 2-core machine's queueing).
    python3 - "$PPORT" "$CLIENTS" "$dir/stop" "$KEYS" "$SLOTS" >"$dir/clients.txt" 2>&1 <<'EOF2' &
import os, random, socket, sys, threading, time
port, n, stop, nkeys = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
lat, errors, lock = [], [0], threading.Lock()
def enc(*a):
    return b"".join([b"*%d\r\n" % len(a)] + [b"$%d\r\n%s\r\n" % (len(x), x) for x in a])
def worker(seed):
    rnd = random.Random(seed)
    s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    mine = []
    while not os.path.exists(stop):
        k = b"key:%d" % rnd.randrange(nkeys * 2)
        cmd = enc(b"SET", k, b"x") if rnd.random() < 0.5 else enc(b"GET", k)
        t = time.perf_counter()
        s.sendall(cmd)
        line = f.readline()
        if line[:1] == b"$" and int(line[1:]) >= 0:
            f.read(int(line[1:]) + 2)
        mine.append(time.perf_counter() - t)
        if line[:1] == b"-" or not line:
            with lock: errors[0] += 1
        time.sleep(0.001)
    with lock: lat.extend(mine)
ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
for t in ts: t.start()
for t in ts: t.join()
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1000
print(f"   clients: {len(lat)} requests, {errors[0]} errors, p50 {q(0.5):.3f} ms, p99 {q(0.99):.3f} ms, p99.9 {q(0.999):.3f} ms, max {lat[-1]*1000:.3f} ms")
EOF2
    local bench=$!
    sleep 2
    local t0 t1
    t0=$(date +%s.%N)
    api PUT "/api/topom/slots/action/create-range/$xauth/0/$((SLOTS - 1))/2" >/dev/null
    while :; do
        local left
        left=$(api GET "/api/topom/stats/$xauth" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(sum(1 for m in s["slots"] if m["action"] or (m["id"] < '"$SLOTS"' and m["group_id"] != 2)))')
        [ "$left" = 0 ] && break
        sleep 0.2
    done
    t1=$(date +%s.%N)
    touch "$dir/stop"
    wait "$bench" 2>/dev/null || true
    local secs left_on_source
    secs=$(python3 -c "print(round($t1 - $t0, 2))")
    # Keys of the moved slots still on the source (must be 0): SLOTSINFO 0 SLOTS.
    left_on_source=$(redis-cli -p "$S1" slotsinfo 0 "$SLOTS" | awk 'NR % 2 == 0 { n += $1 } END { print n + 0 }')
    echo "== migration_method = $method: $loaded keys in $SLOTS slots (parallel $PARALLEL) moved in ${secs}s = $(python3 -c "print(int($loaded / ($t1 - $t0)))") keys/s; left on the source: $left_on_source"
    cat "$dir/clients.txt"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    PIDS=()
    sleep 0.5
}

for m in $METHODS; do run "$m"; done
