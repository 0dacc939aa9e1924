#!/usr/bin/env bash
# Installs every Debian package the build, the service and the tests need.
# Idempotent: only calls apt-get when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git curl
  libboost1.81-dev libboost-json1.81-dev
  libcurl4-openssl-dev libarchive-dev libsqlite3-dev sqlite3 libssl-dev
  libspdlog-dev libfmt-dev libtomlplusplus-dev libcli11-dev
  libgtest-dev libgmock-dev
  bubblewrap make libseccomp-dev  # the local sandbox and its seccomp filter
  slirp4netns  # the network of a local job that asks for one
  openssh-client libxml2-dev  # the SSH backends; EC2's XML answers
  libhiredis-dev redis-server  # several nodes on one Redis (tests start their own servers)
  awscli  # proves the EC2 test double speaks EC2 (tests/ec2)
  docker.io mmdebstrap
  socat  # bridges a test engine's TLS port out of its network namespace (tests/docker/engines)
  openssh-server  # sshd for the test engine reached over ssh:// (tests/docker/engines)
  wrk
  clang libclang-rt-14-dev  # libFuzzer and its sanitizers (fuzz/run.sh)
  prometheus chromium  # promtool parses /metrics; headless chromium tests /status/
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  # The packages' own services (sshd, redis, dockerd) are not started on
  # install: the tests and ./dev start the instances they use, on loopback.
  # A policy-rc.d of the machine's own is left as it is.
  norc=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    norc=1
  fi
  status=0
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
  [ -z "$norc" ] || $SUDO rm -f /usr/sbin/policy-rc.d
  exit $status
fi
