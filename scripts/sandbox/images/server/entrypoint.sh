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
# The hierarchies are the machine's (cgroup v1, bind-mounted): keep this server's containers apart.
storage=${QCLOUD_DOCKER_STORAGE:-overlay2}
# A restart (the outer engine's, or the machine's) keeps this container's files: nothing of the last dockerd runs
# now, but its pid files would stop the new one ("pid file found").
rm -rf /var/run/docker.pid /var/run/docker.sock /var/run/docker
echo "starting dockerd (storage driver $storage, log /var/log/dockerd.log)"
dockerd --storage-driver "$storage" --cgroup-parent "/qcloud-sandbox-$(hostname)" >>/var/log/dockerd.log 2>&1 &
# Debian's cron daemonizes; no syslog here, so it logs nothing and mails nothing: jobs keep their own logs.
echo "starting cron"
cron
echo "starting sshd"
exec /usr/sbin/sshd -D -e
