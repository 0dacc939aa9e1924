#!/usr/bin/env bash
# Resident memory of tangod: idle, and with 10,000 queued jobs (a pool of one
# VM held by a sleeping job, so every later job stays queued).
#   bench/memory.sh [QUEUED=10000]
source "$(dirname "$0")/common.sh"
QUEUED=${1:-10000}
build_release
OUT=$BENCH_DIR/memory-results.txt
start_tangod memory "POOL_SIZE = 1"
sleep 2
idle=$(rss_kb "$TANGOD_PID")
"$REL/bench/tango_bench" "$PORT" blocker
"$REL/bench/tango_bench" "$PORT" submit "$QUEUED"
sleep 1
queued=$(curl -s "http://127.0.0.1:$PORT/info/test/" | grep -oP '"queued_jobs":\K\d+')
full=$(rss_kb "$TANGOD_PID")
stop_tangod
echo "idle RSS: $((idle / 1024)) MB ($idle kB); with $queued queued jobs: $((full / 1024)) MB ($full kB)" | tee "$OUT"
