#!/usr/bin/python3
"""A test double of the Amazon EC2 Query API (API version 2016-11-15).

It listens on 127.0.0.1 over plain HTTP, verifies AWS Signature Version 4 on
every request as EC2 does, and backs each "instance" with a Docker container
on Docker's default bridge network, so a client can SSH into it.

Standard library only.  See README.md beside this file for usage and the
unsigned /_control endpoint that tests use to inject faults and read counters.
"""

import argparse
import atexit
import base64
import datetime
import hashlib
import hmac
import http.server
import ipaddress
import json
import os
import re
import secrets
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from xml.sax.saxutils import escape as xml_escape

API_VERSION = "2016-11-15"
XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"
SERVICE = "ec2"
MAX_SKEW_SECONDS = 15 * 60
TERMINATED_VISIBLE_SECONDS = 60
DEFAULT_GROUP_ID = "sg-default0"
OWNER_IDS = ["123456789012", "210987654321"]

STATE_CODES = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}

AUTH_MESSAGE = "AWS was not able to validate the provided access credentials"


def log(msg):
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    sys.stderr.write(f"{ts} ec2-double[{os.getpid()}]: {msg}\n")
    sys.stderr.flush()


def iso_time(t):
    dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def gmt_time(t):
    dt = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S GMT")


def hex17():
    return secrets.token_hex(9)[:17]


# ---------------------------------------------------------------------------
# Errors and XML


class ApiError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def missing(name):
    return ApiError("MissingParameter", f"The request must contain the parameter {name}")


def invalid(message):
    return ApiError("InvalidParameterValue", message)


def render(node):
    """node = (tag, content); content: None (omitted), str/int/bool (text), or
    a list of child nodes."""
    tag, content = node
    if content is None:
        return ""
    if isinstance(content, list):
        inner = "".join(render(c) for c in content)
        return f"<{tag}>{inner}</{tag}>"
    if isinstance(content, bool):
        text = "true" if content else "false"
    else:
        text = xml_escape(str(content))
    if text == "":
        return f"<{tag}/>"
    return f"<{tag}>{text}</{tag}>"


def response_xml(action, request_id, children):
    body = "".join(render(c) for c in children)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{action}Response xmlns="{XMLNS}"><requestId>{request_id}</requestId>'
        f"{body}</{action}Response>"
    )


def error_xml(code, message, request_id):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{xml_escape(code)}</Code>"
        f"<Message>{xml_escape(message)}</Message></Error></Errors>"
        f"<RequestID>{request_id}</RequestID></Response>"
    )


# ---------------------------------------------------------------------------
# SigV4


def aws_uri_encode(s, safe=""):
    return urllib.parse.quote(s, safe="-_.~" + safe)


def parse_raw_query(query):
    """Percent-decoded (name, value) pairs of a raw query string, in order."""
    pairs = []
    for part in query.split("&"):
        if part == "":
            continue
        if "=" in part:
            k, v = part.split("=", 1)
        else:
            k, v = part, ""
        pairs.append((urllib.parse.unquote_plus(k), urllib.parse.unquote_plus(v)))
    return pairs


def canonical_query_string(query):
    enc = [(aws_uri_encode(k), aws_uri_encode(v)) for k, v in parse_raw_query(query)]
    enc.sort()
    return "&".join(f"{k}={v}" for k, v in enc)


def signing_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, region.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    return hmac.new(k, b"aws4_request", hashlib.sha256).digest()


def parse_authorization(value):
    algo, _, rest = value.strip().partition(" ")
    if algo != "AWS4-HMAC-SHA256":
        return None
    fields = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        k, sep, v = part.partition("=")
        if not sep:
            return None
        fields[k.strip()] = v.strip()
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    return fields


def verify_sigv4(method, raw_path, headers, body, accounts, region, now=None):
    """Returns the access key of a validly signed request, else raises ApiError."""
    def fail(msg=AUTH_MESSAGE):
        return ApiError("AuthFailure", msg, 401)

    auth = headers.get("Authorization")
    if not auth:
        raise fail()
    fields = parse_authorization(auth)
    if fields is None:
        raise fail()
    cred = fields["Credential"].split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise fail()
    access_key, scope_date, scope_region, scope_service, _ = cred
    account = accounts.get(access_key)
    if account is None:
        raise fail()
    if scope_region != region or scope_service != SERVICE:
        raise fail()
    amz_date = headers.get("X-Amz-Date")
    if not amz_date:
        raise fail()
    try:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        raise fail()
    if scope_date != amz_date[:8]:
        raise fail()
    now = time.time() if now is None else now
    if abs(now - t) > MAX_SKEW_SECONDS:
        raise fail("Request timestamp is more than 15 minutes away from the server time")
    signed = fields["SignedHeaders"].split(";")
    if not signed or signed != sorted(signed) or any(h != h.lower() or not h for h in signed):
        raise fail()
    if "host" not in signed or "x-amz-date" not in signed:
        raise fail()
    lines = []
    for name in signed:
        values = headers.get_all(name)
        if values is None:
            raise fail()
        value = ",".join(" ".join(v.strip().split()) for v in values)
        lines.append(f"{name}:{value}\n")
    payload_hash = hashlib.sha256(body).hexdigest()
    declared = headers.get("X-Amz-Content-Sha256")
    if declared is not None and declared.strip().lower() != payload_hash:
        raise fail("The provided 'x-amz-content-sha256' header does not match what was computed.")
    split = urllib.parse.urlsplit(raw_path)
    path = split.path or "/"
    canonical_uri = aws_uri_encode(path, safe="/")
    canonical_request = "\n".join([
        method,
        canonical_uri,
        canonical_query_string(split.query),
        "".join(lines),
        ";".join(signed),
        payload_hash,
    ])
    scope = f"{scope_date}/{scope_region}/{scope_service}/aws4_request"
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256",
        amz_date,
        scope,
        hashlib.sha256(canonical_request.encode()).hexdigest(),
    ])
    key = signing_key(account.secret, scope_date, scope_region, scope_service)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["Signature"].lower()):
        raise fail()
    return access_key


# ---------------------------------------------------------------------------
# Parameters


IDX = r"[1-9][0-9]*"


def check_params(params, patterns):
    # Patterns: "." is a literal dot, "#" an index (1, 2, ...), (A|B) alternation.
    allowed = [re.compile(p.replace(".", r"\.").replace("#", IDX))
               for p in patterns + ["Action", "Version"]]
    for k in params:
        if not any(p.fullmatch(k) for p in allowed):
            raise ApiError("UnknownParameter", f"The parameter {k} is not recognized")


