#!/usr/bin/env bash
# The Autobahn WebSocket conformance cases (sections 1-10, through kosoku, a native runner
# of the Autobahn TestSuite's case files installed from PyPI into a venv here) against the
# tokio echo example. Fails unless every case is OK (or INFORMATIONAL, which has no verdict).
#
#   bash tests/autobahn/run.sh            # sections 1-8 and 10 (debug build, ~1 minute)
#   AUTOBAHN_CASES='9.*' bash tests/autobahn/run.sh   # section 9 (large messages; use
#                                         # AUTOBAHN_PROFILE=release for speed)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
profile=${AUTOBAHN_PROFILE:-debug}
out=${AUTOBAHN_OUT:-$root/target/autobahn}
venv=$root/target/autobahn-venv

command -v python3 >/dev/null || { echo "autobahn: python3 is missing" >&2; exit 1; }
if [ ! -x "$venv/bin/kosoku" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'kosoku==0.1.0'
fi

flag=""
[ "$profile" = release ] && flag="--release"
cargo build -q $flag -p hubbub-tokio --example echo
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# 20 MB: section 9's largest message is 16 MiB.
"$root/target/$profile/examples/echo" "127.0.0.1:$port" 20000000 >"$out.log" 2>&1 &
echo_pid=$!
trap 'kill $echo_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    grep -q 'echo server on' "$out.log" 2>/dev/null && break
    sleep 0.1
done

rm -rf "$out"
args=()
if [ -n "${AUTOBAHN_CASES:-}" ]; then
    args+=(-i "$AUTOBAHN_CASES")
else
    # 9: large messages (slow in a debug build); 12 and 13: compression, not offered.
    args+=(-x '9.*' -x '12.*' -x '13.*')
fi
"$venv/bin/kosoku" "ws://127.0.0.1:$port/ws" "${args[@]}" -p 2 -o "$out" >/dev/null
python3 - "$out/index.json" <<'PY'
import collections, json, sys
index = json.load(open(sys.argv[1]))
tally, bad = collections.Counter(), []
for cases in index.values():
    for case, result in cases.items():
        verdict = (result.get("behavior"), result.get("behaviorClose"))
        tally[verdict] += 1
        if verdict[0] not in ("OK", "INFORMATIONAL") or verdict[1] not in ("OK", "INFORMATIONAL"):
            bad.append(f"{case}: {verdict[0]} / close {verdict[1]}")
print("autobahn:", ", ".join(f"{n} {b}/{c}" for (b, c), n in sorted(tally.items())))
if bad or not tally:
    print("autobahn: not OK:\n  " + "\n  ".join(bad or ["no cases ran"]), file=sys.stderr)
    sys.exit(1)
PY
