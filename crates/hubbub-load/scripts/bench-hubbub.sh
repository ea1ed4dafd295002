#!/usr/bin/env bash
# End-to-end figures for BENCHMARKS.md "Node (end-to-end)": a release `hubbub` node with one
# shard pinned to core 0, the load generator pinned to core 1. Each scenario gets a fresh
# node. JSON summaries go to $OUT (default /tmp/hubbub-load-bench).
#
#   HUBBUB=/path/to/hubbub LOAD=/path/to/hubbub-load bash crates/hubbub-load/scripts/bench-hubbub.sh [fanout|sweep|sweep-high|idle|connect|all]
set -euo pipefail
HUBBUB=${HUBBUB:-target/release/hubbub}
LOAD=${LOAD:-target/release/hubbub-load}
# A free port (other nodes may run on this machine): ask the kernel for one.
PORT=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
OUT=${OUT:-/tmp/hubbub-load-bench}
mkdir -p "$OUT"
URL=ws://127.0.0.1:$PORT

start_node() {
    taskset -c 0 "$HUBBUB" serve --listen 127.0.0.1:$PORT --shards 1 >"$OUT/node.log" 2>&1 &
    NODE=$!
    for _ in $(seq 50); do
        # Healthy, and it is our node that answers (not another one on the port).
        kill -0 "$NODE" 2>/dev/null || break
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && kill -0 "$NODE" && return
        sleep 0.1
    done
    echo "node did not start" >&2; exit 1
}
stop_node() { kill "$NODE"; wait "$NODE" 2>/dev/null || true; }

run() {
    echo "+ $*" >&2
    taskset -c 1 "$LOAD" "$@"
}

what=${1:-all}
if [[ $what == fanout || $what == all ]]; then
    start_node
    run fanout --url $URL --subscribers 1000 --rate 1000 --duration 10 --server-pid $NODE --json "$OUT/fanout-1k.json"
    stop_node
fi
if [[ $what == sweep || $what == all ]]; then
    start_node
    run fanout --url $URL --subscribers 10000 --rates 10,20,50,100,200 --duration 10 --server-pid $NODE --json "$OUT/sweep-10k.json"
    stop_node
fi
if [[ $what == sweep-high || $what == all ]]; then
    start_node
    run fanout --url $URL --subscribers 10000 --rates 300,450,700,1000 --duration 5 --server-pid $NODE --json "$OUT/sweep-10k-high.json"
    stop_node
fi
if [[ $what == idle || $what == all ]]; then
    start_node
    run idle --url $URL --connections 19000 --settle 30 --server-pid $NODE --json "$OUT/idle-19k.json"
    stop_node
fi
if [[ $what == connect || $what == all ]]; then
    start_node
    run connect-rate --url $URL --connections 10000 --connect-concurrency 100 --server-pid $NODE --json "$OUT/connect-10k.json"
    stop_node
fi
