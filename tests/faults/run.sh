#!/usr/bin/env bash
# The fault suite (issue figures in RELIABILITY.md): every scenario of faults.mjs against a
# real three-node cluster with a Redis registry, with history off and on, and once with the
# Redis bus. About 2 minutes per scenario at the defaults; not part of run-all.sh (which runs
# the short version, short.test.mjs).
#
#   bash tests/faults/run.sh                 all scenarios, 30,000 messages at 300/s, 24 subscribers
#   MESSAGES=3000 bash tests/faults/run.sh   a shorter run (RELIABILITY.md is rewritten either way)
#   SCENARIOS="kill link" bash tests/faults/run.sh
#   bash tests/faults/run.sh --short         the short form with assertions (short.test.mjs)
#
# Needs the binary (cargo build -p hubbub, or HUBBUB_BIN), node >= 20, redis-server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../node-env.sh
source "$here/../node-env.sh"
need_hubbub_and_node "fault suite"
command -v redis-server >/dev/null || { echo "fault suite: redis-server is missing (apt-get install redis-server)" >&2; exit 1; }
cd "$here"
[ -d node_modules/ws ] || npm ci --no-audit --no-fund --loglevel=error
if [ "${1:-}" = --short ]; then
    exec node --test short.test.mjs
fi

MESSAGES=${MESSAGES:-30000}
RATE=${RATE:-300}
SUBSCRIBERS=${SUBSCRIBERS:-24}
SCENARIOS=${SCENARIOS:-kill redis-restart redis-snapshot link pause rolling}
out=$(mktemp)
run() {  # scenario history bus
    local extra=(--scenario "$1" --history "$2" --messages "$MESSAGES" --rate "$RATE" --subscribers "$SUBSCRIBERS")
    [ "$3" = redis ] && extra+=(--bus redis)
    echo "== $1, history $2, bus $3" >&2
    if ! HUBBUB_BIN="$HUBBUB_BIN" node faults.mjs "${extra[@]}" >>"$out" 2>"$out.err"; then
        local why
        why=$( (grep -m1 'hubbub: ' "$out.err" || grep -m1 'Error' "$out.err" || true) | head -c 300)
        printf '{"scenario":"%s","history":%s,"bus":"%s","error":%s}\n' "$1" \
            "$([ "$2" = on ] && echo true || echo false)" "$3" \
            "$(printf '%s' "${why:-failed}" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().strip()))')" >>"$out"
    fi
}
for s in $SCENARIOS; do
    run "$s" off grpc
    run "$s" on grpc
done
run kill off redis
run kill on redis

load=$(cut -d' ' -f1-3 /proc/loadavg)
conditions="$MESSAGES messages at $RATE/s to one room, $SUBSCRIBERS subscribers spread over three nodes (Redis registry, lease TTL 3 s), the fault a third of the way in; $(nproc) cores, load average at the end $load; $(date -u +%Y-%m-%d)."
node report.mjs "$out" "$here/../../RELIABILITY.md" "bash tests/faults/run.sh" "$conditions"
rm -f "$out" "$out.err"
