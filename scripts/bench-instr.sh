#!/usr/bin/env bash
# Instructions per request (user space, counted by valgrind's callgrind) of codis-server and
# Debian's redis-server for the script rows of scripts/bench-script.sh and a plain GET. Unlike
# requests per second, the count does not move with the load of this shared machine: run it to
# compare two builds, or ours with Redis, without noise (it does not see the kernel's share, nor
# cache misses: time per instruction differs between the two servers).
#
#   scripts/bench-instr.sh                      # -P 16 and -P 1, 20,000 requests each
#   N=5000 PIPELINES=1 scripts/bench-instr.sh
#   CODIS=/path/to/other/codis-server scripts/bench-instr.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
N="${N:-20000}"
PIPELINES="${PIPELINES:-16 1}"
ONLY="${ONLY:-.}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
if [ -z "${CODIS:-}" ]; then
    cargo build --release -q -p dataplane --bin codis-server
    CODIS="$CARGO_TARGET_DIR/release/codis-server"
fi
WORK=$(mktemp -d)
trap 'pkill -f "callgrind-out-file=$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RW="redis.call('INCR', KEYS[1]) return redis.call('GET', KEYS[1])"
RO="return redis.call('GET', KEYS[1])"
LIB="#!lua name=bench
redis.register_function('incrget', function(keys) redis.call('INCR', keys[1]) return redis.call('GET', keys[1]) end)
redis.register_function{function_name='get', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}"
SHA_RW=$(python3 -c "import hashlib,sys; print(hashlib.sha1(sys.argv[1].encode()).hexdigest())" "$RW")
SHA_RO=$(python3 -c "import hashlib,sys; print(hashlib.sha1(sys.argv[1].encode()).hexdigest())" "$RO")

# instructions per request of one server for one command line, pipeline $1
count() {
    local server=$1 p=$2; shift 2
    local port out pid
    port=$(free_port)
    out="$WORK/cg.$port"
    if [ "$server" = redis ]; then
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
            redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$WORK" >/dev/null 2>&1 &
    else
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
            "$CODIS" --port "$port" --bind 127.0.0.1 --loglevel warning --dir "$WORK" \
            >/dev/null 2>&1 &
    fi
    pid=$!
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.2; done
    redis-cli -p "$port" SCRIPT LOAD "$RW" >/dev/null
    redis-cli -p "$port" SCRIPT LOAD "$RO" >/dev/null
    redis-cli -p "$port" FUNCTION LOAD "$LIB" >/dev/null
    # Warm-up (keys created, scripts run once: the next runs are inline), then counted.
    redis-benchmark -p "$port" -c 10 -n 20000 -P 16 -r 10000 -q "$@" >/dev/null
    callgrind_control -i on "$pid" >/dev/null 2>&1
    redis-benchmark -p "$port" -c 50 -n "$N" -P "$p" -r 10000 -q "$@" >/dev/null
    callgrind_control -i off "$pid" >/dev/null 2>&1
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait "$pid" 2>/dev/null || true
    cat "$out"* | awk '/^(summary|totals):/ {s += $2} END {printf "%d", s / 2 / n}' n="$N"
}

row() {
    local name=$1 p=$2; shift 2
    [[ "$name" =~ $ONLY ]] || return 0
    local r c
    r=$(count redis "$p" "$@")
    c=$(count codis "$p" "$@")
    echo "| $name | $p | $r | $c | $(python3 -c "print(f'{$c/$r:.2f}')") |"
}

echo "redis-server: $(redis-server --version | awk '{print $3}')  codis-server: $($CODIS --version)"
echo "redis-benchmark -c 50 -n $N -r 10000, instructions per request (callgrind, user space)"
echo
echo "| test | -P | redis-server | codis-server | codis / redis |"
echo "|---|---|---|---|---|"
for P in $PIPELINES; do
    row "get" "$P" GET 'k:__rand_int__'
    row "eval incr+get" "$P" EVAL "$RW" 1 'k:__rand_int__'
    row "evalsha incr+get" "$P" EVALSHA "$SHA_RW" 1 'k:__rand_int__'
    row "evalsha_ro get" "$P" EVALSHA_RO "$SHA_RO" 1 'k:__rand_int__'
    row "fcall incr+get" "$P" FCALL incrget 1 'k:__rand_int__'
    row "fcall_ro get" "$P" FCALL_RO get 1 'k:__rand_int__'
done
