#!/usr/bin/env bash
# Two extra Docker engines on this machine for the distDocker tests, beside the
# main engine (/var/run/docker.sock), which this script never touches (its
# containers, its docker0 bridge, its iptables rules).
#
#   test-engines.sh up <statedir>      start what is not running, wait for /_ping,
#                                      load the test images, write <statedir>/engines.env
#   test-engines.sh down <statedir>    remove the extra engines' containers, stop
#                                      everything started here, delete the netns
#                                      (data-roots stay, so the next up is fast)
#   test-engines.sh kill9 <e2|e3>      the engine's host dies (see "kill9" below)
#   test-engines.sh restart <e2|e3>    start it again with the same settings
#   test-engines.sh freeze|thaw <e2|e3> SIGSTOP / SIGCONT its dockerd (it hangs)
#   test-engines.sh status             processes, /_ping, memory per engine
#
#   e2: reached over TCP + TLS client certificates on 127.0.0.1:$TANGO_E2_PORT (23760)
#   e3: reached over SSH on 127.0.0.1:$TANGO_SSH_PORT (23722): ssh -L to its unix socket
#
# engines.env (KEY=value, no quoting; the statedir may hold only [A-Za-z0-9._/+@-]):
#   E2_HOST E2_PORT E2_CA E2_CERT E2_KEY E2_CERT_PATH E2_SOCKET
#   E3_SOCKET SSH_HOST SSH_USER SSH_PORT SSH_KEY SSH_KNOWN_HOSTS IMAGES
#
# Other settings (environment): TANGO_MAIN_DOCKER_SOCK (/var/run/docker.sock),
# TANGO_ENGINE_IMAGES ("tango-test-minimal", space-separated, each must exist
# in the main engine), TANGO_ENGINE_TIMEOUT (60 s per wait),
# TANGO_KILL9_ENDPOINT (1: kill9 also kills the engine's listener, see below),
# TANGO_IMAGE (the project's tango-image: images are loaded with its `push`;
# unset, they are streamed with curl).
#
# Why each choice:
#
# * A network namespace per engine (ip netns add tango-e2 / tango-e3; the
#   daemons are started with `nsenter --net`, which changes nothing else: same
#   mounts, same /sys/fs/cgroup). dockerd owns the network of the namespace it
#   runs in: with --bridge=none in the host's namespace it deletes docker0, the
#   main engine's bridge; libnetwork state, sysctls and listeners are all per
#   namespace. In its own namespace an engine can reach nothing of the host's
#   network and its TCP listener (e2's 127.0.0.1:2376) is private, reachable
#   only through the one bridge below. (Not `ip netns exec`: it remounts /sys,
#   which hides the cgroup v1 hierarchies under /sys/fs/cgroup from dockerd.)
#   Each engine also gets its own UTS namespace, so /info "Name" is
#   tango-e2 / tango-e3, like distinct hosts.
#
# * A containerd per engine, started here and passed with --containerd.
#   dockerd only starts its own ("managed") containerd when no socket exists
#   at /run/containerd/containerd.sock; if one exists it silently uses it. On
#   this test machine none exists (the main engine runs a managed containerd
#   under /var/run/docker/containerd), but on a Debian machine with systemd the
#   docker.io package's containerd.service creates it, and every engine would
#   share that containerd and its "moby" namespace. Starting one explicitly,
#   with root/state/sockets under the engine's own directories, is the same on
#   both kinds of machine. `up` checks with ps that no engine runs a managed
#   containerd. The runc state of the containers is under each engine's
#   exec-root (dockerd passes runtime-runc there).
#
# * Daemon id: dockerd 20.10 derives /info "ID" from /etc/docker/key.json,
#   shared by all engines on the machine; "deprecated-key-path" puts the key
#   in the engine's data-root (Docker >= 23 keeps engine-id in the data-root
#   itself). `up` checks the three ids differ. That setting has no flag, so
#   it is in the engine's own --config-file, which also keeps
#   /etc/docker/daemon.json, meant for the main engine, from applying.
#   --cgroup-parent=/tango-e2 (cgroupfs driver, set explicitly) keeps each
#   engine's containers apart in the cgroup tree and lets kill9 find exactly
#   its containers' processes.
#
# * socat for e2's TLS port: `socat TCP-LISTEN:<port>,bind=127.0.0.1,fork
#   EXEC:"nsenter --net=/run/netns/tango-e2 socat STDIO TCP:127.0.0.1:2376"`.
#   The listening socket is in the host's namespace, each accepted connection
#   is copied byte for byte to dockerd's listener inside the engine's
#   namespace, so TLS (and the client-certificate check) is end to end
#   between the client and dockerd; socat never sees a key. One long-running
#   process, no extra socket file; the nsenter per connection costs a few ms.
#
# * sshd for e3: a real OpenSSH server in the host's namespace (that is where
#   e3's socket path is reachable: same filesystem) with its own config, host
#   key and authorized key, on 127.0.0.1 only. It sets DOCKER_HOST to e3's
#   socket for sessions, so even `ssh ... docker ...` reaches e3, never the
#   main engine.
#
# * kill9 simulates a dead host, not just a crashed daemon: kill -9 at once of
#   the engine's dockerd, its containerd, its containerd-shims and every
#   process in its containers (found through its cgroup parent), and, unless
#   TANGO_KILL9_ENDPOINT=0, its listener (e2: the socat bridge and its
#   per-connection children; e3: sshd and its sessions). Killing dockerd alone
#   would leave the containers running (the shims keep them) and the port
#   answering: jobs would quietly finish on a "dead" host. With everything
#   killed, running jobs die with it, new connections are refused and open
#   ones are closed, as when a machine goes away. (A silent drop, as with a
#   pulled cable, would need packet filtering; this script does not touch
#   iptables.) With TANGO_KILL9_ENDPOINT=0 only the engine dies: e2's port
#   still accepts and then closes each connection, e3's sshd still logs in
#   but refuses to forward to the dead socket. `restart` brings the same
#   engine back on the same data-root: the dead containers are there, stopped.
#
# Logs: <statedir>/e2.log, e3.log (dockerd), e2-containerd.log,
# e3-containerd.log, e2-forward.log (socat), sshd.log. Runtime state (exec-roots,
# sockets, pid files) is under /run/tango-test-engines, data-roots under
# /var/lib/tango-test-engines/<name>.
set -euo pipefail

