#!/usr/bin/env bash
# Comparison with peers: Hubbub and other WebSocket servers through the same load generator
# (`hubbub-load`), in one run, and the table of BENCHMARKS.md "Comparison with peers".
#
#   bash benches/compare/run.sh            full run (about 85 min), rewrites BENCHMARKS.md
#   QUICK=1 bash benches/compare/run.sh    smoke run: 1,000 subscribers, 1 run each, short
#                                          sweep, 2,000 idle connections; the table goes to
#                                          $OUT/table.md only (WRITE=1 to write it anyway)
#
# What it does: builds `hubbub`, `hubbub-load`, `tt-chat-server` and `floor-server` in release; installs the
# Node peers with `npm ci` from benches/compare/package-lock.json (nothing vendored; Debian's
# redis-server is installed when missing); then, round after round, for every server in
# turn, starts the server pinned to core 0 on free 127.0.0.1 ports, runs `hubbub-load`
# pinned to core 1 (same scenarios and payload for all, the protocol adapter that fits the
# server), stops the server; a fresh server for each scenario. Rounds interleave the servers
# (round 1 of every server, then round 2, ...), so that a machine that drifts faster or
# slower during the run favours none of them. Finally `table.py` takes the medians and
# rewrites BENCHMARKS.md between <!-- compare:begin --> and <!-- compare:end -->.
#
# Scenarios (S subscribers in one room, 64-byte payloads):
#   low    rates 10,000/S and 50,000/S msg/s, LOW_DURATION s each: server CPU per delivery at
#          1 msg/s x 10,000 subscribers, latency at 50,000 deliveries/s
#   sweep  the ladder of deliveries/s below, SWEEP_DURATION s per step, until a step does not
#          hold (loss >= 0.1 %, p99 >= 1 s, or the publisher behind)
#   idle   IDLE_CONNECTIONS idle connections: server memory per connection
#
# Rounds: LOW_REPS of the low scenario (its latency and CPU columns spread most from run to
# run on a virtual machine), REPS of the sweep and idle scenarios (LOW_REPS >= REPS).
#
# Environment: QUICK, WRITE, REPS, LOW_REPS, SUBS, ROWS (comma list of row ids, default all:
# floor,hubbub,ws,uws,tt,tt4k,hubbub-x,socketio-x), OUT (results directory), CARGO_TARGET_DIR,
# HUBBUB / LOAD / TT / FLOOR (prebuilt binaries: skips the build; BUILT_FROM then says what they
# are), WAIT_QUIET (seconds to wait at most for other `hubbub-load` runs on this machine to
# end, needing 60 quiet seconds; default 1500 for a full run, 0 for QUICK).
set -euo pipefail
# The whole script is one block, read before it runs: editing the file during a run is safe.
{

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STARTED=$(date +%s)
COMMAND="bash benches/compare/run.sh"
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    COMMAND="QUICK=1 $COMMAND"
    REPS=${REPS:-1}
    LOW_REPS=${LOW_REPS:-$REPS}
    SUBS=${SUBS:-1000}
    IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-2000}
    SETTLE=${SETTLE:-3}
    LOW_DURATION=${LOW_DURATION:-5}
    SWEEP_DURATION=${SWEEP_DURATION:-3}
    LADDER=${LADDER:-100000,200000,500000,1000000}
    WAIT_QUIET=${WAIT_QUIET:-0}
    WRITE=${WRITE:-0}
else
    REPS=${REPS:-3}
    LOW_REPS=${LOW_REPS:-7}
    SUBS=${SUBS:-10000}
    IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-19000}
    SETTLE=${SETTLE:-10}
    # 30 s: 150 messages at 5 msg/s, so that the last-subscriber p99 is not one message's.
    LOW_DURATION=${LOW_DURATION:-30}
    SWEEP_DURATION=${SWEEP_DURATION:-5}
    LADDER=${LADDER:-100000,200000,350000,500000,750000,1000000,1500000,2000000,3000000,4500000,7000000}
    WAIT_QUIET=${WAIT_QUIET:-1500}
    WRITE=${WRITE:-1}
