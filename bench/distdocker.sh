#!/usr/bin/env bash
# distDocker throughput with one, two and three engines on this machine (see
# docs/benchmarks.md, "Several Docker hosts"): the main engine (unix socket),
# e2 (TLS) and e3 (SSH) from tests/docker/engines/test-engines.sh. For each
# count, N trivial jobs submitted at once to a distDocker service with those
# engines (capacity CAP each, POOL_SIZE 2), against the floor measured in the
# same round: the same N jobs as `docker run --rm --network none IMAGE make`
# on the same engines, CAP at a time on each, each reached the same way (the
# docker CLI with TLS client certificates for e2, over ssh:// with one
# multiplexed connection for e3).
# The engines share this machine's 2 cores, so more engines add slots, not
# CPU. Then bench/placement_sim (100 modelled engines).
# Usage: bench/distdocker.sh   (env: BUILD, N, CAP, ROUNDS)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
"$BUILD/apps/tango-image" build tango-bench-minimal --no-defaults --packages make \
  --autodriver "$BUILD/apps/autodriver" --if-changed
STATE=/var/lib/tango-bench-engines
TANGO_ENGINE_IMAGES=tango-bench-minimal TANGO_IMAGE="$BUILD/apps/tango-image" \
  tests/docker/engines/test-engines.sh up "$STATE" >/dev/null
trap 'tests/docker/engines/test-engines.sh down "$STATE" >/dev/null 2>&1 || true' EXIT
export BUILD STATE N=${N:-100} CAP=${CAP:-2} ROUNDS=${ROUNDS:-1}
python3 - <<'PY'
import atexit, json, os, re, shutil, signal, statistics, subprocess, tempfile, time, urllib.request
from concurrent.futures import ThreadPoolExecutor

BUILD, STATE = os.environ["BUILD"], os.environ["STATE"]
N, CAP, ROUNDS = int(os.environ["N"]), int(os.environ["CAP"]), int(os.environ["ROUNDS"])
IMAGE = "tango-bench-minimal"
env = dict(l.strip().split("=", 1) for l in open(f"{STATE}/engines.env") if "=" in l)
# (DOCKER_HOSTS entry, the docker CLI's flags for the same engine over the
# same transport: the floor is the bare tool doing the same work the same way)
HOME_SSH = tempfile.mkdtemp(prefix="tango-bench-dd-home-")
os.makedirs(f"{HOME_SSH}/.ssh", mode=0o700)
with open(f"{HOME_SSH}/.ssh/config", "w") as f:
    # One multiplexed connection, as the service keeps one master per engine.
    f.write(f"Host 127.0.0.1\n  IdentityFile {env['SSH_KEY']}\n  UserKnownHostsFile {env['SSH_KNOWN_HOSTS']}\n"
            f"  StrictHostKeyChecking yes\n  ControlMaster auto\n  ControlPath {HOME_SSH}/ctl-%p\n  ControlPersist 120\n")
# ssh reads ~/.ssh/config of the passwd entry, not $HOME: the docker CLI gets
# an `ssh` first in its PATH that names this config.
os.makedirs(f"{HOME_SSH}/bin")
with open(f"{HOME_SSH}/bin/ssh", "w") as f:
    f.write(f"#!/bin/sh\nexec /usr/bin/ssh -F {HOME_SSH}/.ssh/config \"$@\"\n")
os.chmod(f"{HOME_SSH}/bin/ssh", 0o755)
atexit.register(lambda: shutil.rmtree(HOME_SSH, ignore_errors=True))
ENGINES = [
    ('"unix:///var/run/docker.sock"', ["-H", "unix:///var/run/docker.sock"]),
    (f'{{ url = "tcp://127.0.0.1:{env["E2_PORT"]}", cert_path = "{env["E2_CERT_PATH"]}" }}',
     ["-H", f"tcp://127.0.0.1:{env['E2_PORT']}", "--tlsverify", "--tlscacert", env["E2_CA"],
      "--tlscert", env["E2_CERT"], "--tlskey", env["E2_KEY"]]),
    (f'{{ url = "ssh://root@127.0.0.1:{env["SSH_PORT"]}{env["E3_SOCKET"]}", key = "{env["SSH_KEY"]}" }}',
     ["-H", f"ssh://root@127.0.0.1:{env['SSH_PORT']}"]),
]
MK = "all:\n\t@echo hi\n"

