#!/usr/bin/env bash
# Cluster scale test for BENCHMARKS.md "Scale: 100,000 connections over 6 nodes sharing a
# Redis registry": starts a redis-server and $NODES hubbub nodes (each --shards 1, Redis
# registry, gRPC between nodes) on free ports of 127.0.0.1, waits for their /healthz, runs
# `hubbub-load scale` against all of them (connection i on node i mod NODES, one emit per
# client through another node's producer API, every answer and delivery checked), samples
# Redis's memory while it runs, and stops everything on exit. Exits with hubbub-load's status.
#
#   HUBBUB=/path/to/hubbub LOAD=/path/to/hubbub-load [CONNECTIONS=100000] [NODES=6] \
#       [EMITS=N] [OUT=/tmp/hubbub-scale] [PIN=1] \
#       bash crates/hubbub-load/scripts/scale.sh [extra hubbub-load scale flags...]
#
# PIN=1 pins the servers (nodes and Redis) to core 0 and the generator to core 1.
# Results: $OUT/scale.json (hubbub-load's summary), $OUT/scale.txt (its table),
# $OUT/redis-memory.txt (samples), $OUT/redis.txt (baseline and peak), $OUT/node*.log.
set -euo pipefail
HUBBUB=${HUBBUB:-target/release/hubbub}
LOAD=${LOAD:-target/release/hubbub-load}
CONNECTIONS=${CONNECTIONS:-100000}
NODES=${NODES:-6}
OUT=${OUT:-/tmp/hubbub-scale}
PIN=${PIN:-0}
mkdir -p "$OUT"

die() { echo "scale.sh: $*" >&2; exit 1; }
for bin in "$HUBBUB" "$LOAD"; do
    [[ -x $bin ]] || die "$bin is not an executable (set HUBBUB and LOAD, or build with: cargo build --release -p hubbub -p hubbub-load)"
done
command -v redis-server >/dev/null && command -v redis-cli >/dev/null \
    || die "redis-server and redis-cli are needed (Debian: apt-get install redis-server)"
command -v curl >/dev/null || die "curl is needed"
(( NODES >= 2 )) || die "NODES must be at least 2 (emits go through another node)"

# ---- Kernel and process limits: check before starting anything.
per_node=$(( (CONNECTIONS + NODES - 1) / NODES ))
nofile=$(ulimit -n)
if [[ $nofile != unlimited ]] && (( per_node > nofile - 2000 )); then
    need=$(( (CONNECTIONS + nofile - 2001) / (nofile - 2000) ))
    die "each node would hold $per_node connections, but a process may open only $nofile files (ulimit -n) and needs ~2,000 spare: use NODES=$need or more, or fewer CONNECTIONS"
fi
file_max=$(cat /proc/sys/fs/file-max)
read -r files_used _ _ </proc/sys/fs/file-nr
# Both ends of every connection live on this machine, plus a margin.
files_needed=$(( 2 * CONNECTIONS + 20000 ))
if (( file_max - files_used < files_needed )); then
    die "the system may open $file_max files (/proc/sys/fs/file-max) and $files_used are open; this run needs ~$files_needed more: raise fs.file-max (sysctl -w fs.file-max=...)"
fi
read -r port_lo port_hi </proc/sys/net/ipv4/ip_local_port_range
ports=$(( port_hi - port_lo + 1 ))
# The generator binds client sockets to 127.0.0.2, .3, ... with 5,000 connections each
# (--per-source); a bound socket may use about half of the ephemeral range.
if (( ports < 12000 )); then
    die "the ephemeral port range $port_lo-$port_hi (/proc/sys/net/ipv4/ip_local_port_range) has only $ports ports; the generator needs ~10,000 per source address: widen it (sysctl -w net.ipv4.ip_local_port_range='1024 65000') or pass --per-source N with N below $(( ports / 2 - 1000 ))"
fi
mem_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
# ~10 KiB per connection on each side (user space and kernel socket buffers), generously.
if (( mem_kib < CONNECTIONS * 25 )); then
    echo "scale.sh: warning: only $(( mem_kib / 1024 )) MiB available for $CONNECTIONS connections (both ends here)" >&2
fi
echo "limits: open files per process $nofile (≤ $per_node connections per node), file-max $file_max ($files_used open), ephemeral ports $port_lo-$port_hi, $(( mem_kib / 1024 )) MiB available" >&2

# ---- Free ports, all distinct: 1 for Redis, 2 per node.
read -r -a PORTS <<<"$(python3 - $(( 1 + 2 * NODES )) <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)"
REDIS_PORT=${PORTS[0]}

