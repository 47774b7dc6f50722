#!/bin/sh
# PID 1's child (under tini) in a sandbox hcloud server: a VM's boot, in the order a Hetzner server runs it.
set -eu
seed=/var/lib/cloud/seed/nocloud
log=/var/log/cloud-init-output.log
# Hetzner's image puts the server's SSH keys on root.
install -m 600 "$seed/authorized_keys" /root/.ssh/authorized_keys
# The firewalls applied to the server filter its public interface before anything listens.
qcloud-firewall "$seed/firewall.rules"
# cloud-init's early stages run before sshd, so the first SSH connection already sees the host key they install
# (cc_ssh). Per instance: a restart of the server skips what already ran, as on a VM.
cloud-init init --local >>"$log" 2>&1
cloud-init init >>"$log" 2>&1
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
# What systemd would start at boot: the units enabled so far (Docker, once cloud-init's runcmd enabled it).
for unit in $(cat /etc/qcloud-enabled-units 2>/dev/null); do systemctl start "$unit"; done
cron
# The late stages (packages, runcmd) run after sshd is up, as cloud-final does: `cloud-init status --wait` says
# when they are done.
# A failed module in one stage does not stop the next (systemd runs cloud-final whatever cloud-config did).
(cloud-init modules --mode config; cloud-init modules --mode final) >>"$log" 2>&1 &
echo "starting sshd"
exec /usr/sbin/sshd -D -e
