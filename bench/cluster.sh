#!/usr/bin/env bash
# Several nodes on one Redis (see docs/benchmarks.md, "Several nodes"), in
# one run on this machine: throughput of N trivial `local` jobs submitted at
# once with 1, 2 and 3 manager nodes (plus one API node) on Redis, the same
# on SQLite with one node, and the floor (bench/sandbox_floor.sh, N runs two
# at a time); Redis commands per job (INFO commandstats); addJob and poll
# latency (p50/p99) against the SQLite node and a Redis API node;
# redis-benchmark's figure for the Redis on this machine, to turn commands
# per job into jobs per second.
# Usage: bench/cluster.sh   (env: BUILD, CLUSTER_N, ROUNDS)
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build/release} CLUSTER_N=${CLUSTER_N:-300} ROUNDS=${ROUNDS:-1}
exec python3 - <<'PY'
import atexit, json, os, re, shutil, socket, statistics, subprocess, tempfile, time, urllib.request
from concurrent.futures import ThreadPoolExecutor

BUILD, N, ROUNDS = os.environ["BUILD"], int(os.environ["CLUSTER_N"]), int(os.environ["ROUNDS"])
ROOT = os.getcwd()
TMP = tempfile.mkdtemp(prefix="tango-bench-cluster-", dir="/var/lib")
os.chmod(TMP, 0o711)
atexit.register(lambda: shutil.rmtree(TMP, ignore_errors=True))
MK = "all:\n\t@echo hello\n"
procs = []
def cleanup():
    for p in procs:
        if p.poll() is None: p.terminate()
    for p in procs:
        try: p.wait(timeout=60)
        except Exception: p.kill()
atexit.register(cleanup)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def http(port, method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.headers.get("Content-Type", ""), r.read()

def redis_cli(port, *args):
    return subprocess.check_output(["redis-cli", "-p", str(port), *args], text=True, stderr=subprocess.DEVNULL)

def start_redis():
    port = free_port(); d = f"{TMP}/redis-{port}"; os.makedirs(d)
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                          "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
                         stdout=open(f"{d}/log", "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    for _ in range(200):
        try:
            if redis_cli(port, "ping").strip() == "PONG": return port, p
        except Exception: pass
        time.sleep(0.05)
    raise SystemExit("redis did not start")

uid_block = [0]
def start_node(name, labs, extra, role="all"):
    d = f"{TMP}/{name}"; os.makedirs(d)
    uid_block[0] += 1
    cfg = f"{d}/tango.toml"
    open(cfg, "w").write(f'PORT = 0\nHOST = "127.0.0.1"\nDATA_DIR = "{d}/data"\nLOG_LEVEL = "warn"\n'
                         f'COURSELABS = "{labs}"\nPOOL_SIZE = 2\nPREFIX = "bc{os.getpid()}"\n{extra}\n'
                         f'[local]\nUID_BASE = {400000 + uid_block[0] * 1000}\nSLOTS = 500\n')
    log = f"{d}/tangod.log"
    p = subprocess.Popen([f"{BUILD}/apps/tangod", "--config", cfg, "--autodriver", f"{BUILD}/apps/autodriver",
                          "--role", role, "--node-id", name], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    for _ in range(1200):
        text = open(log).read()
        m = re.search(r"listening on http://[^:]+:(\d+)", text)
        if m: return int(m.group(1)), p
        if "running jobs (" in text: return 0, p
        if p.poll() is not None: raise SystemExit(text)
        time.sleep(0.05)
    raise SystemExit("tangod did not start")

def stop(p):
    p.terminate(); p.wait(timeout=120)

def prepare_lab(port):
    http(port, "GET", "/open/test/lab/")
    http(port, "POST", "/upload/test/lab/", MK.encode(), {"Filename": "Makefile"})

def job_body(name):
    return json.dumps({"image": "autograding_image", "jobName": name, "output_file": name, "timeout": 20,
                       "files": [{"localFile": "Makefile", "destFile": "Makefile"}]}).encode()

def throughput(port, labs, tag):
    outdir = [os.path.join(labs, e, "output") for e in os.listdir(labs) if e.endswith("-lab")][0]
    names = [f"{tag}-{i}" for i in range(N)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda n: http(port, "POST", "/addJob/test/lab/", job_body(n)), names))
    pending = set(names)
    while pending:
        pending = {n for n in pending if not os.path.exists(os.path.join(outdir, n))}
        time.sleep(0.01)
    return N / (time.monotonic() - t0)

def floor_throughput():
    env = dict(os.environ, AUTODRIVER=f"{BUILD}/apps/autodriver", FLOOR_DIR=f"{TMP}/floor")
    os.makedirs(env["FLOOR_DIR"], exist_ok=True)
    t0 = time.monotonic()
    subprocess.run(f"seq {N} | xargs -P 2 -I{{}} {ROOT}/bench/sandbox_floor.sh {{}}", shell=True, check=True, env=env)
    return N / (time.monotonic() - t0)

def cmdstats(port):
    out = {}
    for line in redis_cli(port, "info", "commandstats").splitlines():
        m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
        if m: out[m.group(1)] = int(m.group(2))
    return out

def pct(xs, q):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(len(xs) * q))]

