# Shared by the bench scripts: build the release binaries, start/stop tangod.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REL=$ROOT/build/release
BENCH_DIR=${BENCH_DIR:-$ROOT/build/bench}

build_release() {
  "$ROOT/scripts/install-deps.sh"
  command -v hyperfine >/dev/null && command -v nginx >/dev/null && command -v bc >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q hyperfine nginx-light bc >/dev/null
  cmake -S "$ROOT" -B "$REL" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANGO_TESTS=OFF >/dev/null
  cmake --build "$REL" -j "$(nproc)" >/dev/null
}

# start_tangod NAME "EXTRA TOML": data under $BENCH_DIR/NAME, sets TANGOD_PID and PORT.
start_tangod() {
  local name=$1 extra=${2:-}
  local dir=$BENCH_DIR/$name
  rm -rf "$dir" && mkdir -p "$dir"
  cat >"$dir/tango.toml" <<TOML
PORT = 0
HOST = "127.0.0.1"
DATA_DIR = "$dir/data"
SANDBOX_DIR = "$dir/sandboxes"
LOG_LEVEL = "warn"
$extra
TOML
  "$REL/apps/tangod" --config "$dir/tango.toml" --autodriver "$REL/apps/autodriver" >"$dir/tangod.log" 2>&1 &
  TANGOD_PID=$!
  for _ in $(seq 200); do
    PORT=$(grep -oP 'listening on http://[^:]+:\K\d+' "$dir/tangod.log" || true)
    [ -n "$PORT" ] && return 0
    sleep 0.05
  done
  echo "tangod did not start:" >&2; cat "$dir/tangod.log" >&2; exit 1
}

stop_tangod() { kill "$TANGOD_PID" 2>/dev/null || true; wait "$TANGOD_PID" 2>/dev/null || true; }

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# floor_latency LABEL ROUND OUT [net]: JOBS runs of bench/sandbox_floor.sh one
# after another, each timed; prints the median and p99 line to OUT.
floor_latency() {
  local label=$1 round=$2 out=$3 net=${4:-} lat=() t0 t1
  for i in $(seq "$JOBS"); do
    t0=$EPOCHREALTIME
    "$ROOT/bench/sandbox_floor.sh" "$i" $net
    t1=$EPOCHREALTIME
    lat+=("$(echo "($t1 - $t0) * 1000" | bc -l)")
  done
  printf '%s\n' "${lat[@]}" | sort -n | awk -v r="$round" -v l="$label" '{a[NR]=$1} END {printf "round %s floor %s: n=%d median=%.2f ms p99=%.2f ms\n", r, l, NR, a[int(NR/2)+1], a[int(NR*0.99)+1]}' | tee -a "$out"
}

# run_wrk LABEL URL: 64 keep-alive clients on 2 threads for $SECS s; appends
# "LABEL rps=... p99=..." to $OUT.
run_wrk() {
  wrk -t2 -c64 -d"${SECS}s" --latency "$2" >"$BENCH_DIR/wrk.txt"
  local rps p99
  rps=$(awk '/^Requests\/sec/ {print $2}' "$BENCH_DIR/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$BENCH_DIR/wrk.txt")
  echo "$1 rps=$rps p99=$p99" | tee -a "$OUT"
}
