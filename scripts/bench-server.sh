#!/usr/bin/env bash
# Benchmarks codis-server against Debian's redis-server on this machine, alternating the two
# for every row so both see the same conditions, and prints a Markdown table with ratios.
#
#   scripts/bench-server.sh            # defaults: -c 50 -n 200000, -P 1 and -P 16
#   N=1000000 CLIENTS=50 scripts/bench-server.sh
#   BASELINE_SERVER=/path/to/old/codis-server scripts/bench-server.sh   # adds an A/B column
#
# Also measures RSS after loading 1,000,000 `SET key:N <16 bytes>` into each server.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
N="${N:-200000}"
CLIENTS="${CLIENTS:-50}"
TESTS="${TESTS:-ping_mbulk,set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100,mset}"
PIPELINES="${PIPELINES:-1 16}"
KEYS_FOR_MEMORY="${KEYS_FOR_MEMORY:-1000000}"
# Pipelined runs are 10x longer so each lasts a couple of seconds.
PIPELINED_FACTOR="${PIPELINED_FACTOR:-10}"

cargo build --release -q -p dataplane --bin codis-server
CODIS="$CARGO_TARGET_DIR/release/codis-server"
WORK=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(free_port); CP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --loglevel warning --dir "$WORK" >/dev/null 2>&1 &
RPID=$!
"$CODIS" --port "$CP" --bind 127.0.0.1 --loglevel warning --dir "$WORK" >/dev/null 2>&1 &
CPID=$!
BASELINE_SERVER="${BASELINE_SERVER:-}"
BPID=""
PORTS=("$RP" "$CP")
if [ -n "$BASELINE_SERVER" ]; then
    BP=$(free_port)
    mkdir -p "$WORK/baseline"
    "$BASELINE_SERVER" --port "$BP" --bind 127.0.0.1 --loglevel warning --dir "$WORK/baseline" \
        >/dev/null 2>&1 &
    BPID=$!
    PORTS+=("$BP")
fi
trap 'kill $RPID $CPID $BPID 2>/dev/null; rm -rf "$WORK"' EXIT
for p in "${PORTS[@]}"; do
    until redis-cli -p "$p" ping >/dev/null 2>&1; do sleep 0.05; done
done

rps() { # port test pipeline -> requests per second (the last CSV row: LRANGE tests print
         # their LPUSH warm-up first)
    local n=$N
    [ "$3" -gt 1 ] && n=$((N * PIPELINED_FACTOR))
    redis-benchmark -p "$1" -c "$CLIENTS" -n "$n" -P "$3" -t "$2" -d 16 -r 100000 --csv -q 2>/dev/null \
        | awk -F'"' 'NR>1 && $2!="" {v=$4} END {print v}' || true
}

echo "machine: $(nproc) cores, $(awk '/model name/{$1=$2=$3="";print;exit}' /proc/cpuinfo | xargs)"
echo "redis-server: $(redis-server --version | awk '{print $3}')  codis-server: $($CODIS --version)"
echo "redis-benchmark -c $CLIENTS -n $N (x$PIPELINED_FACTOR when pipelined) -d 16 -r 100000 (requests/s; codis-server uses all cores)"
echo
if [ -n "$BASELINE_SERVER" ]; then
    echo "baseline: $BASELINE_SERVER"
    echo "| test | -P | redis-server | codis-server | baseline | ratio | codis/baseline |"
    echo "|---|---|---|---|---|---|---|"
else
    echo "| test | -P | redis-server | codis-server | ratio |"
    echo "|---|---|---|---|---|"
fi
IFS=',' read -ra TL <<<"$TESTS"
for P in $PIPELINES; do
    for t in "${TL[@]}"; do
        redis-cli -p "$RP" flushall >/dev/null; redis-cli -p "$CP" flushall >/dev/null
        r=$(rps "$RP" "$t" "$P"); c=$(rps "$CP" "$t" "$P")
        ratio=$(python3 -c "print(f'{float(\"$c\")/float(\"$r\"):.2f}x')" 2>/dev/null || echo "?")
        if [ -n "$BASELINE_SERVER" ]; then
            redis-cli -p "$BP" flushall >/dev/null
            b=$(rps "$BP" "$t" "$P")
            ab=$(python3 -c "print(f'{float(\"$c\")/float(\"$b\"):.2f}x')" 2>/dev/null || echo "?")
            echo "| $t | $P | $r | $c | $b | $ratio | $ab |"
        else
            echo "| $t | $P | $r | $c | $ratio |"
        fi
    done
done

echo
echo "Memory: RSS after $KEYS_FOR_MEMORY x SET key:N <16 bytes> (FLUSHALL first)"
python3 - "$KEYS_FOR_MEMORY" >"$WORK/load.resp" <<'PY'
import sys
n = int(sys.argv[1]); v = b"x" * 16; out = sys.stdout.buffer
for i in range(n):
    k = b"key:%d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (len(k), k, v))
PY
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
PAIRS=("redis-server $RP $RPID" "codis-server $CP $CPID")
[ -n "$BASELINE_SERVER" ] && PAIRS+=("baseline $BP $BPID")
for pair in "${PAIRS[@]}"; do
    set -- $pair
    redis-cli -p "$2" flushall >/dev/null
    before=$(rss "$3")
    redis-cli -p "$2" --pipe <"$WORK/load.resp" >/dev/null
    sleep 1
    after=$(rss "$3")
    used=$(redis-cli -p "$2" info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
    echo "$1: dbsize=$(redis-cli -p "$2" dbsize) rss_before=${before}kB rss_after=${after}kB used_memory=${used}"
done