PROG=test-engines
RUN=/run/tango-test-engines           # exec-roots, sockets, pid files (short paths for unix sockets)
LIB=/var/lib/tango-test-engines       # data-roots, kept between runs
MAIN_SOCK=${TANGO_MAIN_DOCKER_SOCK:-/var/run/docker.sock}
IMAGES=${TANGO_ENGINE_IMAGES:-tango-test-minimal}
TIMEOUT=${TANGO_ENGINE_TIMEOUT:-60}
KILL9_ENDPOINT=${TANGO_KILL9_ENDPOINT:-1}
E2_INNER_PORT=2376                    # dockerd's TLS listener inside e2's namespace
ENGINES=(e2 e3)

die() { echo "$PROG: error: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- processes

# is_running PID: alive and not a zombie.
is_running() {
  local s
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
  s=${s##*) }
  [[ ${s:0:1} != Z ]]
}

# cmdline_of PID: the command line, arguments separated by spaces.
cmdline_of() {
  local -a argv=()
  { mapfile -d '' -t argv < "/proc/$1/cmdline"; } 2>/dev/null || return 1
  echo "${argv[*]-}"
}

# pid_from FILE NEEDLE: the pid in FILE if that process runs and its command
# line contains NEEDLE (so a reused pid is never taken for ours).
pid_from() {
  local pid cmd
  [[ -r $1 ]] || return 1
  pid=
  { read -r pid < "$1"; } 2>/dev/null || [[ -n $pid ]] || return 1   # dockerd writes no newline
  is_running "$pid" || return 1
  cmd=$(cmdline_of "$pid") || return 1
  [[ $cmd == *"$2"* ]] || return 1
  echo "$pid"
}

# spawn LOG CMD...: CMD detached (own session, stdin /dev/null, output appended
# to LOG, no inherited descriptors such as the lock's); prints its pid. setsid
# does not fork here (the subshell is no process group leader), so the pid is
# the daemon's.
spawn() {
  local logf=$1; shift
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-"; fi
    done
    exec setsid "$@" < /dev/null >> "$logf" 2>&1
  ) &
  echo "$!"
}

# descendants PID...: every process below the given ones.
descendants() {
  local -A kids=()
  local d s p rest
  for d in /proc/[0-9]*; do
    { read -r s < "$d/stat"; } 2>/dev/null || continue
    rest=${s##*) }   # "S PPID ..."
    rest=${rest#* }
    p=${rest%% *}
    kids[$p]+=" ${d#/proc/}"
  done
  local -a todo=("$@")
  while ((${#todo[@]})); do
    p=${todo[0]}; todo=("${todo[@]:1}")
    for d in ${kids[$p]-}; do
      echo "$d"
      todo+=("$d")
    done
  done
}

# stop_pid PID WHAT [SECONDS]: SIGTERM, then SIGKILL after SECONDS.
stop_pid() {
  local pid=$1 what=$2 t=${3:-10} deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + t))
  while is_running "$pid"; do
    if ((SECONDS >= deadline)); then
      log "$what ($pid) still running after ${t}s: kill -9"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10)); t=0
      while is_running "$pid"; do
        ((SECONDS < deadline)) || die "$what ($pid) survives kill -9"
        sleep 0.1
      done
      return 0
    fi
    sleep 0.1
  done
}

port_open() { timeout 2 bash -c ": < /dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# wait_for WHAT PID LOG CMD...: until CMD succeeds; fails at once if PID dies.
wait_for() {
  local what=$1 pid=$2 logf=$3 deadline=$((SECONDS + TIMEOUT))
  shift 3
  until "$@" > /dev/null 2>&1; do
    if [[ -n $pid ]] && ! is_running "$pid"; then
      die "$what: process $pid exited; last lines of $logf:
$(tail -n 15 "$logf" 2>/dev/null)"
    fi
    ((SECONDS < deadline)) || die "$what: not ready after ${TIMEOUT}s; see $logf"
    sleep 0.1
  done
}

# ---------------------------------------------------------------- settings

check_root() { ((EUID == 0)) || die "must run as root (it starts dockerd, containerd, sshd, network namespaces)"; }

check_tools() {
  local t missing=()
  for t in dockerd containerd containerd-shim-runc-v2 runc curl socat nsenter unshare setsid \
           ip openssl ssh ssh-keygen flock timeout; do
    command -v "$t" > /dev/null || missing+=("$t")
  done
  [[ -x /usr/sbin/sshd ]] || missing+=("/usr/sbin/sshd (Debian package openssh-server)")
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]} (scripts/install-deps.sh installs docker.io and socat)"
}

lock() {
  mkdir -p "$RUN"
  exec 9>> "$RUN/lock"
  flock -w 600 9 || die "another $PROG holds $RUN/lock"
}

state_paths() { STATE=$1; TLS=$STATE/tls; TLS_SERVER=$STATE/tls-server; SSHD=$STATE/ssh; }

# set_state DIR: STATE, absolute, created, only characters safe unquoted.
set_state() {
  [[ -n ${1-} ]] || usage
  mkdir -p "$1"
  state_paths "$(realpath "$1")"
  [[ $STATE =~ ^/[A-Za-z0-9._/+@-]+$ ]] \
    || die "statedir '$STATE': only [A-Za-z0-9._/+@-] allowed (engines.env is unquoted)"
}

# The session: which statedir and ports the engines run with ($RUN/session).
load_session() {
  [[ -r $RUN/session ]] || return 1
  local k v
  while IFS='=' read -r k v; do
    case $k in
      STATE) state_paths "$v" ;;
      E2_PORT) E2_PORT=$v ;;
      SSH_PORT) SSH_PORT=$v ;;
    esac
  done < "$RUN/session"
}