fi
(( LOW_REPS >= REPS )) || LOW_REPS=$REPS
WARMUP=2
PAYLOAD=64
CPU_DELIVERIES=10000     # 1 msg/s to 10,000 subscribers
LATENCY_DELIVERIES=50000
ROWS=${ROWS:-floor,hubbub,ws,uws,tt,tt4k,hubbub-x,socketio-x}
OUT=${OUT:-$HERE/out/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
LOG="$OUT/run.log"
say() { echo "[compare $(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2; }

# ---------------------------------------------------------------- processes and cleanup
PIDS=()      # every server we started and have not stopped yet
GEN=""       # the running generator
cleanup() {
    trap - EXIT INT TERM
    [[ -n $GEN ]] && kill -TERM "$GEN" 2>/dev/null || true
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}" $GEN; do
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# Free TCP ports on 127.0.0.1, all held at once while choosing so they differ; picked below
# the kernel's ephemeral range (32768+ here), so that no client socket of this or another
# process is handed the port between the choice and the server's bind.
free_ports() {
    python3 - "$1" <<'EOF'
import random, socket, sys
socks = []
while len(socks) < int(sys.argv[1]):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(20000, 32000)))
        socks.append(s)
    except OSError:
        s.close()
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# start LOGNAME CMD...: runs CMD pinned to core 0; sets STARTED_PID.
start() {
    local name=$1; shift
    taskset -c 0 "$@" >"$RUN_DIR/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

# wait_port PORT PID: until PORT accepts connections while PID lives.
wait_port() {
    local port=$1 pid=$2
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || { say "server $pid exited before listening on $port"; return 1; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    say "nothing listens on $port after 30 s"
    return 1
}

stop_servers() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

# gen NAME ARGS...: hubbub-load pinned to core 1; JSON to $RUN_DIR/NAME.json.
gen() {
    local name=$1; shift
    echo "+ hubbub-load $* --json $RUN_DIR/$name.json" >>"$LOG"
    taskset -c 1 "$LOAD" "$@" --json "$RUN_DIR/$name.json" >"$RUN_DIR/$name.txt" 2>"$RUN_DIR/$name.err" &
    GEN=$!
    local rc=0
    wait "$GEN" || rc=$?
    GEN=""
    if ((rc != 0)); then
        say "  $name: hubbub-load exited $rc: $(tail -n 1 "$RUN_DIR/$name.err")"
    fi
}

# ---------------------------------------------------------------- build and install
cd "$ROOT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ -n ${HUBBUB:-} || -n ${LOAD:-} || -n ${TT:-} ]]; then
    : "${HUBBUB:?set HUBBUB, LOAD, TT and FLOOR together}" "${LOAD:?}" "${TT:?}" "${FLOOR:?}"
    BUILT_FROM=${BUILT_FROM:-Binaries given: $HUBBUB, $LOAD, $TT, $FLOOR}
    BUILD="${BUILT_FROM%.}."
else
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
    say "building hubbub, hubbub-load, tt-chat-server and floor-server (release, $TARGET)"
    CARGO_TARGET_DIR=$TARGET cargo build --release -q -p hubbub -p hubbub-load -p tt-chat-server -p floor-server
    HUBBUB=$TARGET/release/hubbub LOAD=$TARGET/release/hubbub-load TT=$TARGET/release/tt-chat-server
    FLOOR=$TARGET/release/floor-server
    REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    DIRTY=$( (git status --porcelain -- crates runtimes benches/compare Cargo.toml Cargo.lock 2>/dev/null || true) | head -n 1)
    BUILD="Built from commit $REV${DIRTY:+ with uncommitted changes} (release profile)."
fi
command -v node >/dev/null || { say "node is missing (apt-get install nodejs npm)"; exit 1; }
if ! command -v redis-server >/dev/null; then
    say "installing redis-server (Debian)"
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
say "installing the Node peers (npm ci)"
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >>"$LOG" 2>&1)
pkgver() { node -p "require('$HERE/node_modules/$1/package.json').version"; }
VERSIONS="Node $(node --version), ws $(pkgver ws), @trufflesuite/uws-js-unofficial $(pkgver @trufflesuite/uws-js-unofficial), socket.io $(pkgver socket.io), @socket.io/redis-adapter $(pkgver @socket.io/redis-adapter), redis (client) $(pkgver redis), $(redis-server --version | grep -o 'v=[0-9.]*' | sed 's/v=/Redis /'), tokio-tungstenite $(grep -A1 '^name = "tokio-tungstenite"' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p' | head -n 1)"
say "$VERSIONS"

# ---------------------------------------------------------------- wait for a quiet machine
WAIT_NOTE=""
if ((WAIT_QUIET > 0)); then
    say "waiting for 60 s without another hubbub-load on this machine (at most $WAIT_QUIET s)"
    quiet=0 waited=0
    while ((quiet < 60 && waited < WAIT_QUIET)); do
        if pgrep -f hubbub-load >/dev/null; then quiet=0; else quiet=$((quiet + 15)); fi
        sleep 15; waited=$((waited + 15))
    done
    if ((quiet < 60)); then
        WAIT_NOTE="Other hubbub-load runs were still going after $WAIT_QUIET s of waiting: measured anyway, alongside them."
        say "$WAIT_NOTE"
    else
        WAIT_NOTE="Started after 60 s without any other hubbub-load run on the machine (waited $waited s)."
    fi
fi

# ---------------------------------------------------------------- the rates
rates_for() {  # deliveries/s list -> msg/s list for SUBS subscribers
    python3 -c 'import sys; s=int(sys.argv[2]); print(",".join(f"{int(d)/s:g}" for d in sys.argv[1].split(",")))' "$1" "$SUBS"
}
LOW_RATES=$(rates_for "$CPU_DELIVERIES,$LATENCY_DELIVERIES")
SWEEP_RATES=$(rates_for "$LADDER")
COMMON=(--subscribers "$SUBS" --payload "$PAYLOAD" --warmup "$WARMUP")

# ---------------------------------------------------------------- the servers
# start_row ROW: starts the row's server(s) on fresh ports; sets SUB_URL, PUB_URL, PROTO,
# SERVER_PIDS (all of the row's processes) and NODE_PID (the node subscribers use).
start_row() {
    local row=$1
    case $row in
    hubbub)
        read -r p < <(free_ports 1)
        start hubbub "$HUBBUB" serve --listen "127.0.0.1:$p" --shards 1
        NODE_PID=$STARTED_PID; SERVER_PIDS=("$NODE_PID")
        wait_port "$p" "$NODE_PID" || return 1
        SUB_URL=ws://127.0.0.1:$p PUB_URL=$SUB_URL PROTO=hubbub ;;
    ws | uws)
        read -r p < <(free_ports 1)
        local script=ws-broadcast.js; PROTO=broadcast
        [[ $row == uws ]] && script=uws-pubsub.js PROTO=uws
        start "$row" node "$HERE/servers/$script" "$p"
        NODE_PID=$STARTED_PID; SERVER_PIDS=("$NODE_PID")
        wait_port "$p" "$NODE_PID" || return 1
        SUB_URL=ws://127.0.0.1:$p/ PUB_URL=$SUB_URL ;;
    floor)
        read -r p < <(free_ports 1)
        start floor "$FLOOR" --listen "127.0.0.1:$p"
        NODE_PID=$STARTED_PID; SERVER_PIDS=("$NODE_PID")
        wait_port "$p" "$NODE_PID" || return 1
        SUB_URL=ws://127.0.0.1:$p/ PUB_URL=$SUB_URL PROTO=broadcast ;;
    tt | tt4k)
        read -r p < <(free_ports 1)
        local flags=()
        [[ $row == tt4k ]] && flags=(--small-buffers)
        start "$row" "$TT" --listen "127.0.0.1:$p" "${flags[@]}"
        NODE_PID=$STARTED_PID; SERVER_PIDS=("$NODE_PID")
        wait_port "$p" "$NODE_PID" || return 1
        SUB_URL=ws://127.0.0.1:$p/ PUB_URL=$SUB_URL PROTO=broadcast ;;
    hubbub-x | socketio-x)
        local r a b ga gb
        read -r r a b ga gb < <(free_ports 5)
        start redis redis-server --bind 127.0.0.1 --port "$r" --save '' --appendonly no --protected-mode no
        local redis_pid=$STARTED_PID
        wait_port "$r" "$redis_pid" || return 1
        if [[ $row == hubbub-x ]]; then
            start node-a "$HUBBUB" serve --node-id a --listen "127.0.0.1:$a" --grpc-listen "127.0.0.1:$ga" \
                --registry "redis://127.0.0.1:$r" --bus "redis://127.0.0.1:$r" --shards 1
            NODE_PID=$STARTED_PID
            start node-b "$HUBBUB" serve --node-id b --listen "127.0.0.1:$b" --grpc-listen "127.0.0.1:$gb" \
                --registry "redis://127.0.0.1:$r" --bus "redis://127.0.0.1:$r" --shards 1
            PROTO=hubbub
        else
            start node-a node "$HERE/servers/socketio-redis.js" "$a" "redis://127.0.0.1:$r"
            NODE_PID=$STARTED_PID
            start node-b node "$HERE/servers/socketio-redis.js" "$b" "redis://127.0.0.1:$r"
            PROTO=socketio
        fi
        local b_pid=$STARTED_PID
        wait_port "$a" "$NODE_PID" || return 1
        wait_port "$b" "$b_pid" || return 1
        SERVER_PIDS=("$NODE_PID" "$b_pid" "$redis_pid")
        SUB_URL=ws://127.0.0.1:$a PUB_URL=ws://127.0.0.1:$b ;;
    *) say "unknown row $row"; return 1 ;;
    esac
    sleep 0.5
}