def http(base, method, path, body=None, headers=None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.headers.get("Content-Type", ""), r.read()

def service(k):
    tmp = tempfile.mkdtemp(prefix="tango-bench-dd-")
    cfg = f"{tmp}/tango.toml"
    hosts = ",\n  ".join(e for e, _ in ENGINES[:k])
    with open(cfg, "w") as f:
        f.write(f'PORT = 0\nHOST = "127.0.0.1"\nDATA_DIR = "{tmp}/data"\nAUTODRIVER = "{os.path.abspath(BUILD)}/apps/autodriver"\n'
                f'VMMS_NAME = "distDocker"\nPREFIX = "benchdd{os.getpid()}"\nPOOL_SIZE = 2\nLOG_LEVEL = "warn"\n'
                f'DOCKER_ENGINE_CAPACITY = {CAP}\nDOCKER_HOSTS = [\n  {hosts}\n]\n')
    log = open(f"{tmp}/tangod.log", "w+")
    proc = subprocess.Popen([f"{BUILD}/apps/tangod", "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
    atexit.register(lambda p=proc: p.poll() is None and (p.terminate(), p.wait(timeout=120)))
    for _ in range(600):
        m = re.search(r"listening on http://[^:]+:(\d+)", open(log.name).read())
        if m: break
        time.sleep(0.05)
    else:
        raise SystemExit(open(log.name).read())
    base = f"http://127.0.0.1:{m.group(1)}"
    http(base, "GET", "/open/test/bench/")
    http(base, "POST", "/upload/test/bench/", MK.encode(), {"Filename": "Makefile"})
    return proc, base, tmp

def throughput(k, rnd):
    proc, base, tmp = service(k)
    names = [f"r{rnd}k{k}j{i}" for i in range(N)]
    t0 = time.time()
    for n in names:
        job = {"image": IMAGE, "files": [{"localFile": "Makefile", "destFile": "Makefile"}],
               "output_file": n, "jobName": n, "timeout": 60}
        _, body = http(base, "POST", "/addJob/test/bench/", json.dumps(job).encode())
        assert json.loads(body)["statusId"] == 0, body
    left = set(names)
    while left:
        for n in list(left):
            ctype, body = http(base, "GET", f"/poll/test/bench/{n}")
            if "application/json" not in ctype:
                assert b"Success" in body, body
                left.discard(n)
        time.sleep(0.05)
    rate = N / (time.time() - t0)
    _, body = http(base, "GET", "/info/test/")
    ran = {h["name"]: (h["jobs_run"], h["max_running"]) for h in json.loads(body)["info"].get("hosts", [])}
    proc.send_signal(signal.SIGTERM); proc.wait(timeout=120)
    shutil.rmtree(tmp, ignore_errors=True)
    return rate, ran

def floor(k):
    flags = [f for _, f in ENGINES[:k]]
    def one(f):
        subprocess.run(["docker", *f, "run", "--rm", "--network", "none", IMAGE, "sh", "-c",
                        "mkdir -p /tmp/j && cd /tmp/j && printf 'all:\\n\\t@echo hi\\n' > Makefile && make"],
                       check=True, capture_output=True,
                       env={**os.environ, "PATH": f"{HOME_SSH}/bin:" + os.environ["PATH"]})
    one(flags[-1])  # the SSH connection up before the clock starts, as the service's is
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=CAP * k) as pool:
        list(pool.map(one, [flags[i % k] for i in range(N)]))
    return N / (time.time() - t0)

res = {k: ([], []) for k in (1, 2, 3)}
for rnd in range(ROUNDS):
    for k in (1, 2, 3):
        f = floor(k)
        t, ran = throughput(k, rnd)
        res[k][0].append(t); res[k][1].append(f)
        print(f"round {rnd}: {k} engine(s): tango {t:.2f} jobs/s, floor {f:.2f} jobs/s, ratio {t/f:.2f}; per engine (jobs, most at once): {ran}", flush=True)
for k in (1, 2, 3):
    t, f = statistics.median(res[k][0]), statistics.median(res[k][1])
    print(f"median over {ROUNDS}: {k} engine(s), capacity {CAP} each, {N} jobs at once: tango {t:.2f} jobs/s, floor {f:.2f} jobs/s, ratio {t/f:.2f}")
PY
echo "placement over 100 modelled engines:"
"$BUILD/bench/placement_sim" 100 8 4000 1000 2>/dev/null
