#!/usr/bin/env bash
# Soak: MINUTES of mixed normal and hostile jobs on `local` at the machine's
# capacity (INFLIGHT jobs live at all times, POOL_SIZE = cores), with the
# release tangod. Every SAMPLE seconds it records tangod's resident memory
# and open file descriptors; at the end it waits for the queue to drain and
# checks that nothing is left: no process of a sandbox uid, no VM directory
# beyond the warm pool, every normal job a success, no job still live.
#   bench/soak.sh [MINUTES=30] [INFLIGHT=6] [SAMPLE=30]
# Results: build/bench/soak-results.txt (summary), soak-samples.csv.
source "$(dirname "$0")/common.sh"
MINUTES=${1:-30} INFLIGHT=${2:-6} SAMPLE=${3:-30}
build_release
OUT=$BENCH_DIR/soak-results.txt
CSV=$BENCH_DIR/soak-samples.csv
CASES=$ROOT/tests/hostile
UID_BASE=300000 SLOTS=1000
POOL=$(nproc)

start_tangod soak "POOL_SIZE = $POOL
VM_MEMORY_LIMIT = 128
VM_DISK_LIMIT = 16
[local]
UID_BASE = $UID_BASE
SLOTS = $SLOTS"
API=http://127.0.0.1:$PORT
trap stop_tangod EXIT

# The mix: normal jobs (examples/hello) between the hostile cases of
# tests/hostile (their README.md says what each attacks), with the timeouts
# the hostile suite gives them. About half the jobs are normal; "hellonet" is
# hello with the network on (a slirp4netns per run).
MIX=(hello:10 fork_bomb:3 hello:10 memory_hog:5 hello:10 thread_bomb:4 hello:10
  ignore_sigterm:2 hello:10 double_fork_daemon:5 hello:10 dev_shm_fill:10 hello:10
  tmp_leftovers:5 hello:10 disk_fill:5 hello:10 syscalls:10 hello:10 stdout_1gb:5
  hello:10 close_stdout:2 hello:10 stdin_wait:10 hellonet:10 network:8)

# One courselab per case, its files uploaded once.
for entry in "${MIX[@]}"; do
  name=${entry%%:*}
  dir=$CASES/$name
  [ "$name" = hello ] || [ "$name" = hellonet ] && dir=$ROOT/examples/hello
  lab=soak-${name//_/-}
  curl -sf "$API/open/test/$lab/" >/dev/null
  for f in "$dir"/*; do
    [ "$(basename "$f")" = README.md ] && continue
    curl -sf -H "Filename: $(basename "$f")" --data-binary "@$f" "$API/upload/test/$lab/" >/dev/null
  done
done

live() { curl -sf "$API/jobs/test/0/" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["jobs"]))'; }
fds() { ls "/proc/$TANGOD_PID/fd" | wc -l; }
submit() { # submit NAME TIMEOUT SEQ
  local name=$1 timeout=$2 n=$3 lab=soak-${1//_/-} files=""
  local dir=$CASES/$name net=true
  [ "$name" = hello ] || [ "$name" = hellonet ] && dir=$ROOT/examples/hello
  [ "$name" = hellonet ] && net=false
  for f in "$dir"/*; do
    b=$(basename "$f")
    [ "$b" = README.md ] && continue
    [ "$b" = autograde-Makefile ] && d=Makefile || d=$b
    files+="${files:+,}{\"localFile\":\"$b\",\"destFile\":\"$d\"}"
  done
  curl -sf "$API/addJob/test/$lab/" -d "{\"image\":\"autograding_image\",\"files\":[$files],\
\"output_file\":\"$n.out\",\"jobName\":\"$name-$n\",\"timeout\":$timeout,\
\"disable_network\":$net}" |
    grep -q '"statusId": *0' || echo "addJob of $name-$n failed" >&2 || true
}

echo "seconds,rss_kb,fds,live,submitted" >"$CSV"
start=$SECONDS end=$((SECONDS + MINUTES * 60)) next_sample=$SECONDS n=0
rss_start=$(rss_kb "$TANGOD_PID") fds_start=$(fds)
while ((SECONDS < end)); do
  l=$(live)
  while ((l < INFLIGHT)); do
    entry=${MIX[$((n % ${#MIX[@]}))]}
    submit "${entry%%:*}" "${entry##*:}" "$n"
    n=$((n + 1)) l=$((l + 1))
  done
  if ((SECONDS >= next_sample)); then
    echo "$((SECONDS - start)),$(rss_kb "$TANGOD_PID"),$(fds),$l,$n" | tee -a "$CSV"
    next_sample=$((next_sample + SAMPLE))
  fi
  sleep 0.5
done

# Drain, let the pool settle, then look for what was left.
for _ in $(seq 240); do [ "$(live)" -eq 0 ] && break; sleep 0.5; done
sleep 10
rss_end=$(rss_kb "$TANGOD_PID") fds_end=$(fds) still_live=$(live)
echo "$((SECONDS - start)),$rss_end,$fds_end,$still_live,$n" | tee -a "$CSV"
dead=$(curl -sf "$API/jobs/test/1/")
normal_ok=$(echo "$dead" | python3 -c '
import json, sys
jobs = json.load(sys.stdin)["jobs"]
hello = [j for j in jobs if j["name"].startswith(("hello-", "hellonet-"))]
print(sum(1 for j in hello if j.get("outcome") == "success"), len(hello), len(jobs))')
read -r ok hello total <<<"$normal_ok"
# VM uids and their keepers (UID_BASE + SLOTS + slot).
procs=$(ps -eo uid= | awk -v lo=$UID_BASE -v hi=$((UID_BASE + 2 * SLOTS)) '$1 >= lo && $1 < hi' | wc -l)
free=$(curl -sf "$API/pool/test/" | python3 -c '
import json, sys
print(sum(len(p["free"]) for p in json.load(sys.stdin)["pools"].values()))')
slirps=$(pgrep -xc slirp4netns || true)
vmdirs=$(find "$BENCH_DIR/soak/sandboxes" -mindepth 1 -maxdepth 1 -type d -name 'local-*' | wc -l)
summary="soak: $MINUTES min, $n jobs submitted ($total finished, $hello normal of which $ok succeeded), \
still live $still_live; tangod RSS $((rss_start / 1024)) MB at start, $((rss_end / 1024)) MB at end \
(max $(cut -d, -f2 "$CSV" | tail -n +2 | sort -n | tail -1) kB); fds $fds_start at start, $fds_end at end \
(max $(cut -d, -f3 "$CSV" | tail -n +2 | sort -n | tail -1)); leftovers: $procs sandbox processes, \
$slirps slirp4netns, $((vmdirs - free)) VM directories beyond the $free pooled"
echo "$summary" | tee "$OUT"
[ "$still_live" -eq 0 ] && [ "$ok" -eq "$hello" ] && [ "$procs" -eq 0 ] && [ "$slirps" -eq 0 ] && [ "$vmdirs" -eq "$free" ]