engine_paths() {
  local e=$1
  NSNAME=tango-$e
  NS=/run/netns/$NSNAME
  ER=$RUN/$e
  EXECROOT=$ER/exec
  DROOT=$LIB/$e
  SOCK=$ER/docker.sock
  CTD_DIR=$ER/containerd
  CTD_SOCK=$CTD_DIR/containerd.sock
  CTD_CONF=$ER/containerd.toml
  CTD_PIDF=$ER/containerd.pid
  D_PIDF=$ER/dockerd.pid
  CGPARENT=/tango-$e
}

check_engine_name() { [[ ${1-} == e2 || ${1-} == e3 ]] || die "engine must be e2 or e3, not '${1-}'"; }

# ---------------------------------------------------------------- engines

engine_ping() { curl -sf --max-time 3 --unix-socket "$1" http://docker/_ping > /dev/null 2>&1; }

containerd_pid() { engine_paths "$1"; pid_from "$CTD_PIDF" "$CTD_CONF"; }
dockerd_pid() { engine_paths "$1"; pid_from "$D_PIDF" "--exec-root $EXECROOT"; }

ensure_netns() {
  engine_paths "$1"
  if [[ -e $NS ]] && ip -n "$NSNAME" link set lo up 2> /dev/null; then return 0; fi
  ip netns del "$NSNAME" 2> /dev/null || rm -f "$NS"
  ip netns add "$NSNAME" || die "ip netns add $NSNAME failed"
  ip -n "$NSNAME" link set lo up
}

write_containerd_config() {
  engine_paths "$1"
  mkdir -p "$CTD_DIR" "$DROOT/containerd"
  cat > "$CTD_CONF.tmp" << EOF
# containerd of the test engine $1 (tests/docker/engines/test-engines.sh)
version = 2
root = "$DROOT/containerd/daemon"
state = "$CTD_DIR/daemon"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
oom_score = 0

[grpc]
  address = "$CTD_SOCK"
[ttrpc]
  address = "$CTD_SOCK.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.runtime.v1.linux"]
    runtime_root = "$CTD_DIR/runc-v1"
  [plugins."io.containerd.internal.v1.opt"]
    path = "$DROOT/containerd/opt"
EOF
  mv "$CTD_CONF.tmp" "$CTD_CONF"
}