def indexed(params, prefix):
    """Values of prefix.N, in order of N."""
    rx = re.compile(re.escape(prefix) + r"\.(" + IDX + r")")
    out = []
    for k, v in params.items():
        m = rx.fullmatch(k)
        if m:
            out.append((int(m.group(1)), v))
    return [v for _, v in sorted(out)]


def indexed_struct(params, prefix):
    """[{rest: value}] of prefix.N.rest, in order of N."""
    rx = re.compile(re.escape(prefix) + r"\.(" + IDX + r")\.(.+)")
    groups = {}
    for k, v in params.items():
        m = rx.fullmatch(k)
        if m:
            groups.setdefault(int(m.group(1)), {})[m.group(2)] = v
    return [groups[i] for i in sorted(groups)]


def parse_filters(params, allowed):
    filters = []
    for f in indexed_struct(params, "Filter"):
        name = f.get("Name")
        if name is None:
            raise missing("Filter.N.Name")
        values = indexed(f, "Value")
        if not any(name == a or (a.endswith(":") and name.startswith(a) and len(name) > len(a))
                   for a in allowed):
            raise invalid(f"The filter '{name}' is invalid")
        filters.append((name, values))
    return filters


def glob_match(pattern, value):
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.S) is not None


def any_match(values, candidates):
    return any(glob_match(p, c) for p in values for c in candidates)


def get_bool(params, name, default=False):
    v = params.get(name)
    if v is None:
        return default
    if v.lower() == "true":
        return True
    if v.lower() == "false":
        return False
    raise invalid(f"Invalid value '{v}' for {name}")


def get_int(params, name, default=None, lo=None, hi=None):
    v = params.get(name)
    if v is None:
        return default
    try:
        n = int(v)
    except ValueError:
        raise invalid(f"Invalid value '{v}' for {name}")
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise invalid(f"Value ({n}) for parameter {name} is invalid.")
    return n


def require(params, name):
    v = params.get(name)
    if v is None or v == "":
        raise missing(name)
    return v


def parse_tags(items, where):
    tags = {}
    for t in items:
        key = t.get("Key")
        if key is None or key == "":
            raise missing(f"{where}.Key")
        if key.lower().startswith("aws:"):
            raise invalid("Tag keys starting with 'aws:' are reserved for internal use")
        if len(key) > 128 or len(t.get("Value", "")) > 256:
            raise invalid("Tag key or value too long")
        tags[key] = t.get("Value", "")
    return tags


def tag_set(tags):
    if not tags:
        return None
    return [("item", [("key", k), ("value", v)]) for k, v in tags.items()]


# ---------------------------------------------------------------------------
# Model


class KeyPair:
    def __init__(self, name, public_key, key_type="ed25519"):
        self.name = name
        self.public_key = public_key.strip()
        self.key_type = key_type
        self.id = "key-" + hex17()
        self.created = time.time()
        try:
            blob = base64.b64decode(self.public_key.split()[1])
        except Exception:
            blob = self.public_key.encode()
        self.fingerprint = base64.b64encode(hashlib.sha256(blob).digest()).decode()


class SecurityGroup:
    def __init__(self, gid, name, description, owner):
        self.id = gid
        self.name = name
        self.description = description
        self.owner = owner
        self.rules = []  # (proto, from, to, [cidr])


class Account:
    def __init__(self, access_key, secret, owner_id):
        self.access_key = access_key
        self.secret = secret
        self.owner_id = owner_id
        self.key_pairs = {}
        self.groups = {DEFAULT_GROUP_ID: SecurityGroup(
            DEFAULT_GROUP_ID, "default", "default VPC security group", owner_id)}


class Instance:
    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.state = "pending"
        self.reason = ""
        self.state_reason = None  # (code, message)
        self.container = None
        self.ip = None
        self.started_at = None
        self.terminated_at = None
        self.killing = False
        self.launch_done = threading.Event()


