#!/bin/sh
# protoc for build scripts: the system one if installed, else the vendored binary of the
# protoc-bin-vendored crate from cargo's registry (see .cargo/config.toml).
if command -v protoc >/dev/null 2>&1; then
    exec protoc "$@"
fi
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
for candidate in "$registry"/*/protoc-bin-vendored-linux-x86_64-*/bin/protoc \
                 "$registry"/*/protoc-bin-vendored-linux-aarch_64-*/bin/protoc; do
    if [ -x "$candidate" ]; then
        exec "$candidate" "$@"
    fi
done
echo "protoc not found: install protobuf-compiler, or let cargo fetch protoc-bin-vendored" >&2
exit 1
