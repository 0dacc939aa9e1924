#!/bin/sh
# PID 1 of a test "instance": a container of the tango-test-ssh image (built
# by tango-image as the EC2 guide builds an AMI: OpenSSH server, sudo, the
# autodriver at /usr/bin/autodriver, an `autograde` user) that becomes a
# machine to SSH into, as cloud-init makes an EC2 instance:
#   LOGIN_USER      the account the service logs in as (EC2_USER_NAME),
#                   made with passwordless sudo unless it is root
#   AUTHORIZED_KEY  the public key that may log in as it
#   GRADING_USERS   more grading users to make besides autograde
#   NO_SSHD=1       never start sshd (an instance that never answers SSH)
set -eu
[ "${NO_SSHD:-0}" = 1 ] && exec sleep infinity
for g in ${GRADING_USERS:-}; do
  id "$g" >/dev/null 2>&1 || useradd -m -s /bin/sh "$g"
done
user=${LOGIN_USER:-tango}
if [ "$user" = root ]; then
  home=/root
else
  id "$user" >/dev/null 2>&1 || useradd -m -s /bin/sh "$user"
  home=$(getent passwd "$user" | cut -d: -f6)
  echo "$user ALL=(ALL) NOPASSWD: ALL" >/etc/sudoers.d/tango-login
  chmod 0440 /etc/sudoers.d/tango-login
fi
mkdir -p "$home/.ssh"
printf '%s\n' "$AUTHORIZED_KEY" >"$home/.ssh/authorized_keys"
chown -R "$user" "$home/.ssh"
chmod 0700 "$home/.ssh"
chmod 0600 "$home/.ssh/authorized_keys"
ssh-keygen -A >/dev/null
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
