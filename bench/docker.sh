#!/usr/bin/env bash
# localDocker benchmarks against floors measured in the same run on the same
# engine (see docs/benchmarks.md):
#   cold       N trivial jobs, no pool (POOL_SIZE = 0), one at a time, vs
#              `docker run --rm IMAGE make` run the same way
#   warm       median addJob-answer -> output-pollable with a warm pool, vs
#              the median of `docker exec CONTAINER true`
#   sustained  500 jobs submitted at once with a pool of 4, vs `docker run --rm`
#              four at a time (sustained_floor: the floor alone)
#   backtoback median addJob-answer -> output-pollable of jobs submitted one
#              right after the other's output, pool of 2, vs the same jobs
#              spaced 2 s apart (the pool refilled before each); for the
#              trivial job and for one that runs 0.25 s; SPARES=S sets
#              POOL_SPARES (S containers ready, still 2 jobs at once)
# Usage: bench/docker.sh [cold|warm|sustained|sustained_floor|backtoback|all]
#   (env: BUILD, IMAGE, COLD_N, WARM_N, SUSTAINED_N, B2B_N, SPARES)
# Needs a release build (./dev serve builds it) and dockerd. The default image,
# tango-bench-minimal (Debian minbase + make), is built with this build's
# autodriver, so jobs run it in place under a read-only root; IMAGE=another
# image measures the path where the autodriver is copied in.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
IMAGE=${IMAGE:-tango-bench-minimal}
MODE=${1:-all}
if [ "$IMAGE" = tango-bench-minimal ]; then
  "$BUILD/apps/tango-image" build tango-bench-minimal --no-defaults --packages make \
    --autodriver "$BUILD/apps/autodriver" --if-changed
fi
export BUILD IMAGE MODE COLD_N=${COLD_N:-100} WARM_N=${WARM_N:-50} SUSTAINED_N=${SUSTAINED_N:-500} B2B_N=${B2B_N:-40}
exec python3 - <<'PY'
import atexit, json, os, shutil, signal, statistics, subprocess, tempfile, time, urllib.request, re

BUILD, IMAGE, MODE = os.environ["BUILD"], os.environ["IMAGE"], os.environ["MODE"]
MK = "all:\n\t@echo hi\n"

def http(method, path, body=None, headers=None):
    req = urllib.request.Request(BASE + path, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.headers.get("Content-Type", ""), r.read()

def start(pool, extra=""):
    global BASE, PROC, TMP
    TMP = tempfile.mkdtemp(prefix="tango-bench-")
    cfg = os.path.join(TMP, "tango.toml")
    with open(cfg, "w") as f:
        f.write(f'PORT = 0\nHOST = "127.0.0.1"\nDATA_DIR = "{TMP}/data"\nAUTODRIVER = "{os.path.abspath(BUILD)}/apps/autodriver"\n'
                f'VMMS_NAME = "localDocker"\nPREFIX = "bench{os.getpid()}"\nPOOL_SIZE = {pool}\nLOG_LEVEL = "warn"\n{extra}')
    log = open(os.path.join(TMP, "tangod.log"), "w+")
    PROC = subprocess.Popen([f"{BUILD}/apps/tangod", "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
    # An interrupted run still stops its service (which removes its containers).
    atexit.register(lambda p=PROC: p.poll() is None and (p.terminate(), p.wait(timeout=120)))
    for _ in range(600):
        m = re.search(r"listening on http://[^:]+:(\d+)", open(log.name).read())
        if m:
            BASE = f"http://127.0.0.1:{m.group(1)}"
            break
        time.sleep(0.05)
    http("GET", "/open/test/bench/")
    http("POST", "/upload/test/bench/", MK.encode(), {"Filename": "Makefile"})

def stop():
    PROC.send_signal(signal.SIGTERM)
    PROC.wait(timeout=120)
    shutil.rmtree(TMP, ignore_errors=True)

def left_over():
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=tango.prefix=bench{os.getpid()}"],
                         capture_output=True, text=True).stdout.split()
    return len(out)

def submit(name, makefile="Makefile"):
    job = {"image": IMAGE, "files": [{"localFile": makefile, "destFile": "Makefile"}],
           "output_file": name, "jobName": name, "timeout": 30}
    _, body = http("POST", "/addJob/test/bench/", json.dumps(job).encode())
    assert json.loads(body)["statusId"] == 0, body

def wait_output(name, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        ctype, body = http("GET", f"/poll/test/bench/{name}")
        if "application/json" not in ctype:
            assert b"Success" in body, body
            return
        time.sleep(0.005)
    raise SystemExit(f"{name}: no output")

def wait_pool(n):
    end = time.time() + 300
    while time.time() < end:
        _, body = http("GET", f"/pool/test/{IMAGE}/")
        p = json.loads(body)
        if p["statusId"] == 0 and len(p["pools"][IMAGE]["free"]) >= n:
            return
        time.sleep(0.05)

def docker_run_floor(n):
    t0 = time.time()
    for _ in range(n):
        subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "sh", "-c",
                        "mkdir -p /tmp/j && cd /tmp/j && printf 'all:\\n\\t@echo hi\\n' > Makefile && make"],
                       check=True, capture_output=True)
    return n / (time.time() - t0)

def cold():
    n = int(os.environ["COLD_N"])
    floor = docker_run_floor(n)
    start(0)
    t0 = time.time()
    for i in range(n):
        submit(f"c{i}")
        wait_output(f"c{i}")
    ours = n / (time.time() - t0)
    stop()
    print(f"cold: {n} jobs one at a time: tango {ours:.2f} jobs/s, docker run --rm floor {floor:.2f} jobs/s, ratio {ours/floor:.2f} (target >= 0.8)")

def warm():
    n = int(os.environ["WARM_N"])
    name = f"bench-floor-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--name", name, IMAGE, "sleep", "infinity"], check=True, capture_output=True)
    floors = []
    for _ in range(n):
        t0 = time.time()
        subprocess.run(["docker", "exec", name, "true"], check=True)
        floors.append(time.time() - t0)
    subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)
    start(2)
    lat = []
    for i in range(n):
        wait_pool(2)
        submit(f"w{i}")
        t0 = time.time()
        wait_output(f"w{i}")
        lat.append(time.time() - t0)
    stop()
    ours, floor = statistics.median(lat), statistics.median(floors)
    print(f"warm: median over {n} jobs: tango {ours*1000:.0f} ms (p90 {sorted(lat)[int(n*0.9)-1]*1000:.0f} ms), "
          f"docker exec floor {floor*1000:.0f} ms, ratio {ours/floor:.2f} (target <= 3)")

