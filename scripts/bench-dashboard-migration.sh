#!/usr/bin/env bash
# Benchmarks a dashboard-driven migration, as an operator runs it: 1,000,000 keys spread over
# 512 slots move from group 1 to group 2 with migration_parallel_slots = 100, once with
# migration_method = sync and once with semi-async, while redis-benchmark reads and writes
# through codis-proxy. Prints the migration time (keys/s) and the clients' latency
# percentiles (from redis-benchmark's CSV, max over the back-to-back runs during the
# migration) and the number of client errors.
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
CLIENTS="${CLIENTS:-20}"

cargo build --release -q -p dataplane --bin codis-server --bin codis-proxy
cargo build --release -q -p backend --bin codis-dashboard
BIN="$CARGO_TARGET_DIR/release"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do sleep 0.05; done; }
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
    "$BIN/codis-proxy" --config "$dir/proxy.toml" --dashboard "127.0.0.1:$DPORT" --ncpu 1 --log-level warn 2>/dev/null &
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
    # Clients through the proxy: back-to-back redis-benchmark runs over keys of all slots.
    : >"$dir/bench.csv"
    (
        while [ ! -f "$dir/stop" ]; do
            redis-benchmark -p "$PPORT" -c "$CLIENTS" -n 50000 -r 2000000 -t set,get -d 16 --csv 2>>"$dir/bench.err" \
                | grep -v '^"test"' >>"$dir/bench.csv" || true
        done
    ) &
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
    local moved secs
    moved=$(redis-cli -p "$S2" dbsize)
    secs=$(python3 -c "print(round($t1 - $t0, 2))")
    echo "== migration_method = $method: $moved of $loaded keys ($SLOTS slots, parallel $PARALLEL) in ${secs}s = $(python3 -c "print(int($moved / ($t1 - $t0)))") keys/s; source left: $(redis-cli -p "$S1" dbsize)"
    # CSV: "test","rps","avg","min","p50","p95","p99","max"
    python3 - "$dir/bench.csv" <<'EOF'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) >= 8]
for t in ("SET", "GET"):
    rs = [r for r in rows if r[0] == t]
    if not rs:
        continue
    f = lambda i: max(float(r[i]) for r in rs)
    print(f"   clients {t}: {len(rs)} runs, rps min {min(float(r[1]) for r in rs):.0f}, p50 max {f(4):.3f} ms, p99 max {f(6):.3f} ms, max {f(7):.3f} ms")
EOF
    local errs
    errs=$(grep -ci 'error' "$dir/bench.err" || true)
    echo "   client error lines: $errs"
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    PIDS=()
    sleep 0.5
}

for m in $METHODS; do run "$m"; done