class Double:
    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.accounts = {}
        self.accounts[args.access_key] = Account(args.access_key, args.secret, OWNER_IDS[0])
        if args.access_key2:
            self.accounts[args.access_key2] = Account(args.access_key2, args.secret2, OWNER_IDS[1])
        self.images = {}  # ami -> (name, docker image)
        for spec in args.image:
            parts = spec.split("=", 2)
            if len(parts) != 3 or not re.fullmatch(r"ami-[0-9a-f]{8,17}", parts[0]) or not parts[2]:
                raise SystemExit(f"bad --image {spec!r}: want ami-HEX=NAME=DOCKERIMAGE")
            self.images[parts[0]] = (parts[1], parts[2])
        for spec in args.key_pair:
            name, sep, path = spec.partition("=")
            if not sep or not name:
                raise SystemExit(f"bad --key-pair {spec!r}: want NAME=PUBKEYFILE")
            with open(path) as f:
                pub = f.read().strip()
            ktype = "rsa" if pub.startswith("ssh-rsa") else "ed25519"
            for acct in self.accounts.values():
                acct.key_pairs[name] = KeyPair(name, pub, ktype)
        self.instances = {}  # id -> Instance (kept forever; hidden 60 s after termination)
        self.order = []
        self.calls = {}
        self.errors = {}
        self.throttle = 0
        self.insufficient = 0
        self.no_sshd = 0
        self.shutting_down = False
        self.label = args.label_value or str(os.getpid())

    # -- docker ------------------------------------------------------------

    def docker(self, *argv, timeout=120):
        try:
            return subprocess.run([self.args.docker, *argv], capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            return subprocess.CompletedProcess(argv, 255, "", str(e))

    def container_name(self, iid):
        return f"ec2double-{self.label}-{iid}"

    def launch(self, inst, docker_image, pubkey, no_sshd):
        name = self.container_name(inst.id)
        argv = ["run", "-d", "--name", name, "--hostname", inst.id, "--network", "bridge",
                "--label", f"tango.ec2double={self.label}",
                "--label", f"tango.ec2double.instance={inst.id}",
                "-e", f"LOGIN_USER={self.args.login_user}",
                "-e", f"AUTHORIZED_KEY={pubkey}"]
        if no_sshd:
            argv += ["-e", "NO_SSHD=1"]
        argv += ["-v", f"{self.args.init_script}:/tango-init.sh:ro",
                 docker_image, "/bin/sh", "/tango-init.sh"]
        cid, ip, err = None, None, None
        if self.shutting_down:
            err = "service shutting down"
        else:
            r = self.docker(*argv)
            if r.returncode != 0:
                err = (r.stderr or r.stdout).strip()
            else:
                cid = r.stdout.strip()
                r = self.docker("inspect", cid)
                try:
                    info = json.loads(r.stdout)[0]
                    running = info["State"]["Running"]
                    ip = (info["NetworkSettings"]["Networks"].get("bridge", {}).get("IPAddress")
                          or info["NetworkSettings"].get("IPAddress"))
                    if not running:
                        err = f"container exited: {info['State'].get('Status')}"
                    elif not ip:
                        err = "container has no bridge IP address"
                except (ValueError, KeyError, IndexError, TypeError):
                    err = f"docker inspect failed: {r.stderr.strip()}"
        with self.lock:
            inst.container = cid
            if err is None:
                inst.ip = ip
                inst.started_at = time.time()
            elif inst.state == "pending":
                log(f"instance {inst.id} failed to launch: {err}")
                self._set_terminated(inst, "Server.InternalError",
                                     "Server.InternalError: Internal error on launch")
        if err is not None or self.shutting_down:
            self.docker("rm", "-f", name)
            inst.launch_done.set()
            return
        inst.launch_done.set()
        # Block until the container exits, to notice an instance that dies.
        r = self.docker("wait", cid, timeout=None)
        with self.lock:
            dead = inst.state in ("pending", "running") and not inst.killing
        if dead and not self.shutting_down:
            logs = self.docker("logs", "--tail", "20", cid)
            log(f"instance {inst.id}: container exited on its own (docker wait: "
                f"{r.stdout.strip() or r.stderr.strip()}); last output:\n"
                + (logs.stdout + logs.stderr).rstrip())
            with self.lock:
                if inst.state in ("pending", "running") and not inst.killing:
                    self._set_terminated(inst, "Client.InstanceInitiatedShutdown",
                                         "Client.InstanceInitiatedShutdown: Instance initiated shutdown")
            self.docker("rm", "-f", cid)

    def _set_terminated(self, inst, code, message):
        inst.state = "terminated"
        inst.terminated_at = time.time()
        inst.state_reason = (code, message)
        inst.reason = ""
        if code == "Client.UserInitiatedShutdown":
            inst.reason = f"User initiated ({gmt_time(inst.terminated_at)})"
        elif code == "Server.InternalError":
            inst.reason = "Server.InternalError: Internal error"

    def terminate_bg(self, inst):
        inst.launch_done.wait(180)
        self.docker("rm", "-f", self.container_name(inst.id))
        with self.lock:
            if inst.state == "shutting-down":
                self._set_terminated(inst, "Client.UserInitiatedShutdown",
                                     "Client.UserInitiatedShutdown: User initiated shutdown")

    def kill_instance(self, iid):
        with self.lock:
            inst = self.instances.get(iid)
            if inst is None:
                return False
            inst.killing = True
        inst.launch_done.wait(180)
        self.docker("rm", "-f", self.container_name(iid))
        with self.lock:
            if inst.state != "terminated":
                self._set_terminated(inst, "Server.InternalError",
                                     "Server.InternalError: Internal error")
        log(f"control: killed instance {iid}")
        return True

    def cleanup(self):
        with self.lock:
            if self.shutting_down:
                return
            self.shutting_down = True
            insts = list(self.instances.values())
        deadline = time.time() + 60
        for inst in insts:
            inst.launch_done.wait(max(0.0, deadline - time.time()))
        r = self.docker("ps", "-aq", "--filter", f"label=tango.ec2double={self.label}")
        ids = r.stdout.split()
        if ids:
            self.docker("rm", "-f", *ids)
            log(f"removed {len(ids)} container(s)")

    # -- state -------------------------------------------------------------

    def refresh(self, inst):
        """Advances time-driven state (caller holds the lock)."""
        if (inst.state == "pending" and inst.started_at is not None
                and time.time() - inst.launch_time >= self.args.running_delay):
            inst.state = "running"

    def visible(self, inst):
        return not (inst.state == "terminated"
                    and time.time() - inst.terminated_at > TERMINATED_VISIBLE_SECONDS)

    def account_instances(self, account):
        out = []
        for iid in self.order:
            inst = self.instances[iid]
            if inst.account is account:
                self.refresh(inst)
                if self.visible(inst):
                    out.append(inst)
        return out

    def find_instances(self, account, ids):
        known = {i.id: i for i in self.account_instances(account)}
        for iid in ids:
            if not re.fullmatch(r"i-[0-9a-f]{8}([0-9a-f]{9})?", iid):
                raise ApiError("InvalidInstanceID.Malformed", f'Invalid id: "{iid}"')
        bad = [i for i in ids if i not in known]
        if len(bad) == 1:
            raise ApiError("InvalidInstanceID.NotFound", f"The instance ID '{bad[0]}' does not exist")
        if bad:
            raise ApiError("InvalidInstanceID.NotFound",
                           f"The instance IDs '{', '.join(bad)}' do not exist")
        return [known[i] for i in ids]

    def group_by_ref(self, account, gid=None, name=None):
        if gid is not None:
            g = account.groups.get(gid)
            if g is None:
                raise ApiError("InvalidGroup.NotFound", f"The security group '{gid}' does not exist")
            return g
        for g in account.groups.values():
            if g.name == name:
                return g
        raise ApiError("InvalidGroup.NotFound",
                       f"The security group '{name}' does not exist in default VPC 'vpc-0d0ub1e000000000'")

    # -- XML pieces ---------------------------------------------------------

    def instance_xml(self, inst):
        code = STATE_CODES[inst.state]
        ip = inst.ip if inst.state in ("pending", "running", "shutting-down") else None
        dns = f"ip-{ip.replace('.', '-')}.{self.internal_domain()}" if ip else ""
        return ("item", [
            ("instanceId", inst.id),
            ("imageId", inst.image_id),
            ("instanceState", [("code", code), ("name", inst.state)]),
            ("privateDnsName", dns),
            ("dnsName", dns),
            ("reason", inst.reason),
            ("keyName", inst.key_name),
            ("amiLaunchIndex", inst.launch_index),
            ("productCodes", []),
            ("instanceType", inst.instance_type),
            ("launchTime", iso_time(inst.launch_time)),
            ("placement", [("availabilityZone", inst.az), ("groupName", ""),
                           ("tenancy", "default")]),
            ("monitoring", [("state", "disabled")]),
            ("subnetId", "subnet-0d0ub1e000000000" if inst.state != "terminated" else None),
            ("vpcId", "vpc-0d0ub1e000000000" if inst.state != "terminated" else None),
            ("privateIpAddress", ip),
            ("ipAddress", ip),
            ("sourceDestCheck", True),
            ("groupSet", [("item", [("groupId", g.id), ("groupName", g.name)])
                          for g in inst.groups]),
            ("stateReason", [("code", inst.state_reason[0]), ("message", inst.state_reason[1])]
             if inst.state_reason else None),
            ("architecture", "x86_64"),
            ("rootDeviceType", "ebs"),
            ("rootDeviceName", "/dev/xvda"),
            ("blockDeviceMapping", []),
            ("virtualizationType", "hvm"),
            ("clientToken", inst.client_token),
            ("tagSet", tag_set(inst.tags)),
            ("hypervisor", "xen"),
            ("networkInterfaceSet", []),
            ("ebsOptimized", False),
        ])

    def internal_domain(self):
        r = self.args.region
        return "ec2.internal" if r == "us-east-1" else f"{r}.compute.internal"

    def reservation_xml(self, res_id, owner, groups, insts):
        return ("item", [
            ("reservationId", res_id),
            ("ownerId", owner),
            ("groupSet", [("item", [("groupId", g.id), ("groupName", g.name)]) for g in groups]),
            ("instancesSet", [self.instance_xml(i) for i in insts]),
        ])

    # -- actions ------------------------------------------------------------

    def dry_run(self, params):
        if get_bool(params, "DryRun"):
            raise ApiError("DryRunOperation",
                           "Request would have succeeded, but DryRun flag is set.", 412)

    def act_DescribeRegions(self, account, p):
        check_params(p, ["RegionName.#", "AllRegions", "DryRun", "Filter.#.Name",
                         "Filter.#.Value.#"])
        self.dry_run(p)
        region = self.args.region
        filters = parse_filters(p, ["region-name", "endpoint", "opt-in-status"])
        names = indexed(p, "RegionName")
        for n in names:
            if n != region:
                raise ApiError("InvalidParameterValue", f"Invalid region: {n}")
        endpoint = f"ec2.{region}.amazonaws.com"
        for name, values in filters:
            cand = {"region-name": region, "endpoint": endpoint,
                    "opt-in-status": "opt-in-not-required"}[name]
            if not any_match(values, [cand]):
                return [("regionInfo", [])]
        return [("regionInfo", [("item", [("regionName", region),
                                          ("regionEndpoint", endpoint),
                                          ("optInStatus", "opt-in-not-required")])])]

    def act_DescribeImages(self, account, p):
        check_params(p, ["ImageId.#", "Owner.#", "ExecutableBy.#", "IncludeDeprecated",
                         "IncludeDisabled", "MaxResults", "NextToken", "DryRun",
                         "Filter.#.Name", "Filter.#.Value.#"])
        self.dry_run(p)
        filters = parse_filters(p, ["name", "image-id", "state", "architecture",
                                    "root-device-type", "virtualization-type", "image-type"])
        ids = indexed(p, "ImageId")
        for i in ids:
            if not re.fullmatch(r"ami-[0-9a-f]{8,17}", i):
                raise ApiError("InvalidAMIID.Malformed", f'Invalid id: "{i}" (expecting "ami-...")')
        bad = [i for i in ids if i not in self.images]
        if bad:
            raise ApiError("InvalidAMIID.NotFound",
                           f"The image id '[{', '.join(bad)}]' does not exist")
        items = []
        for ami, (name, _docker) in self.images.items():
            if ids and ami not in ids:
                continue
            attrs = {"name": name, "image-id": ami, "state": "available",
                     "architecture": "x86_64", "root-device-type": "ebs",
                     "virtualization-type": "hvm", "image-type": "machine"}
            if not all(any_match(v, [attrs[n]]) for n, v in filters):
                continue
            items.append(("item", [
                ("imageId", ami),
                ("imageLocation", f"{account.owner_id}/{name}"),
                ("imageState", "available"),
                ("imageOwnerId", account.owner_id),
                ("creationDate", "2024-01-01T00:00:00.000Z"),
                ("isPublic", False),
                ("architecture", "x86_64"),
                ("imageType", "machine"),
                ("name", name),
                ("rootDeviceType", "ebs"),
                ("rootDeviceName", "/dev/xvda"),
                ("blockDeviceMapping", []),
                ("virtualizationType", "hvm"),
                ("hypervisor", "xen"),
            ]))
        return [("imagesSet", items)]

    def act_CreateKeyPair(self, account, p):
        check_params(p, ["KeyName", "KeyType", "KeyFormat", "DryRun",
                         "TagSpecification.#.ResourceType", "TagSpecification.#.Tag.#.(Key|Value)"])
        self.dry_run(p)
        name = require(p, "KeyName")
        if len(name) > 255 or not name.isascii():
            raise invalid(f"Invalid value '{name}' for KeyName")
        ktype = p.get("KeyType", "ed25519")
        if ktype not in ("rsa", "ed25519"):
            raise invalid(f"Invalid value '{ktype}' for KeyType")
        if p.get("KeyFormat", "pem") not in ("pem", "ppk"):
            raise invalid("Invalid value for KeyFormat")
        with self.lock:
            if name in account.key_pairs:
                raise ApiError("InvalidKeyPair.Duplicate", f"The keypair '{name}' already exists.")
        with tempfile.TemporaryDirectory(prefix="ec2double-key-") as d:
            path = os.path.join(d, "key")
            cmd = ["ssh-keygen", "-q", "-N", "", "-C", name, "-f", path]
            cmd += ["-t", "rsa", "-b", "2048", "-m", "PEM"] if ktype == "rsa" else ["-t", "ed25519"]
            r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                log(f"ssh-keygen failed: {r.stderr.strip()}")
                raise ApiError("InternalError", "An internal error has occurred", 500)
            with open(path) as f:
                private = f.read()
            with open(path + ".pub") as f:
                public = f.read()
        kp = KeyPair(name, public, ktype)
        with self.lock:
            if name in account.key_pairs:
                raise ApiError("InvalidKeyPair.Duplicate", f"The keypair '{name}' already exists.")
            account.key_pairs[name] = kp
        return [("keyName", name), ("keyFingerprint", kp.fingerprint),
                ("keyMaterial", private.rstrip("\n")), ("keyPairId", kp.id)]

    def act_ImportKeyPair(self, account, p):
        check_params(p, ["KeyName", "PublicKeyMaterial", "DryRun",
                         "TagSpecification.#.ResourceType", "TagSpecification.#.Tag.#.(Key|Value)"])
        self.dry_run(p)
        name = require(p, "KeyName")
        material = require(p, "PublicKeyMaterial")
        try:
            pub = base64.b64decode(material, validate=True).decode()
        except Exception:
            pub = material
        if not re.match(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-\S+) [A-Za-z0-9+/=]+", pub.strip()):
            raise invalid("Key is not in valid OpenSSH public key format")
        kp = KeyPair(name, pub, "rsa" if pub.startswith("ssh-rsa") else "ed25519")
        with self.lock:
            if name in account.key_pairs:
                raise ApiError("InvalidKeyPair.Duplicate", f"The keypair '{name}' already exists.")
            account.key_pairs[name] = kp
        return [("keyName", name), ("keyFingerprint", kp.fingerprint), ("keyPairId", kp.id)]

    def act_DeleteKeyPair(self, account, p):
        check_params(p, ["KeyName", "KeyPairId", "DryRun"])
        self.dry_run(p)
        name, kid = p.get("KeyName"), p.get("KeyPairId")
        if not name and not kid:
            raise missing("KeyName")
        with self.lock:
            for n, kp in list(account.key_pairs.items()):
                if n == name or kp.id == kid:
                    del account.key_pairs[n]
        return [("return", True)]

    def act_DescribeKeyPairs(self, account, p):
        check_params(p, ["KeyName.#", "KeyPairId.#", "IncludePublicKey", "DryRun",
                         "Filter.#.Name", "Filter.#.Value.#"])
        self.dry_run(p)
        filters = parse_filters(p, ["key-name", "key-pair-id", "fingerprint", "key-type"])
        names, ids = indexed(p, "KeyName"), indexed(p, "KeyPairId")
        include_pub = get_bool(p, "IncludePublicKey")
        with self.lock:
            kps = list(account.key_pairs.values())
        for n in names:
            if not any(k.name == n for k in kps):
                raise ApiError("InvalidKeyPair.NotFound", f"The key pair '{n}' does not exist")
        for i in ids:
            if not any(k.id == i for k in kps):
                raise ApiError("InvalidKeyPair.NotFound", f"The key pair ID '{i}' does not exist")
        items = []
        for k in kps:
            if (names or ids) and k.name not in names and k.id not in ids:
                continue
            attrs = {"key-name": k.name, "key-pair-id": k.id, "fingerprint": k.fingerprint,
                     "key-type": k.key_type}
            if not all(any_match(v, [attrs[n]]) for n, v in filters):
                continue
            items.append(("item", [("keyPairId", k.id), ("keyName", k.name),
                                   ("keyFingerprint", k.fingerprint), ("keyType", k.key_type),
                                   ("publicKey", k.public_key if include_pub else None),
                                   ("createTime", iso_time(k.created))]))
        return [("keySet", items)]

    def act_CreateSecurityGroup(self, account, p):
        check_params(p, ["GroupName", "GroupDescription", "VpcId", "DryRun",
                         "TagSpecification.#.ResourceType", "TagSpecification.#.Tag.#.(Key|Value)"])
        self.dry_run(p)
        name = require(p, "GroupName")
        desc = require(p, "GroupDescription")
        if name.lower().startswith("sg-") or len(name) > 255:
            raise invalid(f"Invalid value '{name}' for GroupName")
        with self.lock:
            if any(g.name == name for g in account.groups.values()):
                raise ApiError("InvalidGroup.Duplicate",
                               f"The security group '{name}' already exists for VPC 'vpc-0d0ub1e000000000'")
            gid = "sg-" + hex17()
            account.groups[gid] = SecurityGroup(gid, name, desc, account.owner_id)
        return [("return", True), ("groupId", gid)]

    def _group_from_params(self, account, p):
        gid, name = p.get("GroupId"), p.get("GroupName")
        if not gid and not name:
            raise missing("GroupId")
        return self.group_by_ref(account, gid=gid) if gid else self.group_by_ref(account, name=name)

    def act_AuthorizeSecurityGroupIngress(self, account, p):
        check_params(p, ["GroupId", "GroupName", "IpProtocol", "FromPort", "ToPort", "CidrIp",
                         "DryRun", "IpPermissions.#.(IpProtocol|FromPort|ToPort)",
                         "IpPermissions.#.IpRanges.#.(CidrIp|Description)"])
        self.dry_run(p)
        perms = []
        for ip in indexed_struct(p, "IpPermissions"):
            ranges = [r.get("CidrIp") for r in indexed_struct(ip, "IpRanges")]
            perms.append((ip.get("IpProtocol"), ip.get("FromPort"), ip.get("ToPort"), ranges))
        if any(k in p for k in ("IpProtocol", "FromPort", "ToPort", "CidrIp")):
            perms.append((p.get("IpProtocol"), p.get("FromPort"), p.get("ToPort"),
                          [p["CidrIp"]] if "CidrIp" in p else []))
        if not perms:
            raise missing("IpPermissions")
        rules = []
        for proto, fp, tp, ranges in perms:
            if not proto:
                raise missing("IpPermissions.N.IpProtocol")
            proto = proto.lower()
            proto = {"6": "tcp", "17": "udp", "1": "icmp", "all": "-1"}.get(proto, proto)
            if proto not in ("tcp", "udp", "icmp", "-1"):
                raise invalid(f"Invalid value '{proto}' for IP protocol. Unknown protocol.")
            try:
                fpi = int(fp) if fp is not None else None
                tpi = int(tp) if tp is not None else None
            except ValueError:
                raise invalid("Invalid value for portRange")
            if proto in ("tcp", "udp"):
                if fpi is None or tpi is None or not (0 <= fpi <= tpi <= 65535):
                    raise invalid("Invalid value for portRange. Must specify both from and to ports with TCP/UDP.")
            if proto == "-1":
                fpi = tpi = None
            for c in ranges:
                if not c:
                    raise missing("IpPermissions.N.IpRanges.N.CidrIp")
                try:
                    ipaddress.IPv4Network(c, strict=False)
                    if "/" not in c:
                        raise ValueError
                except ValueError:
                    raise invalid(f"CIDR block {c} is malformed")
            rules.append((proto, fpi, tpi, list(ranges)))
        with self.lock:
            g = self._group_from_params(account, p)
            for r in rules:
                for c in r[3]:
                    for ex in g.rules:
                        if ex[:3] == r[:3] and c in ex[3]:
                            raise ApiError("InvalidPermission.Duplicate",
                                           f'the specified rule "peer: {c}, {r[0].upper()}, from port: '
                                           f'{r[1]}, to port: {r[2]}, ALLOW" already exists')
            for r in rules:
                for ex in g.rules:
                    if ex[:3] == r[:3]:
                        ex[3].extend(r[3])
                        break
                else:
                    g.rules.append(r)
        return [("return", True)]

    def act_DescribeSecurityGroups(self, account, p):
        check_params(p, ["GroupName.#", "GroupId.#", "MaxResults", "NextToken", "DryRun",
                         "Filter.#.Name", "Filter.#.Value.#"])
        self.dry_run(p)
        filters = parse_filters(p, ["group-name", "group-id", "description", "owner-id", "vpc-id"])
        names, ids = indexed(p, "GroupName"), indexed(p, "GroupId")
        with self.lock:
            for n in names:
                self.group_by_ref(account, name=n)
            for i in ids:
                self.group_by_ref(account, gid=i)
            items = []
            for g in account.groups.values():
                if (names or ids) and g.name not in names and g.id not in ids:
                    continue
                attrs = {"group-name": g.name, "group-id": g.id, "description": g.description,
                         "owner-id": g.owner, "vpc-id": "vpc-0d0ub1e000000000"}
                if not all(any_match(v, [attrs[n]]) for n, v in filters):
                    continue
                perms = []
                for proto, fp, tp, ranges in g.rules:
                    perms.append(("item", [
                        ("ipProtocol", proto),
                        ("fromPort", fp),
                        ("toPort", tp),
                        ("groups", []),
                        ("ipRanges", [("item", [("cidrIp", c)]) for c in ranges]),
                        ("ipv6Ranges", []),
                        ("prefixListIds", []),
                    ]))
                items.append(("item", [
                    ("ownerId", g.owner),
                    ("groupId", g.id),
                    ("groupName", g.name),
                    ("groupDescription", g.description),
                    ("ipPermissions", perms),
                    ("ipPermissionsEgress", [("item", [
                        ("ipProtocol", "-1"), ("groups", []),
                        ("ipRanges", [("item", [("cidrIp", "0.0.0.0/0")])]),
                        ("ipv6Ranges", []), ("prefixListIds", [])])]),
                    ("vpcId", "vpc-0d0ub1e000000000"),
                ]))
        return [("securityGroupInfo", items)]

    def act_DeleteSecurityGroup(self, account, p):
        check_params(p, ["GroupId", "GroupName", "DryRun"])
        self.dry_run(p)
        with self.lock:
            g = self._group_from_params(account, p)
            if g.id == DEFAULT_GROUP_ID:
                raise ApiError("CannotDelete", f"the specified group: \"{g.id}\" name: \"default\" cannot be deleted by a user")
            for inst in self.account_instances(account):
                if inst.state != "terminated" and g in inst.groups:
                    raise ApiError("DependencyViolation", f"resource {g.id} has a dependent object")
            del account.groups[g.id]
        return [("return", True)]

    def act_RunInstances(self, account, p):
        check_params(p, ["ImageId", "MinCount", "MaxCount", "InstanceType", "KeyName",
                         "SecurityGroupId.#", "SecurityGroup.#", "UserData", "ClientToken",
                         "DryRun", "Placement.AvailabilityZone", "Monitoring.Enabled",
                         "EbsOptimized", "InstanceInitiatedShutdownBehavior",
                         "TagSpecification.#.ResourceType",
                         "TagSpecification.#.Tag.#.(Key|Value)"])
        image_id = require(p, "ImageId")
        min_count = get_int(p, "MinCount", lo=1, hi=100)
        max_count = get_int(p, "MaxCount", lo=1, hi=100)
        if min_count is None:
            raise missing("MinCount")
        if max_count is None:
            raise missing("MaxCount")
        if min_count > max_count:
            raise invalid("MinCount must be less than or equal to MaxCount")
        itype = p.get("InstanceType", "m1.small")
        if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", itype):
            raise invalid(f"Invalid value '{itype}' for InstanceType.")
        az = p.get("Placement.AvailabilityZone") or f"{self.args.region}a"
        if not re.fullmatch(re.escape(self.args.region) + r"[a-z]", az):
            raise invalid(f"Invalid availability zone: [{az}]")
        if p.get("InstanceInitiatedShutdownBehavior", "stop") not in ("stop", "terminate"):
            raise invalid("Invalid value for InstanceInitiatedShutdownBehavior")
        tags = {}
        for ts in indexed_struct(p, "TagSpecification"):
            rtype = ts.get("ResourceType")
            if not rtype:
                raise missing("TagSpecification.N.ResourceType")
            t = parse_tags(indexed_struct(ts, "Tag"), "TagSpecification.N.Tag.N")
            if rtype == "instance":
                tags.update(t)
            elif rtype not in ("volume", "network-interface"):
                raise invalid(f"'{rtype}' is not a valid taggable resource type for this operation.")
        if not re.fullmatch(r"ami-[0-9a-f]{8,17}", image_id):
            raise ApiError("InvalidAMIID.Malformed", f'Invalid id: "{image_id}" (expecting "ami-...")')
        if image_id not in self.images:
            raise ApiError("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")
        with self.lock:
            key_name = p.get("KeyName") or None
            kp = None
            if key_name is not None:
                kp = account.key_pairs.get(key_name)
                if kp is None:
                    raise ApiError("InvalidKeyPair.NotFound", f"The key pair '{key_name}' does not exist")
            groups = []
            for gid in indexed(p, "SecurityGroupId"):
                groups.append(self.group_by_ref(account, gid=gid))
            for name in indexed(p, "SecurityGroup"):
                groups.append(self.group_by_ref(account, name=name))
            if not groups:
                groups = [account.groups[DEFAULT_GROUP_ID]]
            seen, uniq = set(), []
            for g in groups:
                if g.id not in seen:
                    seen.add(g.id)
                    uniq.append(g)
            groups = uniq
            self.dry_run(p)
            # EC2's idempotency: a ClientToken seen before in this account
            # answers with the instances that token launched, launching none.
            token = p.get("ClientToken", "")
            if token:
                prior = [self.instances[i] for i in self.order
                         if self.instances[i].account is account
                         and self.instances[i].client_token == token]
                if prior:
                    return [("reservationId", prior[0].reservation),
                            ("ownerId", account.owner_id),
                            ("groupSet", [("item", [("groupId", g.id), ("groupName", g.name)])
                                          for g in prior[0].groups]),
                            ("instancesSet", [self.instance_xml(i) for i in prior])]
            if self.insufficient > 0:
                self.insufficient -= 1
                raise ApiError(
                    "InsufficientInstanceCapacity",
                    f"We currently do not have sufficient capacity in the Availability Zone you "
                    f"requested ({az}). Our system will be working on provisioning additional "
                    f"capacity. You can currently get {itype} capacity by not specifying an "
                    f"Availability Zone in your request or choosing a different one.", 500)
            res_id = "r-" + hex17()
            now = time.time()
            insts = []
            for n in range(max_count):
                iid = "i-" + hex17()
                inst = Instance(id=iid, account=account, reservation=res_id, image_id=image_id,
                                key_name=key_name, instance_type=itype, launch_index=n,
                                launch_time=now, az=az, groups=groups, tags=dict(tags),
                                client_token=p.get("ClientToken", ""))
                no_sshd = self.no_sshd > 0
                if no_sshd:
                    self.no_sshd -= 1
                inst.no_sshd = no_sshd
                self.instances[iid] = inst
                self.order.append(iid)
                insts.append(inst)
        docker_image = self.images[image_id][1]
        pub = kp.public_key if kp else ""
        for inst in insts:
            log(f"launching {inst.id} ({image_id} -> {docker_image}"
                f"{', NO_SSHD' if inst.no_sshd else ''})")
            threading.Thread(target=self.launch, args=(inst, docker_image, pub, inst.no_sshd),
                             name=f"launch-{inst.id}", daemon=True).start()
        with self.lock:
            return [("reservationId", res_id), ("ownerId", account.owner_id),
                    ("groupSet", [("item", [("groupId", g.id), ("groupName", g.name)])
                                  for g in groups]),
                    ("instancesSet", [self.instance_xml(i) for i in insts])]

    INSTANCE_FILTERS = ["instance-state-name", "instance-state-code", "tag:", "tag-key",
                        "tag-value", "instance-id", "image-id", "key-name", "instance-type",
                        "reservation-id", "private-ip-address", "ip-address",
                        "availability-zone", "instance.group-id", "instance.group-name"]

    def _instance_attr(self, inst, name):
        if name.startswith("tag:"):
            k = name[4:]
            return [inst.tags[k]] if k in inst.tags else []
        live_ip = [inst.ip] if inst.ip and inst.state != "terminated" else []
        return {
            "instance-state-name": [inst.state],
            "instance-state-code": [str(STATE_CODES[inst.state])],
            "tag-key": list(inst.tags.keys()),
            "tag-value": list(inst.tags.values()),
            "instance-id": [inst.id],
            "image-id": [inst.image_id],
            "key-name": [inst.key_name] if inst.key_name else [],
            "instance-type": [inst.instance_type],
            "reservation-id": [inst.reservation],
            "private-ip-address": live_ip,
            "ip-address": live_ip,
            "availability-zone": [inst.az],
            "instance.group-id": [g.id for g in inst.groups],
            "instance.group-name": [g.name for g in inst.groups],
        }[name]

    def act_DescribeInstances(self, account, p):
        check_params(p, ["InstanceId.#", "MaxResults", "NextToken", "DryRun",
                         "Filter.#.Name", "Filter.#.Value.#"])
        self.dry_run(p)
        filters = parse_filters(p, self.INSTANCE_FILTERS)
        ids = indexed(p, "InstanceId")
        max_results = get_int(p, "MaxResults")
        if max_results is not None:
            if ids:
                raise invalid("The parameter instancesSet cannot be used with the parameter maxResults")
            if not 5 <= max_results <= 1000:
                raise invalid(f"Value ( {max_results} ) for parameter maxResults is invalid. "
                              "Expecting a value greater than 5.")
        offset = 0
        if p.get("NextToken"):
            try:
                offset = int(base64.urlsafe_b64decode(p["NextToken"]).decode().split(":")[1])
            except Exception:
                raise invalid("The NextToken value is invalid")
        with self.lock:
            insts = self.find_instances(account, ids) if ids else self.account_instances(account)
            insts = [i for i in insts
                     if all(any_match(v, self._instance_attr(i, n)) for n, v in filters)]
            next_token = None
            if max_results is not None:
                page = insts[offset:offset + max_results]
                if offset + max_results < len(insts):
                    next_token = base64.urlsafe_b64encode(
                        f"o:{offset + max_results}".encode()).decode()
                insts = page
            reservations = {}
            for i in insts:
                reservations.setdefault(i.reservation, []).append(i)
            items = [self.reservation_xml(r, account.owner_id, lst[0].groups, lst)
                     for r, lst in reservations.items()]
            return [("reservationSet", items), ("nextToken", next_token)]

    def act_TerminateInstances(self, account, p):
        check_params(p, ["InstanceId.#", "DryRun"])
        ids = indexed(p, "InstanceId")
        if not ids:
            raise missing("InstanceId")
        items = []
        with self.lock:
            insts = self.find_instances(account, ids)
            self.dry_run(p)
            for inst in insts:
                prev = inst.state
                if prev in ("pending", "running"):
                    inst.state = "shutting-down"
                    inst.reason = f"User initiated ({gmt_time(time.time())})"
                    threading.Thread(target=self.terminate_bg, args=(inst,),
                                     name=f"terminate-{inst.id}", daemon=True).start()
                items.append(("item", [
                    ("instanceId", inst.id),
                    ("currentState", [("code", STATE_CODES[inst.state]), ("name", inst.state)]),
                    ("previousState", [("code", STATE_CODES[prev]), ("name", prev)]),
                ]))
        return [("instancesSet", items)]

    def _tag_targets(self, account, p):
        ids = indexed(p, "ResourceId")
        if not ids:
            raise missing("ResourceId")
        for r in ids:
            if not r.startswith("i-"):
                raise ApiError("InvalidID", f'The ID \'{r}\' is not valid (this double tags instances only)')
        return self.find_instances(account, ids)

    def act_CreateTags(self, account, p):
        check_params(p, ["ResourceId.#", "Tag.#.(Key|Value)", "DryRun"])
        tags = parse_tags(indexed_struct(p, "Tag"), "Tag.N")
        if not tags:
            raise missing("Tag")
        with self.lock:
            insts = self._tag_targets(account, p)
            self.dry_run(p)
            for inst in insts:
                inst.tags.update(tags)
        return [("return", True)]

    def act_DeleteTags(self, account, p):
        check_params(p, ["ResourceId.#", "Tag.#.(Key|Value)", "DryRun"])
        specs = indexed_struct(p, "Tag")
        with self.lock:
            insts = self._tag_targets(account, p)
            self.dry_run(p)
            for inst in insts:
                if not specs:
                    inst.tags.clear()
                for t in specs:
                    k = t.get("Key")
                    if k in inst.tags and ("Value" not in t or inst.tags[k] == t["Value"]):
                        del inst.tags[k]
        return [("return", True)]

    # -- control ------------------------------------------------------------

    def stats(self):
        with self.lock:
            insts = {}
            for iid in self.order:
                i = self.instances[iid]
                self.refresh(i)
                insts[iid] = {
                    "state": i.state,
                    "account": i.account.access_key,
                    "container": i.container,
                    "containerName": self.container_name(iid),
                    "ip": i.ip,
                    "imageId": i.image_id,
                    "keyName": i.key_name,
                    "tags": dict(i.tags),
                    "noSshd": i.no_sshd,
                    "stateReason": i.state_reason[0] if i.state_reason else None,
                    "visible": self.visible(i),
                }
            return {"calls": dict(self.calls), "errors": dict(self.errors),
                    "pending": {"throttle": self.throttle, "insufficientCapacity": self.insufficient,
                                "noSshd": self.no_sshd},
                    "label": self.label, "instances": insts}

    def control(self, body):
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        known = {"throttle", "insufficientCapacity", "noSshd", "killInstance", "reset"}
        unknown = set(body) - known
        if unknown:
            raise ValueError(f"unknown keys: {sorted(unknown)}")
        for k in ("throttle", "insufficientCapacity", "noSshd"):
            if k in body and (not isinstance(body[k], int) or isinstance(body[k], bool) or body[k] < 0):
                raise ValueError(f"{k} must be a non-negative integer")
        if body.get("reset"):
            with self.lock:
                self.calls.clear()
                self.errors.clear()
                self.throttle = self.insufficient = self.no_sshd = 0
        with self.lock:
            if "throttle" in body:
                self.throttle = body["throttle"]
            if "insufficientCapacity" in body:
                self.insufficient = body["insufficientCapacity"]
            if "noSshd" in body:
                self.no_sshd = body["noSshd"]
        if "killInstance" in body:
            if not self.kill_instance(str(body["killInstance"])):
                raise KeyError(f"no instance {body['killInstance']}")
        log(f"control: {json.dumps(body)}")

    # -- dispatch ------------------------------------------------------------

    def handle_api(self, method, raw_path, headers, body):
        """Returns (status, xml, action, access_key, code)."""
        request_id = str(uuid.uuid4())
        action, access_key = "-", "-"
        try:
            access_key = verify_sigv4(method, raw_path, headers, body, self.accounts,
                                      self.args.region)
            query = urllib.parse.urlsplit(raw_path).query
            pairs = parse_raw_query(query)
            if method == "POST":
                ctype = headers.get("Content-Type", "")
                if body and not ctype.lower().startswith("application/x-www-form-urlencoded"):
                    raise invalid("Content-Type must be application/x-www-form-urlencoded")
                pairs += parse_raw_query(body.decode("utf-8", "replace"))
            params = {}
            for k, v in pairs:
                if k in params:
                    raise invalid(f"The parameter {k} was specified more than once")
                params[k] = v
            action = params.get("Action") or "-"
            with self.lock:
                self.calls[action] = self.calls.get(action, 0) + 1
                if self.throttle > 0:
                    self.throttle -= 1
                    raise ApiError("RequestLimitExceeded", "Request limit exceeded.", 503)
            if action == "-":
                raise missing("Action")
            handler = getattr(self, "act_" + action, None)
            if handler is None or not re.fullmatch(r"[A-Z][A-Za-z]+", action):
                raise ApiError("InvalidAction", f"The action {action} is not valid for this web service.")
            version = params.get("Version")
            if not version:
                raise missing("Version")
            if version != API_VERSION:
                raise invalid(f"This double only speaks API version {API_VERSION}, not {version}")
            account = self.accounts[access_key]
            children = handler(account, params)
            return 200, response_xml(action, request_id, children), action, access_key, "OK"
        except ApiError as e:
            with self.lock:
                self.errors[e.code] = self.errors.get(e.code, 0) + 1
            return e.status, error_xml(e.code, e.message, request_id), action, access_key, e.code
        except Exception as e:  # a bug in the double: say so loudly
            import traceback
            traceback.print_exc()
            return (500, error_xml("InternalError", f"An internal error has occurred ({e})", request_id),
                    action, access_key, "InternalError")


# ---------------------------------------------------------------------------
# HTTP


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AmazonEC2"
    sys_version = ""
    double = None  # set in main

    def log_message(self, fmt, *args):
        pass

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > 16 * 1024 * 1024:
            raise ValueError("bad Content-Length")
        return self.rfile.read(n) if n else b""

    def send(self, status, body, ctype):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        t0 = time.monotonic()
        try:
            body = self.read_body()
        except (ValueError, OSError):
            self.send(400, "bad request body\n", "text/plain")
            self.close_connection = True
            return
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_control" or path.startswith("/_control/"):
            return self.handle_control(method, path, body)
        status, xml, action, ak, code = self.double.handle_api(method, self.path, self.headers, body)
        self.send(status, xml, "text/xml;charset=UTF-8")
        log(f"{method} {action} key={ak} -> {status} {code} ({(time.monotonic() - t0) * 1000:.0f} ms)")

    def handle_control(self, method, path, body):
        d = self.double
        if method == "GET" and path == "/_control/stats":
            return self.send(200, json.dumps(d.stats(), indent=1) + "\n", "application/json")
        if method == "GET" and path == "/_control/health":
            return self.send(200, '{"ok": true}\n', "application/json")
        if method == "POST" and path == "/_control":
            try:
                d.control(json.loads(body or b"{}"))
            except KeyError as e:
                return self.send(404, json.dumps({"ok": False, "error": str(e.args[0])}) + "\n",
                                 "application/json")
            except ValueError as e:
                return self.send(400, json.dumps({"ok": False, "error": str(e)}) + "\n",
                                 "application/json")
            return self.send(200, '{"ok": true}\n', "application/json")
        self.send(404, '{"ok": false, "error": "no such control endpoint"}\n', "application/json")

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description="EC2 Query API test double backed by Docker")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--access-key2")
    ap.add_argument("--secret2")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--image", action="append", default=[], required=True,
                    help="ami-ID=NAME=DOCKERIMAGE (repeatable)")
    ap.add_argument("--init-script", required=True)
    ap.add_argument("--key-pair", action="append", default=[],
                    help="NAME=PUBKEYFILE (repeatable; loaded into every account)")
    ap.add_argument("--login-user", default="tango")
    ap.add_argument("--running-delay", type=float, default=0.5)
    ap.add_argument("--docker", default="/usr/bin/docker")
    ap.add_argument("--label-value")
    args = ap.parse_args()
    if bool(args.access_key2) != bool(args.secret2):
        ap.error("--access-key2 and --secret2 go together")
    if args.access_key2 == args.access_key:
        ap.error("--access-key2 must differ from --access-key")
    args.init_script = os.path.abspath(args.init_script)
    if not os.path.isfile(args.init_script):
        ap.error(f"no init script {args.init_script}")

    double = Double(args)
    Handler.double = double
    server = Server(("127.0.0.1", args.port), Handler)
    port = server.server_address[1]

    cleaned = []

    def cleanup():
        if cleaned:
            return
        cleaned.append(True)
        double.cleanup()
        try:
            with open(args.port_file) as f:
                if f.read().strip() == str(port):
                    os.unlink(args.port_file)
        except OSError:
            pass

    atexit.register(cleanup)

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    tmp = f"{args.port_file}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, args.port_file)
    log(f"listening on http://127.0.0.1:{port} (region {args.region}, label "
        f"tango.ec2double={double.label}, {len(double.accounts)} account(s), "
        f"{len(double.images)} image(s))")
    try:
        server.serve_forever(poll_interval=0.2)
    except SystemExit:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log("shutting down")
        server.server_close()
        cleanup()


if __name__ == "__main__":
    main()
