#!/usr/bin/env bash
# Crash storm campaign: JOBS jobs queued, the service killed with SIGKILL at
# random moments KILLS times and restarted each time, on `local` and on
# `localDocker` (tests/service/CrashStorm.hpp; CI runs 100 jobs, 10 kills).
# Runs the storm tests of the test build (build/asan: the sanitizers watch
# every restart) with the campaign's numbers and prints each run's line:
# jobs, kills, kills that hit a running job, time; lost, finished twice,
# completed twice, callbacks repeated (a job whose callback was sent before
# a kill and its finish recorded after may be called back again; Tango's
# callbacks are at-least-once too).
#   bench/crashstorm.sh [JOBS=1000] [KILLS=100]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
JOBS=${1:-1000} KILLS=${2:-100}
BUILD=$ROOT/build/asan
OUT=$ROOT/build/bench/crashstorm-results.txt
mkdir -p "$(dirname "$OUT")"
"$ROOT/scripts/install-deps.sh"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DTANGO_SANITIZE=ON >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target service_tests docker_tests tango-image >/dev/null
if ! curl -sf --unix-socket /var/run/docker.sock http://docker/_ping >/dev/null 2>&1; then
  setsid dockerd >/var/log/tango-dockerd.log 2>&1 </dev/null &
  for _ in $(seq 120); do
    curl -sf --unix-socket /var/run/docker.sock http://docker/_ping >/dev/null 2>&1 && break
    sleep 0.5
  done
fi
"$BUILD/apps/tango-image" build tango-test-minimal --no-defaults --packages make \
  --autodriver "$BUILD/apps/autodriver" --if-changed
: >"$OUT"
export CRASH_STORM_JOBS=$JOBS CRASH_STORM_KILLS=$KILLS
status=0
for t in "service_tests CrashStormTest.*" "docker_tests DockerCrashStormTest.*"; do
  set -- $t
  echo "== $2"
  (cd "$BUILD/tests" && "./$1" --gtest_filter="$2") >"$OUT.$1.log" 2>&1 || status=1
  grep -E '^crash storm:|\[  (PASSED|FAILED)  \]' "$OUT.$1.log" | sed "s/^/$2 /" | tee -a "$OUT"
done
echo "results in $OUT (full logs beside it)"
exit $status
