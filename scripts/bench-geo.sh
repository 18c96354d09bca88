#!/usr/bin/env bash
# GEO commands: codis-server against Debian's redis-server, alternating the two for every row,
# printing a Markdown table of requests per second with ratios.
#
#   scripts/bench-geo.sh                 # -c 50 -n 100000, -P 1 and -P 16
#   N=200000 POINTS=200000 scripts/bench-geo.sh
#   ONLY='geoadd|geodist' scripts/bench-geo.sh   # rows whose name matches
#
# Rows: GEOADD of random members near Sicily; GEOSEARCH / GEORADIUS around random centres of
# a set preloaded with POINTS points spread over 2 x 1 degrees (~ 50 points within 5 km);
# GEOPOS and GEODIST of preloaded members.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
N="${N:-100000}"
CLIENTS="${CLIENTS:-50}"
POINTS="${POINTS:-100000}"
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

# The preloaded set, as RESP, loaded with redis-cli --pipe into both servers.
python3 - "$POINTS" >"$WORK/load.resp" <<'PY'
import random, sys
random.seed(14)
n = int(sys.argv[1])
out = sys.stdout
for start in range(0, n, 500):
    args = [b"GEOADD", b"sicily"]
    for i in range(start, min(n, start + 500)):
        args += [b"%.6f" % random.uniform(13.0, 15.0), b"%.6f" % random.uniform(37.0, 38.0), b"m%012d" % i]
    out.write("*%d\r\n" % len(args))
    for a in args:
        out.write("$%d\r\n%s\r\n" % (len(a), a.decode()))
PY

rps() { # port pipeline command... -> requests per second
    local port=$1 p=$2; shift 2
    local n=$N
    [ "$p" -gt 1 ] && n=$((N * PIPELINED_FACTOR))
    redis-benchmark -p "$port" -c "$CLIENTS" -n "$n" -P "$p" -r "$POINTS" --csv -q "$@" 2>/dev/null \
        | awk -F'"' 'NR>1 && $2!="" {v=$4} END {print v}' || true
}

ROWS=(
    "geoadd|GEOADD new 13.__rand_int__ 37.__rand_int__ m:__rand_int__"
    "geosearch 5 km|GEOSEARCH sicily FROMLONLAT 14.__rand_int__ 37.5__rand_int__ BYRADIUS 5 km"
    "geosearch box count 10|GEOSEARCH sicily FROMLONLAT 13.5__rand_int__ 37.5__rand_int__ BYBOX 20 20 km COUNT 10 WITHDIST"
    "georadius 5 km withcoord|GEORADIUS sicily 14.__rand_int__ 37.5__rand_int__ 5 km WITHCOORD ASC"
    "geopos|GEOPOS sicily m__rand_int__"
    "geodist|GEODIST sicily m__rand_int__ m000000000001 km"
)

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "redis-server: $(redis-server --version | awk '{print $3}')  codis-server: $($CODIS --version)"
echo "redis-benchmark -c $CLIENTS -n $N (x$PIPELINED_FACTOR when pipelined) -r $POINTS, $POINTS preloaded points"
echo
echo "| test | -P | redis-server | codis-server | ratio |"
echo "|---|---|---|---|---|"
for P in $PIPELINES; do
    for row in "${ROWS[@]}"; do
        name=${row%%|*}; cmd=${row#*|}
        [[ "$name" =~ $ONLY ]] || continue
        for port in "$RP" "$CP"; do
            redis-cli -p "$port" flushall >/dev/null
            redis-cli -p "$port" --pipe <"$WORK/load.resp" >/dev/null
        done
        # shellcheck disable=SC2086
        r=$(rps "$RP" "$P" $cmd); c=$(rps "$CP" "$P" $cmd)
        ratio=$(python3 -c "print(f'{float(\"$c\")/float(\"$r\"):.2f}x')" 2>/dev/null || echo "?")
        echo "| $name | $P | $r | $c | $ratio |"
    done
done
