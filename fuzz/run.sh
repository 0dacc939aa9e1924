#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each one.
#   fuzz/run.sh SECONDS [--merge] [TARGET...]
# Every target first replays its regression inputs (fuzz/regressions/<t>/:
# inputs that once crashed), then fuzzes for SECONDS from its corpus
# (fuzz/corpus/<t>/, kept in the repository). New inputs go to a scratch
# copy under build/fuzz/work; --merge folds the ones that add coverage back
# into fuzz/corpus (the campaign does, CI does not). A crash leaves its input
# in build/fuzz/work/<t>/crashes and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECONDS_EACH=${1:?usage: fuzz/run.sh SECONDS [--merge] [TARGET...]}
shift
MERGE=0
if [ "${1:-}" = "--merge" ]; then MERGE=1; shift; fi
ALL=(http_request add_job config_toml autodriver_options autodriver_frames usage_line
  stdin_job_tar first_file_of_tar)
TARGETS=("$@")
[ $# -gt 0 ] || TARGETS=("${ALL[@]}")

BUILD=$ROOT/build/fuzz
CC=clang CXX=clang++ cmake -S fuzz -B "$BUILD" -G Ninja >/dev/null
cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" $(printf -- '--target fuzz_%s ' "${TARGETS[@]}")

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
printf '%-20s %10s %10s %8s %8s %s\n' target runs exec/s cov corpus result
for t in "${TARGETS[@]}"; do
  bin=$BUILD/fuzz_$t
  work=$BUILD/work/$t
  rm -rf "$work" && mkdir -p "$work/corpus" "$work/crashes"
  cp -r "fuzz/corpus/$t/." "$work/corpus/" 2>/dev/null || true
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="$ROOT/fuzz/dict/$t.dict")
  log=$work/log.txt
  result=ok
  if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
    if ! "$bin" "fuzz/regressions/$t"/* >"$work/regressions.txt" 2>&1; then
      result="REGRESSION (see $work/regressions.txt)"
      status=1
    fi
  fi
  if [ "$result" = ok ] && ! (cd "$work" && "$bin" "${dict[@]}" \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix=crashes/ -print_final_stats=1 corpus >"$log" 2>&1); then
    result="CRASH (input in $work/crashes, log $log)"
    status=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" 2>/dev/null | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" 2>/dev/null | tail -1 | cut -d' ' -f2)
  if [ "$MERGE" = 1 ] && [ "$result" = ok ]; then
    mkdir -p "fuzz/corpus/$t"
    "$bin" -merge=1 -max_len=65536 "fuzz/corpus/$t" "$work/corpus" >"$work/merge.txt" 2>&1
  fi
  printf '%-20s %10s %10s %8s %8s %s\n' "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" \
    "$(ls "$work/corpus" | wc -l)" "$result"
done
exit $status