# start_row, three tries (a port taken in between makes a server exit at once).
start_row_retry() {
    local attempt
    for attempt in 1 2 3; do
        start_row "$1" && return 0
        stop_servers
        say "  $1: start attempt $attempt failed (logs in $RUN_DIR)"
    done
    return 1
}

row_label() {
    case $1 in
    floor) echo "Floor: one epoll loop, no protocol" ;;
    hubbub) echo "Hubbub (1 node, 1 shard)" ;;
    ws) echo "Node ws (broadcast loop)" ;;
    uws) echo "uWebSockets.js pub/sub" ;;
    tt) echo "tokio-tungstenite chat (default config)" ;;
    tt4k) echo "tokio-tungstenite chat (4 KiB buffers)" ;;
    hubbub-x) echo "Hubbub, 2 nodes (Redis registry and bus), cross-node" ;;
    socketio-x) echo "socket.io, 2 nodes (Redis adapter), cross-node" ;;
    esac
}
row_what() {
    case $1 in
    floor) echo "\`floor-server\` (\`benches/compare/floor\`): one mio/epoll loop that answers the upgrade from its key and writes each text frame, framed once, to every socket with one \`write\` each; no rooms, queues or JSON. What the kernel alone costs: the other rows' CPU is also given as a multiple of it." ;;
    hubbub) echo "\`hubbub serve --shards 1\` of this repository; subscribers join the room at \`/ws/bench\`, the publisher sends \`publish\` frames, members get \`message\` frames." ;;
    ws) echo "\`benches/compare/servers/ws-broadcast.js\`: every text message is sent on to every open client (the ws README's broadcast loop, the publisher included); without the optional bufferutil and utf-8-validate add-ons." ;;
    uws) echo "\`benches/compare/servers/uws-pubsub.js\`: join = \`ws.subscribe(room)\`, publish = \`app.publish(room, data)\`; the package's native binary for this Node (the pure-JS fallback is refused); uWS defaults otherwise (64 KiB backpressure limit: slower subscribers are skipped, which counts as loss)." ;;
    tt) echo "\`tt-chat-server\` (\`benches/compare/tt-chat\`): a map of unbounded senders, every text frame cloned to every other peer, tokio-tungstenite's default \`WebSocketConfig\` (128 KiB read buffer, 128 KiB write-buffer target)." ;;
    tt4k) echo "the same with \`--small-buffers\`: read buffer and write-buffer target 4 KiB." ;;
    hubbub-x) echo "two \`hubbub serve --shards 1\` nodes with \`--registry redis://… --bus redis://…\` and gRPC between them, one Redis; subscribers on node A, the publisher on node B (\`hubbub-load crossnode\`)." ;;
    socketio-x) echo "two \`benches/compare/servers/socketio-redis.js\` nodes (socket.io, WebSocket transport only, \`@socket.io/redis-adapter\`), one Redis; subscribers on node A emit \`join\`, the publisher on node B emits \`publish\`, the server does \`io.to(room).emit('message', data)\` (\`hubbub-load crossnode --protocol socketio\`)." ;;
    esac
}