def parallel_floor(n, parallel=4):
    # The same trivial job through `docker run --rm`, `parallel` at a time.
    from concurrent.futures import ThreadPoolExecutor
    def one(_):
        subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "sh", "-c",
                        "mkdir -p /tmp/j && cd /tmp/j && printf 'all:\\n\\t@echo hi\\n' > Makefile && make"],
                       check=True, capture_output=True)
    t0 = time.time()
    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(one, range(n)))
    return n / (time.time() - t0)

def sustained_floor():
    n = min(int(os.environ["SUSTAINED_N"]), 100)
    print(f"sustained floor: {n} x docker run --rm, 4 at a time: {parallel_floor(n):.2f} jobs/s")

def sustained():
    n = int(os.environ["SUSTAINED_N"])
    floor = parallel_floor(min(n, 100))
    start(4)
    wait_pool(4)
    t0 = time.time()
    for i in range(n):
        submit(f"s{i}")
    for i in range(n):
        wait_output(f"s{i}")
    rate = n / (time.time() - t0)
    stop()
    print(f"sustained: {n} jobs submitted at once, pool of 4: all finished, {rate:.2f} jobs/s, "
          f"containers left over: {left_over()}; floor (docker run --rm, 4 at a time, "
          f"{min(n, 100)} runs) {floor:.2f} jobs/s, ratio {rate/floor:.2f}")

def backtoback():
    # Spaced first, then back to back, in one service with a pool of 2; each
    # latency from the addJob answer to the output being pollable. Twice: the
    # trivial job, and one that runs 0.25 s, longer than a container start.
    n = int(os.environ["B2B_N"])
    spares = int(os.environ.get("SPARES") or 2)
    start(2, f"POOL_SPARES = {spares}\n" if os.environ.get("SPARES") else "")
    http("POST", "/upload/test/bench/", b"all:\n\t@sleep 0.25; echo hi\n", {"Filename": "Makefile-slow"})
    http("POST", f"/prealloc/test/{IMAGE}/2/")
    def one(name, makefile):
        submit(name, makefile)
        t0 = time.time()
        wait_output(name)
        return time.time() - t0
    ms = lambda xs: f"median {statistics.median(xs)*1000:.0f} ms (p90 {sorted(xs)[int(len(xs)*0.9)-1]*1000:.0f} ms)"
    for label, makefile in (("trivial job", "Makefile"), ("0.25 s job", "Makefile-slow")):
        wait_pool(spares)
        spaced = []
        for i in range(n):
            t0 = time.time()
            spaced.append(one(f"sp{makefile}{i}", makefile))
            time.sleep(max(0, 2 - (time.time() - t0)))
        wait_pool(spares)  # the burst starts with every spare ready
        b2b = [one(f"bb{makefile}{i}", makefile) for i in range(n)]
        ratio = statistics.median(b2b) / statistics.median(spaced)
        print(f"backtoback, {label}: {n} jobs, pool of 2, {spares} spares: back to back {ms(b2b)}; spaced 2 s apart "
              f"{ms(spaced)}; ratio {ratio:.2f} (target <= 1.5)", flush=True)
    stop()
    print(f"backtoback: containers left over: {left_over()}")

for m in (["cold", "warm", "sustained", "backtoback"] if MODE == "all" else [MODE]):
    globals()[m]()
PY