dockerd_args() {
  local e=$1 major
  engine_paths "$e"
  DARGS=(
    --config-file "$ER/daemon.json"
    --data-root "$DROOT"
    --exec-root "$EXECROOT"
    --pidfile "$D_PIDF"
    --containerd "$CTD_SOCK"
    -H "unix://$SOCK"
    --iptables=false --ip-masq=false --ip-forward=false --bridge=none
    --userland-proxy=false
    --cgroup-parent "$CGPARENT"
    --exec-opt native.cgroupdriver=cgroupfs
  )
  # The key behind /info's ID (Docker < 23): a daemon.json key, no flag.
  major=$(dockerd --version | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
  if [[ -n $major ]] && ((major < 23)); then
    echo "{\"deprecated-key-path\": \"$DROOT/key.json\"}" > "$ER/daemon.json"
  else
    echo '{}' > "$ER/daemon.json"
  fi
  if [[ $e == e2 ]]; then
    DARGS+=(-H "tcp://127.0.0.1:$E2_INNER_PORT" --tlsverify
            --tlscacert "$TLS/ca.pem" --tlscert "$TLS_SERVER/server-cert.pem" --tlskey "$TLS_SERVER/server-key.pem")
  fi
}

# start_containerd E: unless running; leaves the pid in CTD_SPAWNED[E].
declare -A CTD_SPAWNED=() D_SPAWNED=()
start_containerd() {
  local e=$1 pid
  engine_paths "$e"
  if pid=$(containerd_pid "$e"); then CTD_SPAWNED[$e]=$pid; return 0; fi
  ensure_netns "$e"
  write_containerd_config "$e"
  pid=$(spawn "$STATE/$e-containerd.log" nsenter --net="$NS" containerd --config "$CTD_CONF")
  echo "$pid" > "$CTD_PIDF"
  CTD_SPAWNED[$e]=$pid
  log "$e: containerd started (pid $pid)"
}

wait_containerd() {
  engine_paths "$1"
  wait_for "$1 containerd" "${CTD_SPAWNED[$1]}" "$STATE/$1-containerd.log" test -S "$CTD_SOCK"
}

start_dockerd() {
  local e=$1 pid
  engine_paths "$e"
  if pid=$(dockerd_pid "$e"); then D_SPAWNED[$e]=$pid; return 0; fi
  # A pid file naming a dead dockerd: dockerd refuses to start while that pid
  # exists in /proc, and a killed dockerd can stay a zombie there when init
  # does not reap (it does not on some VMs).
  rm -f "$D_PIDF"
  ensure_netns "$e"
  mkdir -p "$EXECROOT" "$DROOT"
  dockerd_args "$e"
  # The UTS namespace only gives the engine its own host name.
  pid=$(spawn "$STATE/$e.log" nsenter --net="$NS" unshare --uts -- \
        sh -c 'echo "$0" > /proc/sys/kernel/hostname && exec "$@"' "tango-$e" dockerd "${DARGS[@]}")
  D_SPAWNED[$e]=$pid
  log "$e: dockerd started (pid $pid)"
}

wait_dockerd() {
  local e=$1 pid c
  engine_paths "$e"
  wait_for "$e dockerd" "${D_SPAWNED[$e]}" "$STATE/$e.log" engine_ping "$SOCK"
  pid=$(dockerd_pid "$e") || die "$e: dockerd answers on $SOCK but $D_PIDF does not name it"
  for c in $(descendants "$pid"); do
    [[ $(cat "/proc/$c/comm" 2> /dev/null) != containerd ]] \
      || die "$e: dockerd ($pid) runs a containerd of its own ($c); --containerd was not honoured"
  done
}

# Every process of the engine's containers: its cgroup parent, any hierarchy.
container_pids() {
  engine_paths "$1"
  local d dirs=()
  for d in /sys/fs/cgroup/*/"${CGPARENT#/}" "/sys/fs/cgroup/${CGPARENT#/}"; do
    [[ -d $d ]] && dirs+=("$d")
  done
  ((${#dirs[@]})) || return 0
  find "${dirs[@]}" -name cgroup.procs -exec cat {} + 2> /dev/null | sort -un
}

shim_pids() {
  engine_paths "$1"
  local f pid cmd
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    cmd=$(cmdline_of "$pid") || continue
    [[ $cmd == *containerd-shim* && "$cmd " == *" -address $CTD_SOCK "* ]] && echo "$pid"
  done
  return 0
}

# Kill -9 the engine's containers, shims, containerd and dockerd (all at once).
kill_engine_processes() {
  local e=$1 pids=() p deadline
  p=$(dockerd_pid "$e") && pids+=("$p")
  p=$(containerd_pid "$e") && pids+=("$p")
  mapfile -t -O "${#pids[@]}" pids < <(shim_pids "$e"; container_pids "$e")
  ((${#pids[@]})) && kill -KILL "${pids[@]}" 2> /dev/null || true
  deadline=$((SECONDS + 10))
  while :; do
    mapfile -t pids < <(container_pids "$e"; shim_pids "$e")
    ((${#pids[@]})) || break
    ((SECONDS < deadline)) || die "$e: processes survive kill -9: ${pids[*]}"
    kill -KILL "${pids[@]}" 2> /dev/null || true
    sleep 0.1
  done
}

# Graceful stop: dockerd stops its containers, then containerd; leftovers -9.
stop_engine() {
  local e=$1 p
  if p=$(dockerd_pid "$e"); then stop_pid "$p" "$e dockerd" 30; fi
  if p=$(containerd_pid "$e"); then stop_pid "$p" "$e containerd" 10; fi
  kill_engine_processes "$e"
}

remove_containers() {
  engine_paths "$1"
  local ids id
  ids=$(curl -sf --max-time 30 --unix-socket "$SOCK" 'http://docker/containers/json?all=1' \
        | grep -o '"Id":"[0-9a-f]\{64\}"' | cut -d'"' -f4) || true
  for id in $ids; do
    curl -sf --max-time 60 -X DELETE --unix-socket "$SOCK" "http://docker/containers/$id?force=1&v=1" > /dev/null \
      || log "$1: could not remove container $id"
  done
  [[ -z $ids ]] || log "$1: removed $(wc -w <<< "$ids") container(s)"
}

image_id() {
  curl -sf --max-time 30 --unix-socket "$1" "http://docker/images/$2/json" \
    | sed -n 's/.*"Id":"\(sha256:[0-9a-f]\{64\}\)".*/\1/p'
}

declare -A MAIN_ID=()
check_main_engine() {
  local img id
  engine_ping "$MAIN_SOCK" || die "the main engine does not answer on $MAIN_SOCK (start dockerd; ./dev test does)"
  for img in $IMAGES; do
    id=$(image_id "$MAIN_SOCK" "$img") || true
    [[ -n $id ]] || die "image $img is not in the main engine ($MAIN_SOCK): build it with ./dev test (apps/tango-image build $img ...)"
    MAIN_ID[$img]=$id
  done
}

# Stream each image from the main engine unless the engine holds the same id.
ensure_images() {
  engine_paths "$1"
  local img id out t
  for img in $IMAGES; do
    id=$(image_id "$SOCK" "$img") || true
    [[ $id != "${MAIN_ID[$img]}" ]] || continue
    t=$(now)
    if [[ -n ${TANGO_IMAGE-} ]]; then
      # The project's own image tool, as an operator would load an engine.
      out=$("$TANGO_IMAGE" push "$img" --to "unix://$SOCK" --socket "$MAIN_SOCK" 2>&1) \
        || die "$1: tango-image push $img failed: $out"
    else
      out=$(curl -sS --fail --unix-socket "$MAIN_SOCK" "http://docker/images/$img/get" \
            | curl -sS --fail --unix-socket "$SOCK" -X POST -H 'Content-Type: application/x-tar' -H 'Expect:' \
                   -T - 'http://docker/images/load?quiet=1') \
        || die "$1: loading $img from the main engine failed: $out"
      [[ $out != *'"error'* ]] || die "$1: loading $img failed: $out"
    fi
    id=$(image_id "$SOCK" "$img") || true
    [[ $id == "${MAIN_ID[$img]}" ]] || die "$1: after loading, $img is '$id', the main engine has ${MAIN_ID[$img]}"
    log "$1: loaded $img (${id:7:12}) in $(since "$t")s"
  done
}

info_id() {
  curl -sf --max-time 10 --unix-socket "$1" http://docker/info | sed -n 's/^{"ID":"\([^"]*\)".*/\1/p'
}

# ---------------------------------------------------------------- endpoints

tls_ok() {
  local f
  for f in "$TLS/ca.pem" "$TLS/cert.pem" "$TLS/key.pem" "$TLS_SERVER/server-cert.pem" "$TLS_SERVER/server-key.pem"; do
    [[ -s $f ]] || return 1
  done
  openssl verify -purpose sslserver -CAfile "$TLS/ca.pem" "$TLS_SERVER/server-cert.pem" > /dev/null 2>&1 &&
  openssl verify -purpose sslclient -CAfile "$TLS/ca.pem" "$TLS/cert.pem" > /dev/null 2>&1 &&
  openssl x509 -checkend 604800 -noout -in "$TLS_SERVER/server-cert.pem" > /dev/null &&
  openssl x509 -checkend 604800 -noout -in "$TLS/cert.pem" > /dev/null
}

# make_tls: a CA, a server certificate for IP 127.0.0.1, a client certificate
# (clientAuth); EC P-256, PKCS#8 keys. TLS/ holds what a client needs under the
# names Docker's DOCKER_CERT_PATH expects (ca.pem cert.pem key.pem).
make_tls() {
  local tmp
  tmp=$(mktemp -d "$STATE/.tls.XXXXXX")
  (
    set -e
    cd "$tmp"
    umask 077
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2> /dev/null; }
    sign() {  # sign CSR EXTFILE OUT
      openssl x509 -req -in "$1" -CA ca.pem -CAkey ca-key.pem -set_serial "0x$(openssl rand -hex 12)" \
        -days 3650 -sha256 -extfile "$2" -out "$3" 2> /dev/null
    }
    key ca-key.pem
    openssl req -x509 -new -key ca-key.pem -sha256 -days 3650 -subj "/CN=tango-test-engines CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
    key server-key.pem
    openssl req -new -key server-key.pem -subj "/CN=127.0.0.1" -out server.csr
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1" > server.ext
    sign server.csr server.ext server-cert.pem
    key key.pem
    openssl req -new -key key.pem -subj "/CN=tango-test-client" -out client.csr
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=clientAuth" > client.ext
    sign client.csr client.ext cert.pem
    mkdir tls tls-server
    mv ca.pem cert.pem key.pem tls/
    cp tls/ca.pem tls-server/
    mv ca-key.pem server-key.pem server-cert.pem tls-server/
    chmod 644 tls/ca.pem tls/cert.pem tls-server/ca.pem tls-server/server-cert.pem
  ) || { rm -rf "$tmp"; die "making TLS certificates with openssl failed"; }
  rm -rf "$TLS" "$TLS_SERVER"
  mv "$tmp/tls" "$TLS"; mv "$tmp/tls-server" "$TLS_SERVER"
  rm -rf "$tmp"
  log "made TLS certificates in $TLS (server and CA key in $TLS_SERVER)"
}

