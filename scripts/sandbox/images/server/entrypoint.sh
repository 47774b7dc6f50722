#!/bin/sh
# PID 1's child (under tini) in a sandbox server: authorizes the key, starts dockerd and cron, runs sshd.
set -eu
[ -n "${QCLOUD_AUTHORIZED_KEY:-}" ] || { echo "QCLOUD_AUTHORIZED_KEY is not set: nobody could log in" >&2; exit 1; }
printf '%s\n' "$QCLOUD_AUTHORIZED_KEY" >/root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
# One host key, ed25519: handed in by server.sh (stable across re-creation), else made here.
if [ -f /etc/ssh/qcloud-host-keys/ssh_host_ed25519_key ]; then
  install -m 600 /etc/ssh/qcloud-host-keys/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key
  install -m 644 /etc/ssh/qcloud-host-keys/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ed25519_key.pub
elif [ ! -f /etc/ssh/ssh_host_ed25519_key ]; then
  ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
fi
qcloud-start-dockerd
# Debian's cron daemonizes; no syslog here, so it logs nothing and mails nothing: jobs keep their own logs.
echo "starting cron"
cron
echo "starting sshd"
exec /usr/sbin/sshd -D -e
