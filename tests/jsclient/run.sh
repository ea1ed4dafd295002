#!/usr/bin/env bash
# Node test of the JavaScript client served at /hubbub.js, against a real `hubbub serve`.
#
#   bash tests/jsclient/run.sh
#
# Needs the binary built first (cargo build -p hubbub); this script builds nothing. It looks
# for it at $HUBBUB_BIN, else $CARGO_TARGET_DIR/debug/hubbub, else target/debug/hubbub.
# Installs the ws package (npm ci, from the committed package-lock.json) when it is missing.
# Exit code = test result.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# shellcheck source=../node-env.sh
source "$here/../node-env.sh"
need_hubbub_and_node "client test"

cd "$here"
if [ ! -d node_modules/ws ]; then
    echo "== npm ci (ws)"
    npm ci --no-audit --no-fund --loglevel=error
fi

echo "== JavaScript client test: node $(node --version), $HUBBUB_BIN"
exec node --test client.test.mjs