# cpu_mark: "wall machine_busy_s own_children_s" — the machine's busy CPU seconds (user,
# nice, system, irq, softirq of /proc/stat) and the CPU seconds of this script's reaped
# children (servers, generator and its workers), to tell how much other processes used.
cpu_mark() {
    times >"$OUT/.times"
    python3 - "$OUT/.times" <<'EOF'
import os, re, sys, time
f = [int(x) for x in open("/proc/stat").readline().split()[1:8]]
busy = (f[0] + f[1] + f[2] + f[5] + f[6]) / os.sysconf("SC_CLK_TCK")
children = open(sys.argv[1]).read().splitlines()[-1]
own = sum(int(m) * 60 + float(x) for m, x in re.findall(r"(\d+)m([\d.]+)s", children))
print(f"{time.time():.2f} {busy:.2f} {own:.2f}")
EOF
}
# other_load_marks FILE -> % of one core used by other processes over the intervals in FILE
# (lines "wall busy own wall busy own": a cpu_mark before and after each round).
other_load_marks() {
    python3 - "$1" <<'EOF'
import sys
wall = other = 0.0
for line in open(sys.argv[1]):
    a = list(map(float, line.split()))
    if len(a) == 6:
        wall += a[3] - a[0]
        other += (a[4] - a[1]) - (a[5] - a[2])
print(f"{max(0.0, other / max(1e-9, wall) * 100):.0f} %")
EOF
}

