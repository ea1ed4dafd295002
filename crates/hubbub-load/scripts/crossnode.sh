#!/usr/bin/env bash
# Cross-node room delivery for BENCHMARKS.md "Cluster (end-to-end)": a fresh Redis and two
# fresh `hubbub` nodes (one shard each, Redis registry, gRPC or Redis bus) pinned to core 0,
# `hubbub-load crossnode` pinned to core 1: the publisher on node A, the subscribers on
# node B. JSON summaries go to $OUT (default /tmp/hubbub-crossnode).
#
#   HUBBUB=... LOAD=... bash crates/hubbub-load/scripts/crossnode.sh BUS SUBSCRIBERS RATE [DURATION]
#   BUS: grpc (peers forward over gRPC) or redis (room publishes go over Redis pub/sub)
set -euo pipefail
BUS=${1:?bus: grpc or redis}; SUBS=${2:?subscribers}; RATE=${3:?messages per second}; DURATION=${4:-15}
HUBBUB=${HUBBUB:-target/release/hubbub}
LOAD=${LOAD:-target/release/hubbub-load}
OUT=${OUT:-/tmp/hubbub-crossnode}
mkdir -p "$OUT"
command -v redis-server >/dev/null || { echo "redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
R=$(free_port); A=$(free_port); B=$(free_port); GA=$(free_port); GB=$(free_port)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c 0 redis-server --port "$R" --bind 127.0.0.1 --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
REDIS=$!; PIDS+=("$REDIS")
bus=()
[[ $BUS == redis ]] && bus=(--bus "redis://127.0.0.1:$R")
for _ in $(seq 50); do redis-cli -p "$R" ping >/dev/null 2>&1 && break; sleep 0.1; done
taskset -c 0 "$HUBBUB" serve --node-id a --listen "127.0.0.1:$A" --grpc-listen "127.0.0.1:$GA" \
    --registry "redis://127.0.0.1:$R" "${bus[@]}" --shards 1 >"$OUT/node-a.log" 2>&1 &
NODE_A=$!; PIDS+=("$NODE_A")
taskset -c 0 "$HUBBUB" serve --node-id b --listen "127.0.0.1:$B" --grpc-listen "127.0.0.1:$GB" \
    --registry "redis://127.0.0.1:$R" "${bus[@]}" --shards 1 >"$OUT/node-b.log" 2>&1 &
NODE_B=$!; PIDS+=("$NODE_B")
for port in "$A" "$B"; do
    for i in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
        [[ $i == 100 ]] && { echo "node on port $port did not become healthy (logs in $OUT)" >&2; exit 1; }
        sleep 0.1
    done
done
sleep 1   # the nodes see each other (membership poll)
HERE=$(dirname "$0")
python3 "$HERE/cpu-share.py" "$NODE_A,$NODE_B,$REDIS" -- \
    taskset -c 1 "$LOAD" crossnode --sub-url "ws://127.0.0.1:$B" --pub-url "ws://127.0.0.1:$A" \
    --subscribers "$SUBS" --rate "$RATE" --duration "$DURATION" \
    --server-pid "$NODE_A" --server-pid "$NODE_B" --json "$OUT/crossnode-$BUS-$SUBS-$RATE.json"
