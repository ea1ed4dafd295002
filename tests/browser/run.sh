#!/usr/bin/env bash
# Browser test of the demo page: a real Chromium (Debian's package) drives `hubbub serve`,
# over http:// (demo.test.mjs) and over https:// (tls.test.mjs).
#
#   bash tests/browser/run.sh
#
# Needs the binary built first (cargo build -p hubbub); this script builds nothing. It looks
# for it at $HUBBUB_BIN, else $CARGO_TARGET_DIR/debug/hubbub, else target/debug/hubbub.
# Installs what is missing: the Debian package chromium (as root, apt-get --no-install-recommends) and
# playwright-core (npm ci, from the committed package-lock.json). Exit code = test result.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
# shellcheck source=../node-env.sh
source "$here/../node-env.sh"
need_hubbub_and_node "browser test"

if [ ! -x "$CHROMIUM_PATH" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing chromium (Debian package)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "browser test: no browser at $CHROMIUM_PATH; install it: apt-get install chromium" >&2
        exit 1
    fi
fi

cd "$here"
if [ ! -d node_modules/playwright-core ]; then
    echo "== npm ci (playwright-core)"
    npm ci --no-audit --no-fund --loglevel=error
fi

echo "== browser test: $("$CHROMIUM_PATH" --version 2>/dev/null || echo "$CHROMIUM_PATH"), $HUBBUB_BIN"
node --test demo.test.mjs
echo "== the demo page over https:// (a CA made for the run; the browser ignores that it does not know it)"
exec node --test tls.test.mjs
