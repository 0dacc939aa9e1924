#!/usr/bin/env bash
# The floor of a `local` job: the same bubblewrap sandbox + autodriver + make
# that LocalVmms runs, done by hand (mkdir, copy the Makefile, chown, bwrap as
# the job's uid, remove), with no service around it.
#   sandbox_floor.sh ID [net]
# With "net", also what LocalNetwork.cpp does for a job with the network on:
# bwrap reports its child (--info-fd) and waits (--block-fd) while
# slirp4netns brings tap0 up in the child's network namespace.
set -euo pipefail
ID=$1 NET=${2:-}
AUTODRIVER=${AUTODRIVER:?}
BASE=${FLOOR_DIR:?}
U=$((250000 + ID))
D=$BASE/vm-$ID
mkdir -p "$D/job" "$D/run"
printf 'all:\n\t@echo hello\n' >"$D/job/Makefile"
chown -R "$U:$U" "$D/job" "$D/run"
chmod 700 "$D/job" "$D/run"
netargs=()
if [ -n "$NET" ]; then
  mkdir -p "$D/fifo"
  mkfifo "$D/fifo/info" "$D/fifo/block" "$D/fifo/ready" "$D/fifo/exit"
  netargs=(--info-fd 5 --block-fd 6)
fi
sandbox() {
  setpriv --reuid="$U" --regid="$U" --clear-groups \
    bwrap --unshare-user --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try \
    --unshare-net "${netargs[@]}" \
    --disable-userns --die-with-parent --new-session --hostname "floor-$ID" \
    --ro-bind / / --dev /dev --proc /proc \
    --size 536870912 --tmpfs /tmp --size 536870912 --tmpfs /var/tmp \
    --size 16777216 --tmpfs /run --size 16777216 --tmpfs /home --size 16777216 --tmpfs "$BASE" \
    --bind "$D/job" /home/autograde --bind "$D/run" /run/tango-out \
    --ro-bind "$AUTODRIVER" /run/tango/autodriver --chdir /home/autograde --clearenv \
    --setenv HOME /home/autograde --setenv PATH /usr/local/bin:/usr/bin:/bin --setenv USER autograde \
    --setenv LANG C.UTF-8 -- /run/tango/autodriver -u 100 -f 104857600 -t 20 -o 1024000 \
    -P /run/tango-out/partial -R /home/autograde >"$D/output" 2>/dev/null
}
if [ -z "$NET" ]; then
  sandbox
else
  sandbox 5>"$D/fifo/info" 6<"$D/fifo/block" &
  BWRAP=$!
  # FIFOs open in the order the background shell opens them (info, then block).
  exec {infofd}<"$D/fifo/info"
  exec {block}>"$D/fifo/block"
  info=""
  while IFS= read -r -t 10 line <&"$infofd"; do
    info+=$line
    [[ $line == *"}"* ]] && break
  done
  exec {infofd}<&-
  pid=$(grep -oP '"child-pid": *\K\d+' <<<"$info")
  slirp4netns --configure --mtu=65520 --disable-host-loopback --enable-sandbox --enable-seccomp \
    --ready-fd=7 --exit-fd=8 --netns-type=path "/proc/$pid/ns/net" tap0 \
    7>"$D/fifo/ready" 8<"$D/fifo/exit" >/dev/null 2>&1 &
  SLIRP=$!
  exec {readyfd}<"$D/fifo/ready"
  exec {exitfd}>"$D/fifo/exit"
  read -r -n1 -t 10 _ <&"$readyfd"
  exec {readyfd}<&-
  echo 1 >&"$block"
  exec {block}>&-
  wait "$BWRAP"
  exec {exitfd}>&-
  wait "$SLIRP"
fi
grep -q '^hello$' "$D/output"
rm -rf "$D"
