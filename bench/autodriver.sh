#!/usr/bin/env bash
# Autodriver overhead: the median time of a trivial job (`make` on a one-line
# Makefile) run by `make` directly, by the first autodriver (commit b094089)
# and by the current, hardened one with the flags the local VMMS passes
# (limits, input copy, partial file, usage report), all in one run, as the
# same unprivileged uid. Prints a Markdown table for docs/benchmarks.md.
#
# Usage: bench/autodriver.sh [RUNS]   (default 300; needs root for setpriv)
# hyperfine is not used: it runs all rounds of one command before the next,
# which on a shared machine measures the load drift more than the autodriver.
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

# Interleaved: each round runs the three commands back to back, so a change in
# the machine's load (it is shared) hits all three alike; the figure that
# matters is the median of the per-round differences. Timing is done inside
# python (perf_counter around fork+exec+wait), which adds the same to each.
read -r M V H DV DH < <(python3 - "$RUNS" "$WORK" "$MAKE_CMD" "$V1_CMD" "$HARD_CMD" <<'PY'
import os, shutil, statistics, subprocess, sys, time
runs, work = int(sys.argv[1]), sys.argv[2]
cmds = [c.split() for c in sys.argv[3:6]]
home = os.path.join(work, "home")
def once(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t) * 1000
def empty_home():
    for n in os.listdir(home):
        p = os.path.join(home, n)
        shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
for _ in range(20):  # warm-up
    for c in cmds:
        empty_home(); once(c)
t = [[], [], []]
for _ in range(runs):
    for i, c in enumerate(cmds):
        empty_home(); t[i].append(once(c))
med = [statistics.median(x) for x in t]
dv = statistics.median(v - m for v, m in zip(t[1], t[0]))
dh = statistics.median(h - m for h, m in zip(t[2], t[0]))
print("%.2f %.2f %.2f %.2f %.2f" % (med[0], med[1], med[2], dv, dh))
PY
)

echo "| command | median (ms) | added over make: median of per-round differences (ms) |"
echo "|---|---|---|"
echo "| make directly | $M | - |"
echo "| first autodriver ($FIRST) | $V | $DV |"
echo "| hardened autodriver | $H | $DH |"
echo
echo "$RUNS interleaved rounds, $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%F)."