tls_ping() {
  curl -sf --max-time 5 --cacert "$TLS/ca.pem" --cert "$TLS/cert.pem" --key "$TLS/key.pem" \
    "https://127.0.0.1:$E2_PORT/_ping" > /dev/null 2>&1
}

forward_pid() { pid_from "$RUN/e2/forward.pid" "TCP-LISTEN:$E2_PORT,bind=127.0.0.1"; }

start_forward() {
  local pid
  engine_paths e2
  if pid=$(forward_pid); then FWD_SPAWNED=$pid; return 0; fi
  ! port_open "$E2_PORT" || die "127.0.0.1:$E2_PORT is taken by another program (set TANGO_E2_PORT)"
  ensure_netns e2
  pid=$(spawn "$STATE/e2-forward.log" socat "TCP-LISTEN:$E2_PORT,bind=127.0.0.1,reuseaddr,fork" \
        "EXEC:nsenter --net=$NS socat STDIO TCP\\:127.0.0.1\\:$E2_INNER_PORT")
  echo "$pid" > "$RUN/e2/forward.pid"
  FWD_SPAWNED=$pid
  log "e2: TLS bridge 127.0.0.1:$E2_PORT -> netns $NSNAME 127.0.0.1:$E2_INNER_PORT (socat pid $pid)"
}

