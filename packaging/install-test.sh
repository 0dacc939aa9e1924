#!/usr/bin/env bash
# ctest packaging.install: `cmake --install` into a scratch DESTDIR, check the
# layout, then start the installed tangod with the installed default config
# (only the paths that DESTDIR moves are overridden through the environment)
# and ask it for /info with the installed tango-cli.
set -euo pipefail
BUILD=$1
DEST=$(mktemp -d "$BUILD/install-test.XXXXXX")
# The sandboxes (unprivileged uids) must reach SANDBOX_DIR: not below the build
# tree, which may lie in a home only root can search.
mkdir -p /var/lib/tango-tests
SANDBOXES=$(mktemp -d /var/lib/tango-tests/install-sandboxes.XXXXXX)
chmod 711 "$SANDBOXES"
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$DEST" "$SANDBOXES"
}
trap cleanup EXIT

DESTDIR=$DEST cmake --install "$BUILD" >/dev/null
PREFIX=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")
for f in "$PREFIX/bin/tangod" "$PREFIX/bin/tango-cli" "$PREFIX/libexec/tango/autodriver" \
         /etc/tango/tango.toml "$PREFIX/lib/systemd/system/tangod.service"; do
  [ -e "$DEST$f" ] || { echo "missing after install: $f" >&2; exit 1; }
done
[ "$(stat -c %a "$DEST/etc/tango/tango.toml")" = 600 ] || { echo "tango.toml must be mode 600 (it holds keys)" >&2; exit 1; }
grep -q "^ExecStart=$PREFIX/bin/tangod --config /etc/tango/tango.toml$" "$DEST$PREFIX/lib/systemd/system/tangod.service"
grep -q "^Restart=on-failure$" "$DEST$PREFIX/lib/systemd/system/tangod.service"
grep -q "^AUTODRIVER = \"$PREFIX/libexec/tango/autodriver\"$" "$DEST/etc/tango/tango.toml"

LOG=$DEST/tangod.log
DATA_DIR=$DEST/data SANDBOX_DIR=$SANDBOXES AUTODRIVER=$DEST$PREFIX/libexec/tango/autodriver PORT=0 HOST=127.0.0.1 \
  "$DEST$PREFIX/bin/tangod" --config "$DEST/etc/tango/tango.toml" >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  PORT=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$LOG")
  [ -n "$PORT" ] && break
  kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
  sleep 0.1
done
[ -n "$PORT" ] || { echo "installed tangod did not start" >&2; cat "$LOG" >&2; exit 1; }
"$DEST$PREFIX/bin/tango-cli" -s 127.0.0.1 -P "$PORT" -k change-me -i --json | grep -q '"statusId":0'
echo "install layout ok, installed tangod answers with the default config"
