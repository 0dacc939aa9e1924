#!/usr/bin/env bash
# SSH backends on a warm, reused VM (see docs/benchmarks.md, "SSH backends"):
# median time from the addJob answer to the output being pollable for the
# trivial job, on tashiSSH (one listed machine) and on ec2SSH (REUSE_VMS,
# a pool of 1, through tests/ec2/ec2_double.py), against the floor: the same
# copy-in + run + copy-out done by hand (scp, ssh, scp) over one
# multiplexed OpenSSH connection, measured in the same run on the same
# machine. Also: EC2 API calls per job with the warm pool.
# The "machine" is a container of tango-bench-ssh (tango-image: make,
# openssh-server, sudo, this build's autodriver) on the local Docker bridge.
# Usage: bench/ssh.sh   (env: BUILD, SSH_N)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
"$BUILD/apps/tango-image" build tango-bench-ssh --no-defaults --packages make,openssh-server,sudo \
  --autodriver "$BUILD/apps/autodriver" --if-changed
export BUILD SSH_N=${SSH_N:-60}
exec python3 - <<'PY'
import atexit, json, os, re, shutil, statistics, subprocess, tempfile, time, urllib.request

BUILD, N = os.environ["BUILD"], int(os.environ["SSH_N"])
ROOT = os.getcwd()
TMP = tempfile.mkdtemp(prefix="tango-bench-ssh-")
atexit.register(lambda: shutil.rmtree(TMP, ignore_errors=True))
MK = "all:\n\t@echo hi\n"
KEY = f"{TMP}/id_ed25519"
subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", KEY], check=True)
PUB = open(KEY + ".pub").read().strip()
LABEL = f"tango.bench.ssh={os.getpid()}"
atexit.register(lambda: subprocess.run(f"docker ps -aq --filter label={LABEL} | xargs -r docker rm -f >/dev/null", shell=True))
cid = subprocess.check_output(["docker", "run", "-d", "--label", LABEL, "-e", "LOGIN_USER=tango",
    "-e", f"AUTHORIZED_KEY={PUB}", "-v", f"{ROOT}/tests/ssh/instance-init.sh:/tango-init.sh:ro",
    "tango-bench-ssh", "/bin/sh", "/tango-init.sh"], text=True).strip()
