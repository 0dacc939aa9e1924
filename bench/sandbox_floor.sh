#!/usr/bin/env bash
# The floor of a `local` job: the same bubblewrap sandbox + autodriver + make
# that LocalVmms runs, done by hand (mkdir, copy the Makefile, chown, bwrap as
# the job's uid, remove), with no service around it. Usage: sandbox_floor.sh ID
set -euo pipefail
ID=$1
AUTODRIVER=${AUTODRIVER:?}
BASE=${FLOOR_DIR:?}
U=$((250000 + ID))
D=$BASE/vm-$ID
mkdir -p "$D/job" "$D/run"
printf 'all:\n\t@echo hello\n' >"$D/job/Makefile"
chown -R "$U:$U" "$D/job" "$D/run"
chmod 700 "$D/job" "$D/run"
setpriv --reuid="$U" --regid="$U" --clear-groups \
  bwrap --unshare-user --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try --unshare-net \
  --disable-userns --die-with-parent --new-session --hostname "floor-$ID" \
  --ro-bind / / --dev /dev --proc /proc \
  --size 536870912 --tmpfs /tmp --size 536870912 --tmpfs /var/tmp \
  --size 16777216 --tmpfs /run --size 16777216 --tmpfs /home --size 16777216 --tmpfs "$BASE" \
  --bind "$D/job" /home/autograde --bind "$D/run" /run/tango-out \
  --ro-bind "$AUTODRIVER" /run/tango/autodriver --chdir /home/autograde --clearenv \
  --setenv HOME /home/autograde --setenv PATH /usr/local/bin:/usr/bin:/bin --setenv USER autograde \
  --setenv LANG C.UTF-8 -- /run/tango/autodriver -u 100 -f 104857600 -t 20 -o 1024000 \
  -P /run/tango-out/partial -R /home/autograde >"$D/output" 2>/dev/null
grep -q '^hello$' "$D/output"
rm -rf "$D"
