#!/bin/bash
# Hand-run smoke test of ec2_double.py with Debian's awscli (/usr/bin/aws):
# starts the double, drives a whole instance lifecycle through awscli
# (signed POST requests), SSHes into the instance with a key pair made by
# CreateKeyPair, checks errors and fault injection, then stops the double and
# checks that it removed its containers.  Needs dockerd and the image
# tango-test-ssh (falls back to tango-test-minimal, without the SSH check).
# Traffic goes only to 127.0.0.1 and to the containers on Docker's bridge.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
AWS=/usr/bin/aws
DOCKER=${DOCKER:-/usr/bin/docker}
work=$(mktemp -d /tmp/ec2-smoke.XXXXXX)
label="smoke-$$"
pid=

stop_double() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" || true
  fi
  pid=
}
cleanup() {
  stop_double
  # belt and braces: nothing of ours may outlive the script
  ids=$("$DOCKER" ps -aq --filter "label=tango.ec2double=$label" || true)
  [ -z "$ids" ] || "$DOCKER" rm -f $ids >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; echo "--- double's log:" >&2; cat "$work/double.log" >&2; exit 1; }
pass() { echo "ok - $*"; }

image=tango-test-ssh
if ! "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
  image=tango-test-minimal
  echo "note: tango-test-ssh missing; using $image, SSH check skipped"
fi
ami=ami-0123456789abcdef0

ssh-keygen -q -t ed25519 -N '' -C preloaded -f "$work/pre" </dev/null
/usr/bin/python3 "$here/ec2_double.py" \
  --port-file "$work/port" \
  --access-key AKIDSMOKE1 --secret smoke-secret-1 \
  --access-key2 AKIDSMOKE2 --secret2 smoke-secret-2 \
  --region us-east-1 \
  --image "$ami=tango-test-ssh=$image" \
  --init-script "$root/tests/ssh/instance-init.sh" \
  --key-pair "preloaded=$work/pre.pub" \
  --login-user tango --running-delay 0.5 \
  --docker "$DOCKER" --label-value "$label" \
  2>"$work/double.log" &
pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || fail "double did not write its port file"
port=$(cat "$work/port")
E=(--endpoint-url "http://127.0.0.1:$port" --region us-east-1)
ctl="http://127.0.0.1:$port/_control"

export AWS_ACCESS_KEY_ID=AKIDSMOKE1 AWS_SECRET_ACCESS_KEY=smoke-secret-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION AWS_REGION || true
aws() { "$AWS" "$@"; }

# --- read-only calls
r=$(aws ec2 describe-regions "${E[@]}" --query 'Regions[0].RegionName' --output text)
[ "$r" = us-east-1 ] || fail "describe-regions said $r"; pass describe-regions
r=$(aws ec2 describe-images "${E[@]}" --owners self --filters Name=name,Values=tango-test-* \
      --query 'Images[0].[ImageId,State]' --output text)
[ "$r" = "$ami	available" ] || fail "describe-images said $r"; pass describe-images
if aws ec2 describe-images "${E[@]}" --image-ids ami-00000000000000000 2>"$work/err"; then
  fail "unknown AMI described"; fi
grep -q InvalidAMIID.NotFound "$work/err" || fail "unknown AMI: $(cat "$work/err")"
pass "describe-images of an unknown AMI: InvalidAMIID.NotFound"

# --- authentication
if AWS_SECRET_ACCESS_KEY=wrong aws ec2 describe-regions "${E[@]}" 2>"$work/err" >/dev/null; then
  fail "wrong secret accepted"; fi
grep -q AuthFailure "$work/err" || fail "wrong secret: $(cat "$work/err")"
pass "wrong secret: AuthFailure"
if AWS_ACCESS_KEY_ID=AKIDUNKNOWN aws ec2 describe-regions "${E[@]}" 2>"$work/err" >/dev/null; then
  fail "unknown key accepted"; fi
grep -q AuthFailure "$work/err" || fail "unknown key: $(cat "$work/err")"
pass "unknown access key: AuthFailure"
if aws ec2 describe-regions --endpoint-url "http://127.0.0.1:$port" --region us-west-2 \
     2>"$work/err" >/dev/null; then fail "wrong region accepted"; fi
pass "wrong region in the credential scope: refused"

# --- key pair and security group
aws ec2 create-key-pair "${E[@]}" --key-name smoke --query KeyMaterial --output text >"$work/smoke.pem"
chmod 0600 "$work/smoke.pem"
grep -q 'BEGIN OPENSSH PRIVATE KEY' "$work/smoke.pem" || fail "keyMaterial is not a private key"
if aws ec2 create-key-pair "${E[@]}" --key-name smoke 2>"$work/err" >/dev/null; then
  fail "duplicate key pair made"; fi
grep -q InvalidKeyPair.Duplicate "$work/err" || fail "duplicate key: $(cat "$work/err")"
r=$(aws ec2 describe-key-pairs "${E[@]}" --query 'sort(KeyPairs[].KeyName)' --output text)
[ "$r" = "preloaded	smoke" ] || fail "describe-key-pairs said $r"; pass "key pairs"
sg=$(aws ec2 create-security-group "${E[@]}" --group-name smoke-ssh --description "SSH in" \
       --query GroupId --output text)