PIDS=()
SAMPLER=
cleanup() {
    [[ -n $SAMPLER ]] && kill "$SAMPLER" 2>/dev/null || true
    # Nodes first (they drain and delete their registry entries), Redis last.
    for (( j = ${#PIDS[@]} - 1; j >= 0; j-- )); do
        kill "${PIDS[j]}" 2>/dev/null || true
        wait "${PIDS[j]}" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Command prefixes (taskset execs the command, so $! stays the server's own pid).
SERVER=()
GENERATOR=()
if [[ $PIN == 1 ]]; then SERVER=(taskset -c 0); GENERATOR=(taskset -c 1); fi

"${SERVER[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    >"$OUT/redis.log" 2>&1 &
REDIS=$!
PIDS+=("$REDIS")
for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    kill -0 "$REDIS" 2>/dev/null || die "redis-server did not start (see $OUT/redis.log)"
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping >/dev/null || die "redis-server does not answer on port $REDIS_PORT"

NODE_PIDS=()
URLS=()
for (( i = 0; i < NODES; i++ )); do
    listen=${PORTS[1 + 2 * i]}
    grpc=${PORTS[2 + 2 * i]}
    "${SERVER[@]}" "$HUBBUB" serve --node-id "n$i" --listen "127.0.0.1:$listen" \
        --grpc-listen "127.0.0.1:$grpc" --registry "redis://127.0.0.1:$REDIS_PORT" --shards 1 \
        >"$OUT/node$i.log" 2>&1 &
    NODE_PIDS+=($!)
    PIDS+=($!)
    URLS+=("ws://127.0.0.1:$listen")
done
for (( i = 0; i < NODES; i++ )); do
    http=${URLS[i]/ws:/http:}
    ok=
    for _ in $(seq 100); do
        kill -0 "${NODE_PIDS[i]}" 2>/dev/null || break
        # Healthy, and it is our node that answers (not another one on the port).
        if curl -sf "$http/healthz" >/dev/null 2>&1 && kill -0 "${NODE_PIDS[i]}"; then ok=1; break; fi
        sleep 0.1
    done
    [[ -n $ok ]] || { tail -5 "$OUT/node$i.log" >&2; die "node n$i did not become healthy (see $OUT/node$i.log)"; }
done
echo "redis on $REDIS_PORT (pid $REDIS); nodes: ${URLS[*]} (pids ${NODE_PIDS[*]})" >&2

redis_memory() { redis-cli -p "$REDIS_PORT" INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}'; }
redis_keys() { redis-cli -p "$REDIS_PORT" DBSIZE | tr -d '\r'; }
baseline=$(redis_memory)
baseline_keys=$(redis_keys)
( while sleep 0.5; do echo "$(date +%s.%N) $(redis_memory) $(redis_keys)"; done ) >"$OUT/redis-memory.txt" 2>/dev/null &
SAMPLER=$!

args=(scale --connections "$CONNECTIONS" --registry-pid "$REDIS" --json "$OUT/scale.json")
[[ -n ${EMITS:-} ]] && args+=(--emits "$EMITS")
for (( i = 0; i < NODES; i++ )); do args+=(--url "${URLS[i]}" --server-pid "${NODE_PIDS[i]}"); done
echo "+ $LOAD ${args[*]} $*" >&2
status=0
"${GENERATOR[@]}" "$LOAD" "${args[@]}" "$@" | tee "$OUT/scale.txt" || status=$?

kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
SAMPLER=
# The generator closed every connection: the nodes remove their clients' entries.
removed=
for (( t = 0; t < 300; t++ )); do
    if (( $(redis_keys) <= baseline_keys )); then removed=$(( t / 10 )).$(( t % 10 )); break; fi
    sleep 0.1
done
for (( i = 0; i < NODES; i++ )); do
    kill -0 "${NODE_PIDS[i]}" 2>/dev/null || { echo "scale.sh: node n$i (pid ${NODE_PIDS[i]}) is gone; last lines of its log:" >&2; tail -5 "$OUT/node$i.log" >&2; status=1; }
done
grep -hiE ' (warn|error)' "$OUT"/node*.log | head -5 >&2 || true
peak=$(awk 'BEGIN {m = 0; k = 0} $2 > m {m = $2} $3 > k {k = $3} END {print m, k}' "$OUT/redis-memory.txt")
read -r peak_mem peak_keys <<<"$peak"
{
    echo "redis used_memory baseline $baseline B ($baseline_keys keys), peak $peak_mem B ($peak_keys keys)"
    if (( CONNECTIONS > 0 && peak_mem > baseline )); then
        echo "redis bytes per connection $(( (peak_mem - baseline) / CONNECTIONS ))"
    fi
    if [[ -n $removed ]]; then
        echo "redis back to $baseline_keys keys ${removed} s after the generator exited"
    else
        echo "redis still holds $(redis_keys) keys 30 s after the generator exited (baseline $baseline_keys)"
        status=1
    fi
} | tee "$OUT/redis.txt"
exit "$status"
