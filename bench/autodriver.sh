#!/usr/bin/env bash
# Autodriver overhead: the median time of a trivial job (`make` on a one-line
# Makefile) run by `make` directly, by the first autodriver (commit b094089)
# and by the current, hardened one with the flags the local VMMS passes
# (limits, input copy, partial file, usage report), all in one run, as the
# same unprivileged uid. Prints a Markdown table for docs/benchmarks.md.
#
# Usage: bench/autodriver.sh [RUNS]   (default 300; needs root for setpriv)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-300}
FIRST=${FIRST_COMMIT:-b094089}
U=65534
WORK=$(mktemp -d /tmp/autodriver-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

# Both versions built the same way as apps/autodriver: -O2, static.
build() {  # build TREE OUT
  g++ -std=c++20 -O2 -DNDEBUG -I "$1/src" "$1"/src/autodriver/*.cpp "$1/apps/autodriver.cpp" \
    -static -o "$2"
}
mkdir -p "$WORK/v1"
git -C "$ROOT" archive "$FIRST" src/autodriver apps/autodriver.cpp | tar -x -C "$WORK/v1"
build "$WORK/v1" "$WORK/autodriver-v1"
build "$ROOT" "$WORK/autodriver-hardened"

# The job: a directory the uid owns, with a Makefile whose recipe does nothing.
mkdir -p "$WORK/job" "$WORK/in"
printf 'all:\n\t@true\n' >"$WORK/job/Makefile"
printf 'all:\n\t@true\n' >"$WORK/in/Makefile"
: >"$WORK/partial"
chown -R "$U:$U" "$WORK/job" "$WORK/in" "$WORK/partial"
# The hardened run copies its inputs into $WORK/home (in the sandbox, a fresh
# tmpfs); the home is emptied before each run.
mkdir -p "$WORK/home" && chown "$U:$U" "$WORK/home"

AS_U="setpriv --reuid=$U --regid=$U --clear-groups"
MAKE_CMD="$AS_U make -s -C $WORK/job"
V1_CMD="$AS_U $WORK/autodriver-v1 -u 100 -f 104857600 -t 20 -o 1024000 $WORK/job"
HARD_CMD="$AS_U $WORK/autodriver-hardened -u 100 -f 104857600 -t 20 -o 1024000 -c 60 -m 536870912 -I $WORK/in -P $WORK/partial -R $WORK/home"

median_ms() {  # median wall time of RUNS runs of "$@", in ms (loop fallback)
  for _ in $(seq "$RUNS"); do
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s%N)
    echo $(((e - s) / 1000))
  done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}

if command -v hyperfine >/dev/null; then
  # -N: no intermediate shell; the prepare step empties the hardened job's home.
  hyperfine -N --warmup 20 --runs "$RUNS" --export-json "$WORK/h.json" \
    --prepare "find $WORK/home -mindepth 1 -delete" \
    -n make "$MAKE_CMD" -n first "$V1_CMD" -n hardened "$HARD_CMD" >/dev/null
  read -r M V H < <(python3 -c '
import json,sys
r={x["command"]:x["median"]*1000 for x in json.load(open(sys.argv[1]))["results"]}
print("%.2f %.2f %.2f"%(r["make"],r["first"],r["hardened"]))' "$WORK/h.json")
  TOOL="hyperfine $(hyperfine --version | cut -d' ' -f2)"
else
  M=$(median_ms $MAKE_CMD)
  V=$(median_ms $V1_CMD)
  H=$(median_ms sh -c "find $WORK/home -mindepth 1 -delete; exec $HARD_CMD")
  TOOL="shell loop"
fi

echo "| command | median (ms) | added over make (ms) |"
echo "|---|---|---|"
echo "| make directly | $M | - |"
echo "| first autodriver ($FIRST) | $V | $(echo "$V $M" | awk '{printf "%.2f", $1-$2}') |"
echo "| hardened autodriver | $H | $(echo "$H $M" | awk '{printf "%.2f", $1-$2}') |"
echo
echo "$RUNS runs each, $TOOL, $(nproc) cores, $(uname -r), $(date -u +%F)."
