#!/usr/bin/env bash
# Jobs in the `local` VMMS against their floor (bench/sandbox_floor.sh), in one
# run: latency of a trivial job (addJob answer -> output pollable) and the
# throughput of N jobs submitted at once, at the same parallelism P; with
# warm sandboxes (the default) and without. TANGO_BENCH_WAIT=1: the latency
# client waits for each output with ?wait=30 instead of polling every 0.5 ms.
#   bench/jobs.sh [ROUNDS=3] [LAT_JOBS=100] [TP_JOBS=500] [P=2]
source "$(dirname "$0")/common.sh"
ROUNDS=${1:-3} LAT_JOBS=${2:-100} TP_JOBS=${3:-500} P=${4:-2}
build_release
export AUTODRIVER=$REL/apps/autodriver FLOOR_DIR=$BENCH_DIR/floor
mkdir -p "$FLOOR_DIR"
OUT=$BENCH_DIR/jobs-results.txt
: >"$OUT"
for r in $(seq "$ROUNDS"); do
  # The service with each VM's sandbox made ahead of its job (the default),
  # and without ([local] WARM_SANDBOXES = false: made when the job runs).
  for warm in true false; do
    start_tangod jobs "POOL_SIZE = $P
[local]
WARM_SANDBOXES = $warm"
    sleep 1  # let the warm pool fill
    "$REL/bench/tango_bench" "$PORT" latency "$LAT_JOBS" | sed "s/^/round $r tangod warm=$warm /" | tee -a "$OUT"
    "$REL/bench/tango_bench" "$PORT" throughput "$TP_JOBS" | sed "s/^/round $r tangod warm=$warm /" | tee -a "$OUT"
    stop_tangod
  done

  # Floor latency: one sandbox run after another, each timed.
  JOBS=$LAT_JOBS floor_latency "addJob->pollable" "$r" "$OUT"

  # What no sandbox can beat: the trivial make alone, timed the same way.
  printf 'all:\n\t@echo hello\n' >"$FLOOR_DIR/Makefile.bare"
  lat=()
  for i in $(seq "$LAT_JOBS"); do
    t0=$EPOCHREALTIME
    make -s -f "$FLOOR_DIR/Makefile.bare" >/dev/null
    t1=$EPOCHREALTIME
    lat+=("$(echo "($t1 - $t0) * 1000" | bc -l)")
  done
  printf '%s\n' "${lat[@]}" | sort -n | awk -v r="$r" '{a[NR]=$1} END {printf "round %s bare make: n=%d median=%.2f ms\n", r, NR, a[int(NR/2)+1]}' | tee -a "$OUT"

  # Floor throughput: TP_JOBS sandbox runs, P at a time.
  t0=$EPOCHREALTIME
  seq "$TP_JOBS" | xargs -P "$P" -I{} "$ROOT/bench/sandbox_floor.sh" {}
  t1=$EPOCHREALTIME
  echo "round $r floor throughput: $TP_JOBS jobs in $(echo "$t1 - $t0" | bc -l | xargs printf %.2f) s = $(echo "$TP_JOBS / ($t1 - $t0)" | bc -l | xargs printf %.1f) jobs/s" | tee -a "$OUT"
done
echo "results in $OUT"
