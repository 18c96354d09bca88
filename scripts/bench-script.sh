#!/usr/bin/env bash
# Lua scripts and functions: codis-server against Debian's redis-server, alternating the two
# for every row, printing a Markdown table of requests per second with ratios.
#
#   scripts/bench-script.sh                 # -c 50 -n 100000, -P 1 and -P 16
#   N=200000 scripts/bench-script.sh
#   ONLY='evalsha|fcall' scripts/bench-script.sh   # rows whose name matches
#
# Rows: a small script (INCR then GET of one random key, or GET alone for the read-only forms)
# run by EVAL (body sent every time), EVALSHA (loaded with SCRIPT LOAD), EVALSHA_RO, and the
# same as a function (FCALL / FCALL_RO of a library loaded with FUNCTION LOAD).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
N="${N:-100000}"
CLIENTS="${CLIENTS:-50}"
KEYS="${KEYS:-10000}"
PIPELINES="${PIPELINES:-1 16}"
PIPELINED_FACTOR="${PIPELINED_FACTOR:-5}"
ONLY="${ONLY:-.}"

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
trap 'kill $RPID $CPID 2>/dev/null; rm -rf "$WORK"' EXIT
for p in "$RP" "$CP"; do
    until redis-cli -p "$p" ping >/dev/null 2>&1; do sleep 0.05; done
done

RW="redis.call('INCR', KEYS[1]) return redis.call('GET', KEYS[1])"
RO="return redis.call('GET', KEYS[1])"
LIB="#!lua name=bench
redis.register_function('incrget', function(keys) redis.call('INCR', keys[1]) return redis.call('GET', keys[1]) end)
redis.register_function{function_name='get', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}"
SHA_RW=""; SHA_RO=""
for p in "$RP" "$CP"; do
    SHA_RW=$(redis-cli -p "$p" SCRIPT LOAD "$RW")
    SHA_RO=$(redis-cli -p "$p" SCRIPT LOAD "$RO")
    redis-cli -p "$p" FUNCTION LOAD REPLACE "$LIB" >/dev/null
done

# CPU time (user + system, clock ticks) a server process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

rps() { # port pid pipeline command... -> "requests-per-second cpu-us-per-request"
    local port=$1 pid=$2 p=$3; shift 3
    local n=$N
    [ "$p" -gt 1 ] && n=$((N * PIPELINED_FACTOR))
    local before after r
    before=$(ticks "$pid")
    r=$(redis-benchmark -p "$port" -c "$CLIENTS" -n "$n" -P "$p" -r "$KEYS" --csv -q "$@" 2>/dev/null \
        | awk -F'"' 'NR>1 && $2!="" {v=$4} END {print v}' || true)
    after=$(ticks "$pid")
    echo "$r $(python3 -c "print(round(($after - $before) * $TICK_US / $n, 2))")"
}

# One row: name, then the command's words (a script body is one word). Requests per second
# swing with the load of this shared machine; the server's CPU time per request much less.
row() {
    local name=$1 P=$2; shift 2
    [[ "$name" =~ $ONLY ]] || return 0
    local r c rcpu ccpu ratio cratio
    read -r r rcpu < <(rps "$RP" "$RPID" "$P" "$@")
    read -r c ccpu < <(rps "$CP" "$CPID" "$P" "$@")
    ratio=$(python3 -c "print(f'{float(\"$c\")/float(\"$r\"):.2f}x')" 2>/dev/null || echo "?")
    cratio=$(python3 -c "print(f'{float(\"$rcpu\")/float(\"$ccpu\"):.2f}x')" 2>/dev/null || echo "?")
    echo "| $name | $P | $r | $c | $ratio | $rcpu | $ccpu | $cratio |"
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "redis-server: $(redis-server --version | awk '{print $3}')  codis-server: $($CODIS --version)"
echo "redis-benchmark -c $CLIENTS -n $N (x$PIPELINED_FACTOR when pipelined) -r $KEYS"
echo
echo "| test | -P | redis-server req/s | codis-server req/s | ratio | redis-server CPU µs/req | codis-server CPU µs/req | CPU ratio |"
echo "|---|---|---|---|---|---|---|---|"
for P in $PIPELINES; do
    row "eval incr+get" "$P" EVAL "$RW" 1 "k:__rand_int__"
    row "evalsha incr+get" "$P" EVALSHA "$SHA_RW" 1 "k:__rand_int__"
    row "evalsha_ro get" "$P" EVALSHA_RO "$SHA_RO" 1 "k:__rand_int__"
    row "fcall incr+get" "$P" FCALL incrget 1 "k:__rand_int__"
    row "fcall_ro get" "$P" FCALL_RO get 1 "k:__rand_int__"
done
