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
root="$(cd "$here/../.." && pwd)"

if [ -z "${HUBBUB_BIN:-}" ]; then
    target="${CARGO_TARGET_DIR:-$root/target}"
    case "$target" in /*) ;; *) target="$root/$target" ;; esac
    HUBBUB_BIN="$target/debug/hubbub"
fi
export HUBBUB_BIN
if [ ! -x "$HUBBUB_BIN" ]; then
    echo "client test: no hubbub binary at $HUBBUB_BIN" >&2
    echo "build it first (cargo build -p hubbub), or point HUBBUB_BIN at one" >&2
    exit 1
fi

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "client test: $tool is missing (Node.js 20 or newer with npm is needed)" >&2
        exit 1
    fi
done

cd "$here"
if [ ! -d node_modules/ws ]; then
    echo "== npm ci (ws)"
    npm ci --no-audit --no-fund --loglevel=error
fi

echo "== JavaScript client test: node $(node --version), $HUBBUB_BIN"
exec node --test client.test.mjs
