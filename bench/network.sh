#!/usr/bin/env bash
# What the network of a `local` job costs (LocalNetwork.cpp: slirp4netns in
# the sandbox's own namespace): a trivial job's latency (addJob answer ->
# output pollable, one after another) with the network off and on, beside
# the same sandbox run by hand without and with slirp4netns
# (bench/sandbox_floor.sh ID [net]), in one run.
#   bench/network.sh [ROUNDS=3] [JOBS=50]
source "$(dirname "$0")/common.sh"
ROUNDS=${1:-3} JOBS=${2:-50}
build_release
export AUTODRIVER=$REL/apps/autodriver FLOOR_DIR=$BENCH_DIR/floor
mkdir -p "$FLOOR_DIR"
OUT=$BENCH_DIR/network-results.txt
: >"$OUT"
for r in $(seq "$ROUNDS"); do
  start_tangod network "POOL_SIZE = 2"
  sleep 1
  "$REL/bench/tango_bench" "$PORT" latency "$JOBS" | sed "s/^/round $r tangod network off /" | tee -a "$OUT"
  TANGO_BENCH_NETWORK=1 "$REL/bench/tango_bench" "$PORT" latency "$JOBS" | sed "s/^/round $r tangod network on /" | tee -a "$OUT"
  stop_tangod
  floor_latency "network off" "$r" "$OUT"
  floor_latency "network on" "$r" "$OUT" net
done
echo "results in $OUT"