make_ssh() {
  mkdir -p "$SSHD"; chmod 700 "$SSHD"
  if ! [[ -s $SSHD/host_ed25519 && -s $SSHD/host_ed25519.pub && -s $SSHD/id_ed25519 && -s $SSHD/id_ed25519.pub ]]; then
    rm -f "$SSHD"/host_ed25519* "$SSHD"/id_ed25519*
    ssh-keygen -q -t ed25519 -N '' -C "tango-test-engines host" -f "$SSHD/host_ed25519"
    ssh-keygen -q -t ed25519 -N '' -C "tango-test-engines client" -f "$SSHD/id_ed25519"
    log "made SSH host and client keys in $SSHD"
  fi
  cp "$SSHD/id_ed25519.pub" "$SSHD/authorized_keys"
  local hk
  read -r -a hk < "$SSHD/host_ed25519.pub"
  echo "[127.0.0.1]:$SSH_PORT ${hk[0]} ${hk[1]}" > "$SSHD/known_hosts"
  # Without PAM, sshd refuses an account whose password is locked ("!");
  # PAM's account check does not (but its session modules may not work in
  # a container), so PAM only when needed.
  local usepam=no
  [[ $(getent shadow root | cut -d: -f2) != '!'* ]] || usepam=yes
  engine_paths e3
  cat > "$SSHD/sshd_config.new" << EOF
# sshd for the test engine e3 (tests/docker/engines/test-engines.sh)
Port $SSH_PORT
ListenAddress 127.0.0.1
AddressFamily inet
HostKey $SSHD/host_ed25519
PidFile none
AuthorizedKeysFile $SSHD/authorized_keys
AllowUsers root
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM $usepam
# the keys live in a test directory, perhaps under /tmp
StrictModes no
AllowStreamLocalForwarding local
# sshd grants -L to a unix socket only where it grants -L to TCP ports
AllowTcpForwarding local
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
PermitUserEnvironment no
SetEnv DOCKER_HOST=unix://$SOCK
MaxStartups 64
MaxSessions 64
PrintMotd no
LogLevel INFO
EOF
  # sshd hands its config to each connection's process: a changed file needs
  # a new sshd.
  if ! cmp -s "$SSHD/sshd_config.new" "$SSHD/sshd_config" && sshd_pid > /dev/null; then
    log "e3: sshd_config changed: restarting sshd"
    stop_endpoint e3
  fi
  mv "$SSHD/sshd_config.new" "$SSHD/sshd_config"
}

sshd_pid() { pid_from "$RUN/sshd.pid" "$SSHD/sshd_config"; }

ssh_check() {
  engine_paths e3
  ssh -F /dev/null -i "$SSHD/id_ed25519" -p "$SSH_PORT" -o UserKnownHostsFile="$SSHD/known_hosts" \
    -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes -o ConnectTimeout=5 \
    root@127.0.0.1 test -S "$SOCK"
}

start_sshd() {
  local pid
  if pid=$(sshd_pid); then SSHD_SPAWNED=$pid; return 0; fi
  ! port_open "$SSH_PORT" || die "127.0.0.1:$SSH_PORT is taken by another program (set TANGO_SSH_PORT)"
  mkdir -p /run/sshd; chmod 755 /run/sshd   # sshd's privilege separation directory
  local out
  out=$(/usr/sbin/sshd -t -f "$SSHD/sshd_config" 2>&1) || die "sshd rejects $SSHD/sshd_config: $out"
  pid=$(spawn "$STATE/sshd.log" /usr/sbin/sshd -D -e -f "$SSHD/sshd_config")
  echo "$pid" > "$RUN/sshd.pid"
  SSHD_SPAWNED=$pid
  log "e3: sshd on 127.0.0.1:$SSH_PORT (pid $pid)"
}

# endpoint_tree E: the engine's listener and its per-connection children.
endpoint_tree() {
  local p
  if [[ $1 == e2 ]]; then p=$(forward_pid) || return 0; else p=$(sshd_pid) || return 0; fi
  echo "$p"
  descendants "$p"
}

stop_endpoint() {
  local pids p
  mapfile -t pids < <(endpoint_tree "$1")
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2> /dev/null || true
  stop_pid "${pids[0]}" "$1 endpoint" 5
  for p in "${pids[@]:1}"; do kill -KILL "$p" 2> /dev/null || true; done
}

start_endpoint() {
  if [[ $1 == e2 ]]; then
    start_forward
    wait_for "e2 over TLS (127.0.0.1:$E2_PORT)" "$FWD_SPAWNED" "$STATE/e2-forward.log" tls_ping
  else
    start_sshd
    wait_for "sshd (127.0.0.1:$SSH_PORT)" "$SSHD_SPAWNED" "$STATE/sshd.log" port_open "$SSH_PORT"
    wait_for "e3 over SSH" "$SSHD_SPAWNED" "$STATE/sshd.log" ssh_check
  fi
}

