#!/usr/bin/env bash
# What #15's limits cost the REST front, and what a slow-client attack does
# to other clients. The same wrk load (64 keep-alive clients, 2 threads) on
# GET /info/ and a poll of a missing file, alternating, each round, between
#   - baseline: tangod built from BASELINE_REV (before the limits), and
#   - limits:   this tree's tangod, every limit at its default;
# then this tree's tangod again with ATTACKERS connections from 127.0.0.2
# sending a header one byte at a time (the attack of
# tests/rest/FrontLimitsTest.cpp) while wrk measures from 127.0.0.1.
#   bench/rest_limits.sh [ROUNDS=3] [SECONDS=10] [ATTACKERS=3000]
source "$(dirname "$0")/common.sh"
ROUNDS=${1:-3} SECS=${2:-10} ATTACKERS=${3:-3000}
BASELINE_REV=${BASELINE_REV:-b2cf16c}
build_release
OUT=$BENCH_DIR/rest-limits-results.txt
mkdir -p "$BENCH_DIR"
: >"$OUT"

# The baseline binary, built once per revision in its own worktree.
BASE=$BENCH_DIR/baseline-$BASELINE_REV
if [ ! -x "$BASE/build/apps/tangod" ]; then
  rm -rf "$BASE"
  git -C "$ROOT" worktree add --detach "$BASE" "$BASELINE_REV" >/dev/null
  cmake -S "$BASE" -B "$BASE/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANGO_TESTS=OFF >/dev/null
  cmake --build "$BASE/build" -j "$(nproc)" --target tangod autodriver >/dev/null
fi
ulimit -n "$(ulimit -Hn)"


both_routes() { # label
  run_wrk "$1 info" "http://127.0.0.1:$PORT/info/test/"
  run_wrk "$1 poll-missing" "http://127.0.0.1:$PORT/poll/test/lab/missing/"
}

# ATTACKERS connections from 127.0.0.2, a byte each every 250 ms, for SECS+2 s.
attack() {
  python3 - "$PORT" "$ATTACKERS" "$((SECS + 2))" <<'PY' &
import socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
text = b"GET /info/test/ HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 100000
socks = []
for _ in range(n):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        continue
    s.setblocking(False)
    socks.append([s, 0])
end = time.time() + secs
while time.time() < end and socks:
    for e in list(socks):
        try:
            e[0].send(text[e[1]:e[1] + 1]); e[1] += 1
        except OSError:
            socks.remove(e)
    time.sleep(0.25)
PY
  ATTACK_PID=$!
  sleep 1
}

for r in $(seq "$ROUNDS"); do
  REL=$BASE/build start_tangod rest-baseline "POOL_SIZE = 1"
  both_routes "round $r baseline"
  stop_tangod
  start_tangod rest-limits "POOL_SIZE = 1"
  both_routes "round $r limits"
  attack
  run_wrk "round $r limits+attack info" "http://127.0.0.1:$PORT/info/test/"
  wait "$ATTACK_PID" || true
  stop_tangod
done
echo "results in $OUT"
