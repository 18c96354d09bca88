#!/usr/bin/env bash
# Benchmarks the append-only file: release codis-server against Debian's redis-server, both
# with `appendonly yes`, for each `appendfsync` policy, alternating the two servers on every
# row so both see the same conditions. Files go to an ext4 directory under $WORK (mktemp).
#
#   scripts/bench-aof.sh                     # always and everysec, -P 1 and -P 16
#   POLICIES=always N=20000 scripts/bench-aof.sh
#
# Each row starts both servers afresh (empty AOF) and runs redis-benchmark -c CLIENTS;
# the last column is codis-server with `appendonly no` in the same run, for the cost of
# the AOF itself.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
N="${N:-100000}"
CLIENTS="${CLIENTS:-50}"
TESTS="${TESTS:-set,incr,lpush}"
POLICIES="${POLICIES:-always everysec}"
PIPELINES="${PIPELINES:-1 16}"

cargo build --release -q -p dataplane --bin codis-server
CODIS="$CARGO_TARGET_DIR/release/codis-server"
# WORK, PIDS (killed at exit), free_port, wait_port.
source scripts/bench-lib.sh

start() { # kind policy -> port (server in $WORK/<port>)
    local port dir
    port=$(free_port)
    dir="$WORK/$port"
    mkdir -p "$dir"
    if [ "$1" = redis ]; then
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly yes \
            --appendfsync "$2" --daemonize no --loglevel warning --dir "$dir" >/dev/null 2>&1 &
    elif [ "$2" = off ]; then
        "$CODIS" --port "$port" --bind 127.0.0.1 --save '' --loglevel warning --dir "$dir" \
            >/dev/null 2>&1 &
    else
        "$CODIS" --port "$port" --bind 127.0.0.1 --save '' --appendonly yes \
            --appendfsync "$2" --loglevel warning --dir "$dir" >/dev/null 2>&1 &
    fi
    PIDS+=($!)
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
    echo "$port"
}
stop() { redis-cli -p "$1" shutdown nosave >/dev/null 2>&1 || true; sleep 0.2; }

rps() { # port test pipeline
    local n=$N
    [ "$3" -gt 1 ] && n=$((N * 10))
    redis-benchmark -p "$1" -c "$CLIENTS" -n "$n" -P "$3" -t "$2" -d 16 -r 100000 --csv -q 2>/dev/null \
        | awk -F'"' 'NR>1 && $2!="" {v=$4} END {print v}' || true
}

echo "machine: $(nproc) cores, $(awk '/model name/{$1=$2=$3="";print;exit}' /proc/cpuinfo | xargs)"
echo "redis-server: $(redis-server --version | awk '{print $3}')  codis-server: $($CODIS --version)"
echo "redis-benchmark -c $CLIENTS -n $N (x10 when pipelined) -d 16 -r 100000, requests/s"
echo
echo "| appendfsync | test | -P | redis-server | codis-server | ratio | codis, AOF off |"
echo "|---|---|---|---|---|---|---|"
for pol in $POLICIES; do
    for P in $PIPELINES; do
        for t in ${TESTS//,/ }; do
            rp=$(start redis "$pol"); r=$(rps "$rp" "$t" "$P"); stop "$rp"
            cp=$(start codis "$pol"); c=$(rps "$cp" "$t" "$P"); stop "$cp"
            op=$(start codis off); o=$(rps "$op" "$t" "$P"); stop "$op"
            ratio=$(python3 -c "print(f'{float(\"$c\")/float(\"$r\"):.2f}x')" 2>/dev/null || echo "?")
            echo "| $pol | $t | $P | $r | $c | $ratio | $o |"
        done
    done
done
