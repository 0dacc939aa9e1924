#!/usr/bin/env bash
# What durability costs: addJob latency (p50/p99, one request at a time) and
# the throughput of N trivial jobs submitted at once, with this tree's
# tangod (uploads and outputs fsynced, SQLite synchronous=FULL for a job
# accepted and a job finished) against the same service just before that
# change, in alternating rounds; and the floor, the disk's own cost of one
# durable small write (write + fsync of the file + fsync of its directory)
# on the filesystem that holds DATA_DIR.
#   bench/durability.sh [ROUNDS=3] [N=300]
source "$(dirname "$0")/common.sh"
ROUNDS=${1:-3} N=${2:-300}
build_release
mkdir -p "$BENCH_DIR"
OUT=$BENCH_DIR/durability-results.txt
: >"$OUT"

BEFORE=${BEFORE:-$(git -C "$ROOT" log --format=%H -1 --grep='^Nothing acknowledged is lost')~1}
BEFORE_SRC=$BENCH_DIR/durability-before-src
BEFORE_REL=$BENCH_DIR/durability-before-build
rev=$(git -C "$ROOT" rev-parse "$BEFORE")
if [ "$(git -C "$BEFORE_SRC" rev-parse HEAD 2>/dev/null)" != "$rev" ]; then
  git -C "$ROOT" worktree remove --force "$BEFORE_SRC" 2>/dev/null || rm -rf "$BEFORE_SRC"
  git -C "$ROOT" worktree add --detach "$BEFORE_SRC" "$rev" >/dev/null
fi
cmake -S "$BEFORE_SRC" -B "$BEFORE_REL" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANGO_TESTS=OFF >/dev/null
cmake --build "$BEFORE_REL" -j "$(nproc)" --target tangod autodriver >/dev/null

AFTER_REL=$REL
for r in $(seq "$ROUNDS"); do
  for variant in before after; do
    if [ $variant = before ]; then REL=$BEFORE_REL; else REL=$AFTER_REL; fi
    start_tangod "durability-$variant" "POOL_SIZE = 2"
    sleep 1
    "$AFTER_REL/bench/tango_bench" "$PORT" api "$N" | grep addJob | sed "s/^/round $r $variant /" | tee -a "$OUT"
    "$AFTER_REL/bench/tango_bench" "$PORT" throughput "$N" | sed "s/^/round $r $variant /" | tee -a "$OUT"
    stop_tangod
  done
  REL=$AFTER_REL
  # The floor: one durable 4 KiB write, as the service makes it for an output.
  python3 - "$BENCH_DIR" "$r" <<'PY' | tee -a "$OUT"
import os, statistics, sys, time
d = os.path.join(sys.argv[1], "fsync-floor"); os.makedirs(d, exist_ok=True)
t = []
for i in range(200):
    t0 = time.monotonic()
    fd = os.open(os.path.join(d, f"f{i}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"x" * 4096); os.fsync(fd); os.close(fd)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY); os.fsync(dfd); os.close(dfd)
    t.append((time.monotonic() - t0) * 1000)
t.sort()
print(f"round {sys.argv[2]} floor durable 4 KiB write: median={statistics.median(t):.3f} ms p99={t[int(len(t)*0.99)]:.3f} ms")
PY
done
echo "results in $OUT"
