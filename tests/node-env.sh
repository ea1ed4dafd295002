# Sourced by the Node-based test scripts (tests/jsclient/run.sh, tests/browser/run.sh):
# `need_hubbub_and_node WHAT` exports HUBBUB_BIN ($HUBBUB_BIN, else
# $CARGO_TARGET_DIR/debug/hubbub, else target/debug/hubbub) and stops, naming WHAT, when the
# binary, node or npm is missing.
need_hubbub_and_node() {
    local what="$1" root target tool
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if [ -z "${HUBBUB_BIN:-}" ]; then
        target="${CARGO_TARGET_DIR:-$root/target}"
        case "$target" in /*) ;; *) target="$root/$target" ;; esac
        HUBBUB_BIN="$target/debug/hubbub"
    fi
    export HUBBUB_BIN
    if [ ! -x "$HUBBUB_BIN" ]; then
        echo "$what: no hubbub binary at $HUBBUB_BIN" >&2
        echo "build it first (cargo build -p hubbub), or point HUBBUB_BIN at one" >&2
        exit 1
    fi
    for tool in node npm; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "$what: $tool is missing (Node.js 20 or newer with npm is needed)" >&2
            exit 1
        fi
    done
}
