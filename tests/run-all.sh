#!/usr/bin/env bash
# Runs every check and test of the workspace. Installs what the tests need on a bare machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build -p hubbub
cargo test --workspace