write_env() {
  local f=$STATE/engines.env
  cat > "$f.tmp" << EOF
E2_HOST=127.0.0.1
E2_PORT=$E2_PORT
E2_CA=$TLS/ca.pem
E2_CERT=$TLS/cert.pem
E2_KEY=$TLS/key.pem
E2_CERT_PATH=$TLS
E2_SOCKET=$RUN/e2/docker.sock
E3_SOCKET=$RUN/e3/docker.sock
SSH_HOST=127.0.0.1
SSH_USER=root
SSH_PORT=$SSH_PORT
SSH_KEY=$SSHD/id_ed25519
SSH_KNOWN_HOSTS=$SSHD/known_hosts
IMAGES=${IMAGES// /,}
EOF
  mv "$f.tmp" "$f"
}

anything_running() {
  local e
  for e in "${ENGINES[@]}"; do
    dockerd_pid "$e" > /dev/null && return 0
    containerd_pid "$e" > /dev/null && return 0
  done
  [[ -n $(endpoint_tree e2)$(endpoint_tree e3) ]]
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local t0 e want_state=$1
  t0=$(now)
  check_root; check_tools
  set_state "$want_state"; want_state=$STATE
  lock
  local want_e2=${TANGO_E2_PORT:-23760} want_ssh=${TANGO_SSH_PORT:-23722}
  if load_session; then
    if anything_running; then
      [[ $STATE == "$want_state" ]] \
        || die "the engines are up with statedir $STATE; run: $0 down $STATE"
      [[ $E2_PORT == "$want_e2" && $SSH_PORT == "$want_ssh" ]] \
        || die "the engines are up with ports $E2_PORT/$SSH_PORT, not $want_e2/$want_ssh; run down first"
    fi
  fi
  set_state "$want_state"; E2_PORT=$want_e2; SSH_PORT=$want_ssh
  [[ $E2_PORT =~ ^[0-9]+$ && $SSH_PORT =~ ^[0-9]+$ ]] || die "ports must be numbers"
  printf 'STATE=%s\nE2_PORT=%s\nSSH_PORT=%s\n' "$STATE" "$E2_PORT" "$SSH_PORT" > "$RUN/session"

  check_main_engine
  # Ports first: better to fail before starting anything.
  if ! forward_pid > /dev/null && port_open "$E2_PORT"; then
    die "127.0.0.1:$E2_PORT is taken by another program (set TANGO_E2_PORT)"
  fi
  if ! sshd_pid > /dev/null && port_open "$SSH_PORT"; then
    die "127.0.0.1:$SSH_PORT is taken by another program (set TANGO_SSH_PORT)"
  fi
  if ! tls_ok; then
    make_tls
    if dockerd_pid e2 > /dev/null; then
      log "e2: new certificates: restarting its dockerd"
      stop_engine e2
    fi
  fi
  make_ssh

  for e in "${ENGINES[@]}"; do start_containerd "$e"; done
  for e in "${ENGINES[@]}"; do wait_containerd "$e"; done
  for e in "${ENGINES[@]}"; do start_dockerd "$e"; done
  for e in "${ENGINES[@]}"; do wait_dockerd "$e"; done
  log "engines answer /_ping ($(since "$t0")s)"
  for e in "${ENGINES[@]}"; do start_endpoint "$e"; done
  # Both engines load at once (each streams its own export of the image).
  local loaders=() p
  for e in "${ENGINES[@]}"; do ensure_images "$e" & loaders+=($!); done
  for p in "${loaders[@]}"; do wait "$p" || die "loading the test images failed (see above)"; done

  local main_id e2_id e3_id
  main_id=$(info_id "$MAIN_SOCK"); e2_id=$(info_id "$RUN/e2/docker.sock"); e3_id=$(info_id "$RUN/e3/docker.sock")
  [[ -n $e2_id && -n $e3_id && $e2_id != "$main_id" && $e3_id != "$main_id" && $e2_id != "$e3_id" ]] \
    || die "daemon ids are not distinct: main=$main_id e2=$e2_id e3=$e3_id"

  write_env
  log "up in $(since "$t0")s; settings in $STATE/engines.env"
}

cmd_down() {
  local e p
  check_root
  set_state "$1"
  local want=$STATE
  lock
  if ! load_session; then log "nothing is up"; return 0; fi
  [[ $STATE == "$want" ]] || die "the engines are up with statedir $STATE, not $want"
  for e in "${ENGINES[@]}"; do
    engine_paths "$e"
    if ! engine_ping "$SOCK" && [[ -d $ER ]]; then
      # Its containers are still recorded in the data-root: start the engine
      # once more to remove them.
      log "$e does not answer: starting it to remove its containers"
      if ! ( start_containerd "$e" && wait_containerd "$e" && start_dockerd "$e" && wait_dockerd "$e" ); then
        log "$e: could not start it; its containers stay recorded in $DROOT"
      fi
    fi
    if engine_ping "$SOCK"; then remove_containers "$e"; fi
  done
  for e in "${ENGINES[@]}"; do
    engine_paths "$e"
    stop_endpoint "$e"
    stop_engine "$e"
    if [[ -d /sys/fs/cgroup ]]; then
      find /sys/fs/cgroup/*/"${CGPARENT#/}" "/sys/fs/cgroup/${CGPARENT#/}" -depth -type d \
        -exec rmdir {} \; 2> /dev/null || true
    fi
    # Mounts left below the engine's directories (none after a clean stop;
    # dockerd bind-mounts its data-root onto itself and undoes it on exit).
    awk -v a="$ER/" -v b="$DROOT/" -v d="$DROOT" '$5 == d || index($5, a) == 1 || index($5, b) == 1 { print $5 }' \
      /proc/self/mountinfo \
      | sort -r | while read -r p; do umount -l "$p" 2> /dev/null || true; done
    ip netns del "tango-$e" 2> /dev/null || true
    if awk -v a="$ER/" 'index($5, a) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
      log "$e: mounts remain below $ER; leaving it"
    else
      rm -rf --one-file-system "$ER"
    fi
    log "$e: down (data-root $DROOT kept)"
  done
  rm -f "$RUN/sshd.pid" "$RUN/session" "$STATE/engines.env"
}

cmd_kill9() {
  local e=$1 pids
  check_root; check_engine_name "$e"
  lock
  load_session || die "the engines are not up"
  pids=$( (dockerd_pid "$e" || true; containerd_pid "$e" || true) | tr '\n' ' ')
  [[ -n $pids ]] || log "$e: dockerd and containerd were not running"
  # The endpoint first, so no new connection is accepted meanwhile.
  if [[ $KILL9_ENDPOINT != 0 ]]; then
    local ep
    mapfile -t ep < <(endpoint_tree "$e")
    ((${#ep[@]} == 0)) || kill -KILL "${ep[@]}" 2> /dev/null || true
  fi
  kill_engine_processes "$e"
  local what="dockerd and containerd (${pids% }), shims, container processes"
  if [[ $KILL9_ENDPOINT != 0 ]]; then
    if [[ $e == e2 ]]; then what+=", TLS bridge"; else what+=", sshd"; fi
  fi
  log "$e: killed -9: $what"
}

# The engine hangs rather than dies: its dockerd is stopped (SIGSTOP), so
# connections stay open and nothing answers, as with a machine that freezes
# or a network that drops packets. `thaw` lets it go on.
cmd_freeze() {
  local e=$1 sig=$2 pid
  check_root; check_engine_name "$e"
  lock
  load_session || die "the engines are not up"
  pid=$(dockerd_pid "$e") || die "$e: dockerd is not running"
  kill "-$sig" "$pid"
  log "$e: dockerd ($pid) sent SIG$sig"
}

cmd_restart() {
  local e=$1 t0
  t0=$(now)
  check_root; check_tools; check_engine_name "$e"
  lock
  load_session || die "the engines are not up (run: $0 up <statedir>)"
  check_main_engine
  if dockerd_pid "$e" > /dev/null || containerd_pid "$e" > /dev/null; then
    log "$e: stopping it first"
    stop_engine "$e"
  fi
  start_containerd "$e"; wait_containerd "$e"
  start_dockerd "$e"; wait_dockerd "$e"
  start_endpoint "$e"
  ensure_images "$e"
  log "$e: restarted in $(since "$t0")s"
}

# Proportional set size (kB) of the given processes: their share of memory.
pss_kb() {
  local p sum=0 v
  for p in "$@"; do
    v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2> /dev/null) || v=0
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}
rss_kb() {
  local p sum=0 v
  for p in "$@"; do
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2> /dev/null) || v=0
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

cmd_status() {
  local e d c shims ctrs all
  if ! load_session; then echo "not up"; return 0; fi
  echo "statedir $STATE"
  for e in "${ENGINES[@]}"; do
    engine_paths "$e"
    d=$(dockerd_pid "$e") || d=
    c=$(containerd_pid "$e") || c=
    shims=$(shim_pids "$e" | tr '\n' ' ')
    ctrs=$(container_pids "$e" | wc -l)
    all="$d $c $shims"
    printf '%s: ping=%s dockerd=%s containerd=%s shims=%s container-processes=%s\n' "$e" \
      "$(engine_ping "$SOCK" && echo ok || echo no)" "${d:--}" "${c:--}" "$(wc -w <<< "$shims")" "$ctrs"
    printf '%s: memory dockerd %s kB, containerd %s kB (RSS); engine+shims PSS %s kB\n' "$e" \
      "$([[ -n $d ]] && rss_kb "$d" || echo 0)" "$([[ -n $c ]] && rss_kb "$c" || echo 0)" "$(pss_kb $all)"
  done
  echo "e2 TLS bridge: $(forward_pid || echo -) ($(tls_ping && echo ok || echo no) on 127.0.0.1:$E2_PORT)"
  echo "e3 sshd: $(sshd_pid || echo -) on 127.0.0.1:$SSH_PORT"
}

case ${1-} in
  up) [[ $# -eq 2 ]] || usage; cmd_up "$2" ;;
  down) [[ $# -eq 2 ]] || usage; cmd_down "$2" ;;
  kill9) [[ $# -eq 2 ]] || usage; cmd_kill9 "$2" ;;
  restart) [[ $# -eq 2 ]] || usage; cmd_restart "$2" ;;
  freeze) [[ $# -eq 2 ]] || usage; cmd_freeze "$2" STOP ;;
  thaw) [[ $# -eq 2 ]] || usage; cmd_freeze "$2" CONT ;;
  status) cmd_status ;;
  *) usage ;;
esac
