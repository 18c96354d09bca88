#!/usr/bin/env bash
# Benchmarks codis-proxy against twemproxy (Debian's nutcracker) in front of the same two
# redis-servers, and against one redis-server directly, alternating the three for every row
# so all see the same conditions. Prints a Markdown table (requests/s, p50 latency) with the
# ratio codis-proxy / twemproxy, then the proxy's memory with 10,000 idle clients.
#
#   scripts/bench-proxy.sh                 # -c 50, -P 1 and -P 16
#   N=500000 THREADS=2 scripts/bench-proxy.sh
#   BASELINE_PROXY=/path/to/old/codis-proxy scripts/bench-proxy.sh   # adds an A/B column
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/codis-rs/target}"
N="${N:-200000}"
CLIENTS="${CLIENTS:-50}"
TESTS="${TESTS:-set,get,mset,mget,incr,lpush}"
PIPELINES="${PIPELINES:-1 16}"
PIPELINED_FACTOR="${PIPELINED_FACTOR:-5}"
THREADS="${THREADS:-1}"
IDLE_CLIENTS="${IDLE_CLIENTS:-10000}"
# Value size and key space (DATA=4194304 KEYSPACE=1 CLIENTS=1: big values on one key).
DATA="${DATA:-16}"
KEYSPACE="${KEYSPACE:-100000}"

command -v nutcracker >/dev/null || { echo "needs nutcracker (apt-get install nutcracker)"; exit 1; }
cargo build --release -q -p dataplane --bin codis-proxy
PROXY="$CARGO_TARGET_DIR/release/codis-proxy"
WORK=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
R1=$(free_port); R2=$(free_port); TW=$(free_port); CP=$(free_port); CA=$(free_port)
BP=$(free_port); BA=$(free_port)
BASELINE_PROXY="${BASELINE_PROXY:-}"
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for p in $R1 $R2; do
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
        --loglevel warning --dir "$WORK" >/dev/null 2>&1 &
    PIDS+=($!)
done
cat >"$WORK/nutcracker.yml" <<YML
bench:
  listen: 127.0.0.1:$TW
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  server_connections: 1
  servers:
   - 127.0.0.1:$R1:1
   - 127.0.0.1:$R2:1
YML
nutcracker -c "$WORK/nutcracker.yml" -o "$WORK/nutcracker.log" -s "$(free_port)" &
PIDS+=($!)
python3 - "$R1" "$R2" >"$WORK/slots.json" <<'PY'
import json, sys
a, b = sys.argv[1], sys.argv[2]
print(json.dumps([{"id": i, "backend_addr": f"127.0.0.1:{a if i < 512 else b}"} for i in range(1024)]))
PY
cat >"$WORK/proxy.toml" <<TOML
product_name = "bench"
proxy_addr = "127.0.0.1:$CP"
admin_addr = "127.0.0.1:$CA"
proxy_max_clients = 20000
TOML
"$PROXY" --config "$WORK/proxy.toml" --fillslots "$WORK/slots.json" --ncpu "$THREADS" \
    --log-level warn 2>"$WORK/proxy.log" &
PPID_=$!
PIDS+=($PPID_)
PORTS="$R1 $R2 $TW $CP"
if [ -n "$BASELINE_PROXY" ]; then
    sed -e "s/:$CP\"/:$BP\"/" -e "s/:$CA\"/:$BA\"/" "$WORK/proxy.toml" >"$WORK/baseline.toml"
    "$BASELINE_PROXY" --config "$WORK/baseline.toml" --fillslots "$WORK/slots.json" \
        --ncpu "$THREADS" --log-level warn 2>"$WORK/baseline.log" &
    PIDS+=($!)
    PORTS="$PORTS $BP"
fi
for p in $PORTS; do
    until redis-cli -p "$p" ping >/dev/null 2>&1; do sleep 0.05; done
done

# port test pipeline -> "rps p50_ms"
run() {
    local n=$N args
    [ "$3" -gt 1 ] && n=$((N * PIPELINED_FACTOR))
    case "$2" in
        mget) args=(MGET); for i in $(seq 10); do args+=("key:__rand_int__"); done ;;
        # Rows start on an empty keyspace; with big values GET reads what a SET pass wrote
        # (redis-benchmark runs both, the last CSV line is GET's).
        get) if [ "$DATA" -gt 16 ]; then args=(-t set,get); else args=(-t get); fi ;;
        *) args=(-t "$2") ;;
    esac
    redis-benchmark -p "$1" -c "$CLIENTS" -n "$n" -P "$3" -d "$DATA" -r "$KEYSPACE" --csv -q "${args[@]}" 2>/dev/null \
        | awk -F'"' 'NR>1 && $2!="" {v=$4" "$10} END {print v}' || true
}

echo "machine: $(nproc) cores, $(awk '/model name/{$1=$2=$3="";print;exit}' /proc/cpuinfo | xargs)"
echo "$(redis-server --version | awk '{print $1, $3}'), $(nutcracker --version 2>&1 | head -1), codis-proxy --ncpu $THREADS"
echo "redis-benchmark -c $CLIENTS -n $N (x$PIPELINED_FACTOR when pipelined) -d $DATA -r $KEYSPACE; mget = MGET of 10 random keys; mset = 10 keys"
echo "twemproxy and codis-proxy route to the same 2 redis-servers; direct = one of them alone"
echo
if [ -n "$BASELINE_PROXY" ]; then
    echo "baseline: $BASELINE_PROXY"
    echo "| test | -P | direct redis | twemproxy | codis-proxy | baseline | codis/twem | codis/baseline | p50 direct / twem / codis / baseline (ms) |"
    echo "|---|---|---|---|---|---|---|---|---|"
else
    echo "| test | -P | direct redis | twemproxy | codis-proxy | codis/twem | p50 direct / twem / codis (ms) |"
    echo "|---|---|---|---|---|---|---|"
fi
IFS=',' read -ra TL <<<"$TESTS"
for P in $PIPELINES; do
    for t in "${TL[@]}"; do
        for p in $R1 $R2; do redis-cli -p "$p" flushall >/dev/null; done
        read -r d dl < <(run "$R1" "$t" "$P")
        read -r w wl < <(run "$TW" "$t" "$P")
        read -r c cl < <(run "$CP" "$t" "$P")
        ratio=$(python3 -c "print(f'{float(\"$c\")/float(\"$w\"):.2f}x')" 2>/dev/null || echo "?")
        if [ -n "$BASELINE_PROXY" ]; then
            for p in $R1 $R2; do redis-cli -p "$p" flushall >/dev/null; done
            read -r b bl < <(run "$BP" "$t" "$P")
            ab=$(python3 -c "print(f'{float(\"$c\")/float(\"$b\"):.2f}x')" 2>/dev/null || echo "?")
            echo "| $t | $P | $d | $w | $c | $b | **$ratio** | **$ab** | $dl / $wl / $cl / $bl |"
        else
            echo "| $t | $P | $d | $w | $c | **$ratio** | $dl / $wl / $cl |"
        fi
    done
done

rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
echo
before=$(rss "$PPID_")
python3 - "$CP" "$IDLE_CLIENTS" "$PPID_" <<'PY'
import socket, sys, resource
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    conns.append(s)
# One round trip on the last one, so every session is accepted and registered.
conns[-1].sendall(b"PING\r\n"); conns[-1].recv(16)
import time; time.sleep(1)
rss = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1]
print(f"RSS with {n} idle clients: {int(rss)/1024:.1f} MiB", end="")
PY
echo " (before: $((before / 1024)) MiB)"
