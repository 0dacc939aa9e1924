#!/usr/bin/env bash
# Jobs in the `local` VMMS against their floor (bench/sandbox_floor.sh), in one
# run: latency of a trivial job (addJob answer -> output pollable) and the
# throughput of N jobs submitted at once, at the same parallelism P.
#   bench/jobs.sh [ROUNDS=3] [LAT_JOBS=100] [TP_JOBS=500] [P=2]
source "$(dirname "$0")/common.sh"
ROUNDS=${1:-3} LAT_JOBS=${2:-100} TP_JOBS=${3:-500} P=${4:-2}
build_release
export AUTODRIVER=$REL/apps/autodriver FLOOR_DIR=$BENCH_DIR/floor
mkdir -p "$FLOOR_DIR"
OUT=$BENCH_DIR/jobs-results.txt
: >"$OUT"
for r in $(seq "$ROUNDS"); do
  start_tangod jobs "POOL_SIZE = $P"
  sleep 1  # let the warm pool fill
  "$REL/bench/tango_bench" "$PORT" latency "$LAT_JOBS" | sed "s/^/round $r tangod /" | tee -a "$OUT"
  "$REL/bench/tango_bench" "$PORT" throughput "$TP_JOBS" | sed "s/^/round $r tangod /" | tee -a "$OUT"
  stop_tangod

  # Floor latency: one sandbox run after another, each timed.
  JOBS=$LAT_JOBS floor_latency "addJob->pollable" "$r" "$OUT"

  # Floor throughput: TP_JOBS sandbox runs, P at a time.
  t0=$EPOCHREALTIME
  seq "$TP_JOBS" | xargs -P "$P" -I{} "$ROOT/bench/sandbox_floor.sh" {}
  t1=$EPOCHREALTIME
  echo "round $r floor throughput: $TP_JOBS jobs in $(echo "$t1 - $t0" | bc -l | xargs printf %.2f) s = $(echo "$TP_JOBS / ($t1 - $t0)" | bc -l | xargs printf %.1f) jobs/s" | tee -a "$OUT"
done
echo "results in $OUT"
