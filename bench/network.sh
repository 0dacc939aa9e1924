#!/usr/bin/env bash
# What the network of a `local` job costs (LocalNetwork.cpp: slirp4netns in
# the sandbox's own namespace): a trivial job's latency (addJob answer ->
# output pollable, one after another) with the network off and on, beside
# the same sandbox run by hand without and with slirp4netns
# (bench/sandbox_floor.sh, bench/sandbox_floor_net.sh), in one run.
#   bench/network.sh [ROUNDS=3] [JOBS=50]
source "$(dirname "$0")/common.sh"
ROUNDS=${1:-3} JOBS=${2:-50}
build_release
export AUTODRIVER=$REL/apps/autodriver FLOOR_DIR=$BENCH_DIR/floor
mkdir -p "$FLOOR_DIR"
OUT=$BENCH_DIR/network-results.txt
: >"$OUT"
floor() { # floor SCRIPT LABEL ROUND
  local lat=() t0 t1
  for i in $(seq "$JOBS"); do
    t0=$EPOCHREALTIME
    "$ROOT/bench/$1" "$i"
    t1=$EPOCHREALTIME
    lat+=("$(echo "($t1 - $t0) * 1000" | bc -l)")
  done
  printf '%s\n' "${lat[@]}" | sort -n | awk -v r="$3" -v l="$2" '{a[NR]=$1} END {printf "round %s floor %s: n=%d median=%.2f ms p99=%.2f ms\n", r, l, NR, a[int(NR/2)+1], a[int(NR*0.99)+1]}' | tee -a "$OUT"
}
for r in $(seq "$ROUNDS"); do
  start_tangod network "POOL_SIZE = 2"
  sleep 1
  "$REL/bench/tango_bench" "$PORT" latency "$JOBS" | sed "s/^/round $r tangod network off /" | tee -a "$OUT"
  TANGO_BENCH_NETWORK=1 "$REL/bench/tango_bench" "$PORT" latency "$JOBS" | sed "s/^/round $r tangod network on /" | tee -a "$OUT"
  stop_tangod
  floor sandbox_floor.sh "network off" "$r"
  floor sandbox_floor_net.sh "network on" "$r"
done
echo "results in $OUT"