aws ec2 authorize-security-group-ingress "${E[@]}" --group-id "$sg" --protocol tcp --port 22 \
  --cidr 0.0.0.0/0 >/dev/null
r=$(aws ec2 describe-security-groups "${E[@]}" --filters Name=group-name,Values=smoke-ssh \
      --query 'SecurityGroups[0].IpPermissions[0].[IpProtocol,FromPort,ToPort,IpRanges[0].CidrIp]' \
      --output text)
[ "$r" = "tcp	22	22	0.0.0.0/0" ] || fail "describe-security-groups said $r"; pass "security group"

# --- fault injection: throttling and capacity (no retries, to see the error)
curl -sf -X POST -d '{"throttle": 1}' "$ctl" >/dev/null
if AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard aws ec2 describe-regions "${E[@]}" \
     2>"$work/err" >/dev/null; then fail "throttle ignored"; fi
grep -q RequestLimitExceeded "$work/err" || fail "throttle: $(cat "$work/err")"
pass "throttle: RequestLimitExceeded"
curl -sf -X POST -d '{"insufficientCapacity": 1}' "$ctl" >/dev/null
if AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard aws ec2 run-instances "${E[@]}" --image-id "$ami" \
     --count 1 --key-name smoke 2>"$work/err" >/dev/null; then fail "capacity ignored"; fi
grep -q InsufficientInstanceCapacity "$work/err" || fail "capacity: $(cat "$work/err")"
pass "insufficientCapacity: InsufficientInstanceCapacity"

# --- an instance's life
iid=$(aws ec2 run-instances "${E[@]}" --image-id "$ami" --count 1 --instance-type t2.micro \
        --key-name smoke --security-group-ids "$sg" \
        --tag-specifications 'ResourceType=instance,Tags=[{Key=Name,Value=smoke},{Key=tango-job,Value=j1}]' \
        --query 'Instances[0].InstanceId' --output text)
[[ "$iid" =~ ^i-[0-9a-f]{17}$ ]] || fail "bad instance id $iid"
ip=
for _ in $(seq 120); do
  ip=$(aws ec2 describe-instances "${E[@]}" \
         --filters Name=tag:tango-job,Values=j1 Name=instance-state-name,Values=running \
         --query 'Reservations[].Instances[].PublicIpAddress' --output text)
  [ -n "$ip" ] && break
  sleep 0.5
done
[ -n "$ip" ] || fail "instance $iid never ran"
pass "run-instances $iid, running at $ip"
if AWS_ACCESS_KEY_ID=AKIDSMOKE2 AWS_SECRET_ACCESS_KEY=smoke-secret-2 \
   aws ec2 describe-instances "${E[@]}" --instance-ids "$iid" 2>"$work/err" >/dev/null; then
  fail "other account sees $iid"; fi
grep -q InvalidInstanceID.NotFound "$work/err" || fail "other account: $(cat "$work/err")"
pass "the second account does not see it"
if [ "$image" = tango-test-ssh ]; then
  ok=
  for _ in $(seq 30); do
    if ssh -i "$work/smoke.pem" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o BatchMode=yes -o ConnectTimeout=3 -o LogLevel=ERROR "tango@$ip" 'sudo -n true'; then
      ok=1; break; fi
    sleep 1
  done
  [ -n "$ok" ] || fail "could not ssh tango@$ip"
  pass "ssh tango@$ip with the CreateKeyPair key (and passwordless sudo)"
fi
r=$(aws ec2 terminate-instances "${E[@]}" --instance-ids "$iid" \
      --query 'TerminatingInstances[0].CurrentState.Name' --output text)
[ "$r" = shutting-down ] || [ "$r" = terminated ] || fail "terminate said $r"
st=
for _ in $(seq 60); do
  st=$(aws ec2 describe-instances "${E[@]}" --instance-ids "$iid" \
         --query 'Reservations[0].Instances[0].State.Name' --output text)
  [ "$st" = terminated ] && break
  sleep 0.5
done
[ "$st" = terminated ] || fail "instance $iid is $st, not terminated"
[ -z "$("$DOCKER" ps -aq --filter "label=tango.ec2double.instance=$iid")" ] \
  || fail "container of $iid still there"
pass "terminate-instances"

# --- counters
/usr/bin/python3 - "$ctl/stats" <<'EOF' || fail "stats"
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1]))
assert s["calls"]["RunInstances"] == 2, s["calls"]
assert s["calls"]["TerminateInstances"] == 1, s["calls"]
(inst,) = [i for i in s["instances"].values() if i["tags"].get("tango-job") == "j1"]
assert inst["state"] == "terminated" and inst["account"] == "AKIDSMOKE1", inst
EOF
pass "control stats"

# --- shutdown removes every container
aws ec2 run-instances "${E[@]}" --image-id "$ami" --count 2 --key-name preloaded >/dev/null
sleep 2
stop_double
[ -z "$("$DOCKER" ps -aq --filter "label=tango.ec2double=$label")" ] \
  || fail "containers left after SIGTERM"
[ ! -e "$work/port" ] || fail "port file left behind"
pass "SIGTERM removes the double's containers"
echo "awscli smoke: all passed"