IFS=, read -r -a ROW_LIST <<<"$ROWS"
# targets: the generator's URL flags for the running server(s) ($mode: fanout or crossnode).
targets() {
    if [[ $mode == crossnode ]]; then echo "--sub-url $SUB_URL --pub-url $PUB_URL"; else echo "--url $SUB_URL"; fi
}
# pid_flags: a --server-pid flag for every process of the running server(s).
pid_flags() { local p; for p in "${SERVER_PIDS[@]}"; do printf -- '--server-pid %s ' "$p"; done; }

# run_round ROW REP: one round of one server: the low scenario, then (while REP <= REPS) the
# sweep, if every low rate held, and the idle scenario.
run_round() {
    local row=$1 rep=$2
    RUN_DIR=$OUT/$row/rep$rep
    mkdir -p "$RUN_DIR"
    mode=fanout
    [[ $row == *-x ]] && mode=crossnode

    say "$row round $rep/$LOW_REPS: low rates $LOW_RATES msg/s"
    if start_row_retry "$row"; then
        # shellcheck disable=SC2046
        gen low $mode $(targets) --protocol "$PROTO" "${COMMON[@]}" --rates "$LOW_RATES" \
            --duration "$LOW_DURATION" $(pid_flags)
    fi
    stop_servers
    if ((rep <= REPS)); then
        if python3 -c 'import json,sys; sys.exit(0 if all(s["held"] for s in json.load(open(sys.argv[1]))["steps"]) else 1)' "$RUN_DIR/low.json" 2>/dev/null; then
            say "$row round $rep/$LOW_REPS: sweep $SWEEP_RATES msg/s"
            if start_row_retry "$row"; then
                # shellcheck disable=SC2046
                gen sweep $mode $(targets) --protocol "$PROTO" "${COMMON[@]}" --rates "$SWEEP_RATES" \
                    --duration "$SWEEP_DURATION" $(pid_flags)
            fi
            stop_servers
        else
            say "$row round $rep/$LOW_REPS: a low rate did not hold, no sweep"
        fi
        say "$row round $rep/$LOW_REPS: idle $IDLE_CONNECTIONS connections"
        if start_row_retry "$row"; then
            gen idle idle --url "$SUB_URL" --protocol "$PROTO" --connections "$IDLE_CONNECTIONS" \
                --settle "$SETTLE" --server-pid "$NODE_PID"
        fi
        stop_servers
    fi
    grep -h -E "highest rate held|no rate held|per conn" "$RUN_DIR"/*.txt 2>/dev/null | sed 's/^/    /' | tee -a "$LOG" >&2 || true
}

for rep in $(seq "$LOW_REPS"); do
    for row in "${ROW_LIST[@]}"; do
        cpu_mark >"$OUT/.mark"   # not in $(...): `times` must run in this shell
        before=$(<"$OUT/.mark")
        run_round "$row" "$rep"
        cpu_mark >"$OUT/.mark"
        echo "$before $(<"$OUT/.mark")" >>"$OUT/$row/marks"
    done
done
# Each row's share of other processes' CPU, over all its rounds.
LOADS=()
for row in "${ROW_LIST[@]}"; do
    LOADS+=("$row $(other_load_marks "$OUT/$row/marks")")
    say "$row: other processes used ${LOADS[-1]#* } of a core meanwhile"
done

# ---------------------------------------------------------------- the table
ELAPSED=$(($(date +%s) - STARTED))
export OUT REPS LOW_REPS SUBS PAYLOAD WARMUP LOW_DURATION SWEEP_DURATION IDLE_CONNECTIONS SETTLE LADDER \
    CPU_DELIVERIES LATENCY_DELIVERIES COMMAND BUILD VERSIONS WAIT_NOTE ELAPSED
ROWS_JSON=$(for row in "${ROW_LIST[@]}"; do
    proto=broadcast
    case $row in hubbub | hubbub-x) proto=hubbub ;; uws) proto=uws ;; socketio-x) proto=socketio ;; esac
    python3 -c 'import json,sys; print(json.dumps({"id":sys.argv[1],"label":sys.argv[2],"protocol":sys.argv[3],"what":sys.argv[4]}))' \
        "$row" "$(row_label "$row")" "$proto" "$(row_what "$row")"
done | python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in sys.stdin]))')
export ROWS_JSON
LOADS_TEXT=$(printf '%s, ' "${LOADS[@]}"); export LOADS_TEXT="${LOADS_TEXT%, }"
python3 - <<'EOF'
import json, os, datetime
e = os.environ
el = int(e["ELAPSED"])
cpu = open("/proc/cpuinfo").read()
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("model name")), "?")
mem = int(open("/proc/meminfo").read().split()[1]) / 1024 / 1024
meta = {
    "command": e["COMMAND"],
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    "elapsed": f"{el // 60} min {el % 60} s",
    "build": e["BUILD"] + " Peers: " + e["VERSIONS"] + ".",
    "rows": json.loads(e["ROWS_JSON"]),
    "reps": int(e["REPS"]),
    "low_reps": int(e["LOW_REPS"]),
    "subscribers": int(e["SUBS"]),
    "payload": int(e["PAYLOAD"]),
    "warmup": float(e["WARMUP"]),
    "low_duration": float(e["LOW_DURATION"]),
    "sweep_duration": float(e["SWEEP_DURATION"]),
    "idle_connections": int(e["IDLE_CONNECTIONS"]),
    "settle": float(e["SETTLE"]),
    "ladder": ", ".join(f"{int(d):,}" for d in e["LADDER"].split(",")),
    "cpu_deliveries": int(e["CPU_DELIVERIES"]),
    "latency_deliveries": int(e["LATENCY_DELIVERIES"]),
    "machine": f"{os.cpu_count()} cores ({model}), {mem:.0f} GiB, Linux {os.uname().release}",
    "loads": e["LOADS_TEXT"],
    "wait_note": e["WAIT_NOTE"],
}
json.dump(meta, open(os.path.join(e["OUT"], "meta.json"), "w"), indent=1)
EOF
if [[ $WRITE == 1 ]]; then
    python3 "$HERE/table.py" "$OUT" --benchmarks "$ROOT/BENCHMARKS.md"
else
    python3 "$HERE/table.py" "$OUT"
fi
say "done in $((ELAPSED / 60)) min $((ELAPSED % 60)) s; results in $OUT"
exit 0
}
