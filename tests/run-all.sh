#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, the core's dependency rule,
# unit, property, simulation and integration tests (real binary, real Redis, real etcd).
# On a bare machine it installs what the tests need (Debian packages redis-server and
# etcd-server) when it runs as root; otherwise it says what is missing and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "the tests need these Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

echo "== format"
cargo fmt --all --check

echo "== hub-core depends on no runtime, network or async crate"
forbidden='^(tokio|smol|async-io|async-std|futures|futures-util|futures-core|tonic|redis|etcd-client|mio|hyper) '
if cargo tree -p hub-core -e normal --prefix none --format '{p}' | grep -E "$forbidden"; then
    echo "hub-core must stay sans-IO: the crates above must not be among its dependencies" >&2
    exit 1
fi

echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== build the binary the integration tests run"
cargo build -p hubbub

echo "== tests (integration suite on tokio)"
HUBBUB_TEST_RUNTIME=tokio cargo test --workspace

echo "== integration suite again: single nodes on smol, clusters mixing smol and tokio nodes"
HUBBUB_TEST_RUNTIME=mixed cargo test -p hubbub-tests

echo "== the client protocol and producer API suites over wss:// and https:// (a test CA), on tokio and on smol"
HUBBUB_TEST_TLS=1 HUBBUB_TEST_RUNTIME=tokio cargo test -p hubbub-tests --test client_protocol --test producer_api
HUBBUB_TEST_TLS=1 HUBBUB_TEST_RUNTIME=smol cargo test -p hubbub-tests --test client_protocol --test producer_api

echo "== the JavaScript client (/hubbub.js) from Node, against the real binary"
bash tests/jsclient/run.sh

echo "== the demo page in a real browser (Debian's chromium, installed when missing)"
bash tests/browser/run.sh

echo "== Pusher clients (pusher-js, the pusher server SDK, laravel-echo from npm) against one node"
bash tests/pusher/run.sh single

echo "== fault suite, short form: kill -9 and a rolling restart in a three-node cluster (Redis)"
bash tests/faults/run.sh --short

echo "== Autobahn conformance, sections 1-8 and 10, against the echo example (kosoku from PyPI)"
bash tests/autobahn/run.sh
