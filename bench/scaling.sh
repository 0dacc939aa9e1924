#!/usr/bin/env bash
# addJob and GET /jobs/<key>/1/ latency with 100,000 finished jobs in the
# store, against a store holding one finished job and one holding 1,000
# (the size of the listing window, DEAD_JOBS_LISTED). Jobs are queued behind a
# sleeping job so the measurement is the API, not the sandbox.
#   bench/scaling.sh [SAMPLES=200]
source "$(dirname "$0")/common.sh"
SAMPLES=${1:-200}
build_release
command -v sqlite3 >/dev/null || apt-get install -y -q sqlite3 >/dev/null
OUT=$BENCH_DIR/scaling-results.txt
: >"$OUT"
for finished in 1 1000 100000; do
  start_tangod scaling "POOL_SIZE = 1"
  "$REL/bench/tango_bench" "$PORT" latency 1 >/dev/null  # one real finished job
  stop_tangod
  db=$BENCH_DIR/scaling/data/tango.sqlite
  if [ "$finished" -gt 1 ]; then
    sqlite3 "$db" "WITH RECURSIVE c(x) AS (SELECT 2 UNION ALL SELECT x+1 FROM c WHERE x < $finished)
      INSERT INTO jobs(state, callback_pending, doc) SELECT 2, 0, (SELECT doc FROM jobs WHERE state = 2 LIMIT 1) FROM c;"
  fi
  # Restart on the same data (start_tangod would wipe it).
  "$REL/apps/tangod" --config "$BENCH_DIR/scaling/tango.toml" --autodriver "$REL/apps/autodriver" >"$BENCH_DIR/scaling/tangod2.log" 2>&1 &
  TANGOD_PID=$!
  for _ in $(seq 200); do PORT=$(grep -oP 'listening on http://[^:]+:\K\d+' "$BENCH_DIR/scaling/tangod2.log" || true); [ -n "$PORT" ] && break; sleep 0.05; done
  echo "finished jobs in store: $(sqlite3 "$db" 'SELECT count(*) FROM jobs WHERE state = 2')" | tee -a "$OUT"
  "$REL/bench/tango_bench" "$PORT" blocker
  "$REL/bench/tango_bench" "$PORT" api "$SAMPLES" | sed "s/^/  /" | tee -a "$OUT"
  stop_tangod
done
echo "results in $OUT"