results = {"floor": [], "sqlite": [], 1: [], 2: [], 3: []}
per_job = []
lat = {"sqlite": {"addJob": [], "poll": []}, "redis": {"addJob": [], "poll": []}}

def latency(port, store, tag):
    """addJob and poll (of a finished output) latency, one request at a time."""
    for i in range(300):
        t0 = time.monotonic(); http(port, "POST", "/addJob/test/lab/", job_body(f"lat-{tag}-{i}"))
        lat[store]["addJob"].append((time.monotonic() - t0) * 1000)
    time.sleep(3)
    for i in range(300):
        t0 = time.monotonic(); http(port, "GET", f"/poll/test/lab/{tag}-{i}")
        lat[store]["poll"].append((time.monotonic() - t0) * 1000)
for r in range(ROUNDS):
    results["floor"].append(floor_throughput())
    # One node on SQLite.
    labs = f"{TMP}/labs-sqlite-{r}"; os.makedirs(labs)
    port, p = start_node(f"sqlite{r}", labs, "")
    prepare_lab(port); time.sleep(1)
    results["sqlite"].append(throughput(port, labs, "s"))
    latency(port, "sqlite", "s")
    stop(p)
    # Redis: one API node, k managers.
    for k in (1, 2, 3):
        rport, rp = start_redis()
        labs = f"{TMP}/labs-redis-{r}-{k}"; os.makedirs(labs)
        redis = f'USE_REDIS = true\nREDIS_HOSTNAME = "127.0.0.1"\nREDIS_PORT = {rport}\n'
        mgrs = [start_node(f"m{r}{k}{i}", labs, redis, "manager")[1] for i in range(k)]
        port, api = start_node(f"a{r}{k}", labs, redis, "api")
        prepare_lab(port); time.sleep(2)
        before = cmdstats(rport); t0 = time.monotonic()
        results[k].append(throughput(port, labs, f"r{k}"))
        elapsed = time.monotonic() - t0
        after = cmdstats(rport)
        # Per-node background (heartbeats, wake-up waits, renewals) measured
        # idle for the same time, taken off.
        time.sleep(1); idle0 = cmdstats(rport); time.sleep(elapsed); idle1 = cmdstats(rport)
        diff = {c: after.get(c, 0) - before.get(c, 0) - (idle1.get(c, 0) - idle0.get(c, 0)) for c in after}
        per_job.append((k, {c: round(v / N, 2) for c, v in sorted(diff.items()) if v / N >= 0.05}))
        if k == 1: latency(port, "redis", f"r{k}")
        for p in [api] + mgrs: stop(p)
        stop(rp)

# Redis on this machine, bare: single commands and a small script, one client at a time and 50.
bport, bp = start_redis()
def rb(*a):
    out = subprocess.check_output(["redis-benchmark", "-p", str(bport), "-q", *a], text=True)
    return float(re.search(r"([\d.]+) requests per second", out).group(1))
set1 = rb("-t", "set", "-n", "50000", "-c", "1")
set50 = rb("-t", "set", "-n", "200000", "-c", "50")
stop(bp)

med = lambda xs: statistics.median(xs)
fl = med(results["floor"])
print(f"N = {N} trivial jobs, {ROUNDS} round(s); Redis appendfsync always")
print(f"floor (sandbox_floor.sh, 2 at a time): {fl:.1f} jobs/s")
print(f"SQLite, one node:                      {med(results['sqlite']):.1f} jobs/s  ratio to floor {med(results['sqlite'])/fl:.2f}")
for k in (1, 2, 3):
    print(f"Redis, 1 API + {k} manager(s):           {med(results[k]):.1f} jobs/s  ratio to floor {med(results[k])/fl:.2f}")
for k, d in per_job:
    print(f"Redis commands per job with {k} manager(s): total {sum(d.values()):.1f}: {d}")
for store, node in (("sqlite", "SQLite node"), ("redis", "Redis API node, 1 manager")):
    for what in ("addJob", "poll"):
        xs = lat[store][what]
        print(f"{what} latency ({node}): p50 {pct(xs, .5):.2f} ms  p99 {pct(xs, .99):.2f} ms")
print(f"redis-benchmark SET: {set1:.0f}/s with 1 client, {set50:.0f}/s with 50 clients")
PY
