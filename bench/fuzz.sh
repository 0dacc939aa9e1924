#!/usr/bin/env bash
# Fuzzing campaign: every libFuzzer target (fuzz/) for SECONDS each (10
# minutes by default), ASan + UBSan, starting from the corpus kept in the
# repository; inputs that add coverage are merged back into fuzz/corpus
# (commit them). A crash stops nothing else: its input is left in
# build/fuzz/work/<target>/crashes and the script fails at the end; turn it
# into a regression input (fuzz/regressions/<target>/) and a unit test.
#   bench/fuzz.sh [SECONDS=600] [TARGET...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-600}
shift || true
OUT=$ROOT/build/bench/fuzz-results.txt
mkdir -p "$(dirname "$OUT")"
"$ROOT/scripts/install-deps.sh"
status=0
"$ROOT/fuzz/run.sh" "$SECS" --merge "$@" | tee "$OUT" || status=$?
echo "results in $OUT"
exit $status
