#!/usr/bin/env bash
# Node tests of Hubbub's Pusher endpoints with the real pusher-js, pusher (server SDK) and
# laravel-echo packages: each *.test.mjs file is one feature, run against one node, then a
# three-node cluster with a Redis registry (gRPC bus), then the same cluster on the Redis bus.
#
#   bash tests/pusher/run.sh                 # all three topologies
#   bash tests/pusher/run.sh single          # one of: single cluster cluster-redis-bus
#
# Needs the binary built first (cargo build -p hubbub) and redis-server; this script builds
# nothing. Installs the npm packages (npm ci, from the committed package-lock.json) when they
# are missing. Exit code = test result (non-zero when any topology failed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# shellcheck source=../node-env.sh
source "$here/../node-env.sh"
need_hubbub_and_node "Pusher test"
if ! command -v redis-server >/dev/null 2>&1; then
    echo "Pusher test: redis-server is missing (apt-get install redis-server)" >&2
    exit 1
fi

cd "$here"
if [ ! -d node_modules/pusher-js ] || [ ! -d node_modules/pusher ] || [ ! -d node_modules/laravel-echo ]; then
    echo "== npm ci (pusher-js, pusher, laravel-echo)"
    npm ci --no-audit --no-fund --loglevel=error
fi

topologies=("$@")
[ ${#topologies[@]} -gt 0 ] || topologies=(single cluster cluster-redis-bus)
failed=()
for topology in "${topologies[@]}"; do
    echo "== Pusher tests ($topology): node $(node --version), $HUBBUB_BIN"
    if ! HUBBUB_PUSHER_TOPOLOGY="$topology" node --test --test-timeout=120000 ./*.test.mjs; then
        failed+=("$topology")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "Pusher tests failed on: ${failed[*]}" >&2
    exit 1
fi
