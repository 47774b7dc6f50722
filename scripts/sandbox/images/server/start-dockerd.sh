#!/bin/sh
# Starts the sandbox server's own Docker engine in the background (the entrypoint's, or `systemctl start docker` on
# an hcloud server).
set -eu
# The hierarchies are the machine's (cgroup v1, bind-mounted): keep this server's containers apart.
storage=${QCLOUD_DOCKER_STORAGE:-overlay2}
# A restart (the outer engine's, or the machine's) keeps this container's files: nothing of the last dockerd runs
# now, but its pid files would stop the new one ("pid file found").
rm -rf /var/run/docker.pid /var/run/docker.sock /var/run/docker
echo "starting dockerd (storage driver $storage, log /var/log/dockerd.log)"
dockerd --storage-driver "$storage" --cgroup-parent "/qcloud-sandbox-$(hostname)" >>/var/log/dockerd.log 2>&1 &