IP = subprocess.check_output(["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid], text=True).strip()
SSH = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
       "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-i", KEY]
for _ in range(100):
    if subprocess.run(SSH + [f"tango@{IP}", "true"], capture_output=True).returncode == 0: break
    time.sleep(0.2)

def http(base, method, path, body=None, headers=None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.headers.get("Content-Type", ""), r.read()

def start(name, extra):
    d = f"{TMP}/{name}"; os.makedirs(d)
    cfg = f"{d}/tango.toml"
    open(cfg, "w").write(f'PORT = 0\nHOST = "127.0.0.1"\nDATA_DIR = "{d}/data"\nLOG_LEVEL = "warn"\n'
                         f'PREFIX = "b{name}{os.getpid()}"\n{extra}')
    log = open(f"{d}/tangod.log", "w+")
    env = dict(os.environ, HOME=d)
    p = subprocess.Popen([f"{BUILD}/apps/tangod", "--config", cfg, "--autodriver", f"{BUILD}/apps/autodriver"],
                         stdout=log, stderr=subprocess.STDOUT, env=env)
    atexit.register(lambda: p.poll() is None and (p.terminate(), p.wait(timeout=120)))
    for _ in range(1200):
        m = re.search(r"listening on http://[^:]+:(\d+)", open(log.name).read())
        if m: break
        if p.poll() is not None: raise SystemExit(open(log.name).read())
        time.sleep(0.05)
    base = f"http://127.0.0.1:{m.group(1)}"
    http(base, "GET", "/open/test/bench/")
    http(base, "POST", "/upload/test/bench/", MK.encode(), {"Filename": "Makefile"})
    return base, p

def job(base, i):
    body = json.dumps({"image": "autograding_image", "files": [{"localFile": "Makefile", "destFile": "Makefile"}],
                       "output_file": f"o{i}", "jobName": f"j{i}", "timeout": 20}).encode()
    http(base, "POST", "/addJob/test/bench/", body)
    t0 = time.monotonic()
    while True:
        ct, out = http(base, "GET", f"/poll/test/bench/o{i}")
        if not ct.startswith("application/json"): return (time.monotonic() - t0) * 1000
        time.sleep(0.002)

def series(base, tag, before=None):
    for i in range(3): job(base, f"{tag}w{i}")   # warm the pool and the connection
    if before: before()
    return [job(base, f"{tag}{i}") for i in range(N)]

# The floor: copy-in, run, copy-out by hand over one multiplexed connection.
sock = f"{TMP}/cm"
subprocess.run(SSH + ["-M", "-N", "-f", "-o", f"ControlPath={sock}", f"tango@{IP}"], check=True)
atexit.register(lambda: subprocess.run(SSH + ["-o", f"ControlPath={sock}", "-O", "exit", f"tango@{IP}"], capture_output=True))
MUX = SSH + ["-o", f"ControlPath={sock}"]
open(f"{TMP}/Makefile", "w").write(MK)
subprocess.run(MUX + [f"tango@{IP}", "mkdir -p job"], check=True)
def floor_once():
    t0 = time.monotonic()
    subprocess.run(["scp", "-q"] + MUX[1:] + [f"{TMP}/Makefile", f"tango@{IP}:job/Makefile"], check=True)
    subprocess.run(MUX + [f"tango@{IP}", "cd job && make > output 2>&1"], check=True)
    subprocess.run(["scp", "-q"] + MUX[1:] + [f"tango@{IP}:job/output", f"{TMP}/output"], check=True)
    return (time.monotonic() - t0) * 1000
for _ in range(3): floor_once()
floor = [floor_once() for _ in range(N)]

tashi, p1 = start("tashi", f'VMMS_NAME = "tashiSSH"\nPOOL_SIZE = 1\nMAX_CONCURRENT_JOBS = 1\n'
                  f'[[SSH_MACHINES]]\naddress = "{IP}"\nuser = "tango"\nkey = "{KEY}"\n')
t = series(tashi, "t")
# Where a job's time goes, from the service's own step times (ms after queued).
_, dead = http(tashi, "GET", "/jobs/test/1/")
steps = {}
for j in json.loads(dead)["jobs"]:
    tm = j["times"]
    for k in ("assigned", "runJob", "copyOut", "finished"):
        if tm.get(k) and tm.get("queued"): steps.setdefault(k, []).append((tm[k] - tm["queued"]) * 1000)
step_line = ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in steps.items())
p1.terminate(); p1.wait(timeout=120)

# ec2SSH through the double: its instances are containers of the same image.
AK, SK = "AKIDBENCH00000000001", "bench-secret-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
pf = f"{TMP}/ec2.port"
dbl = subprocess.Popen(["/usr/bin/python3", f"{ROOT}/tests/ec2/ec2_double.py", "--port-file", pf,
    "--access-key", AK, "--secret", SK, "--image", "ami-0123456789abcdef0=tango-bench-ssh=tango-bench-ssh",
    "--init-script", f"{ROOT}/tests/ssh/instance-init.sh", "--key-pair", f"bench={KEY}.pub",
    "--login-user", "tango", "--label-value", f"bench{os.getpid()}"],
    stdout=subprocess.DEVNULL, stderr=open(f"{TMP}/double.log", "w"))
atexit.register(lambda: dbl.poll() is None and (dbl.terminate(), dbl.wait(timeout=60)))
for _ in range(200):
    if os.path.exists(pf): break
    time.sleep(0.05)
dport = int(open(pf).read())
def ec2stats():
    with urllib.request.urlopen(f"http://127.0.0.1:{dport}/_control/stats") as r: return json.load(r)
os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = AK, SK
ec2, p2 = start("ec2", f'VMMS_NAME = "ec2SSH"\nREUSE_VMS = true\nPOOL_SIZE = 1\nMAX_CONCURRENT_JOBS = 1\n'
                f'EC2_REGION = "us-east-1"\nEC2_USER_NAME = "tango"\nDEFAULT_AMI = "ami-0123456789abcdef0"\n'
                f'DEFAULT_INST_TYPE = "t3.small"\nSECURITY_KEY_NAME = "bench"\nSECURITY_KEY_PATH = "{KEY}"\n'
                f'EC2_ENDPOINT = "http://127.0.0.1:{dport}"\n')
calls = {}
def mark(): calls["before"] = dict(ec2stats()["calls"])
e = series(ec2, "e", mark)
after = ec2stats()["calls"]
by_action = {k: v - calls["before"].get(k, 0) for k, v in after.items() if v != calls["before"].get(k, 0)}
api = sum(by_action.values()) / N
p2.terminate(); p2.wait(timeout=120)
# The default POOL_SIZE = 2: a job takes the other instance while the one
# its predecessor used is being reset.
ec2b, p3 = start("ec2b", f'VMMS_NAME = "ec2SSH"\nREUSE_VMS = true\nPOOL_SIZE = 2\n'
                 f'EC2_REGION = "us-east-1"\nEC2_USER_NAME = "tango"\nDEFAULT_AMI = "ami-0123456789abcdef0"\n'
                 f'DEFAULT_INST_TYPE = "t3.small"\nSECURITY_KEY_NAME = "bench"\nSECURITY_KEY_PATH = "{KEY}"\n'
                 f'EC2_ENDPOINT = "http://127.0.0.1:{dport}"\n')
e2 = series(ec2b, "f")
p3.terminate(); p3.wait(timeout=120)

mf, mt, me = statistics.median(floor), statistics.median(t), statistics.median(e)
print(f"jobs: {N} per series, trivial Makefile, warm reused VM")
print(f"floor (scp + ssh make + scp, one multiplexed connection): median {mf:.1f} ms")
print(f"tashiSSH addJob->output: median {mt:.1f} ms  ratio {mt/mf:.2f}  (ms after queued: {step_line})")
print(f"ec2SSH   addJob->output: median {me:.1f} ms  ratio {me/mf:.2f}  EC2 API calls per job {api:.2f} {by_action}")
me2 = statistics.median(e2)
print(f"ec2SSH, POOL_SIZE = 2:  median {me2:.1f} ms  ratio {me2/mf:.2f}")
PY
