#!/bin/sh
# A stand-in for systemctl (no systemd in a container; a test double): only the units and verbs cloud-init and the
# program use on a new server. `enable` is remembered for the next boot (boot.sh starts the enabled units).
set -eu
now=0
verb=${1:-}
[ $# -eq 0 ] || shift
[ "${1:-}" = --now ] && { now=1; shift; }
unit=${1:-}
unit=${unit%.service}
[ "$verb" != daemon-reload ] || exit 0
case "$unit" in docker | ssh | sshd | cron) ;; *) echo "systemctl (sandbox): unit '$unit' is not known here" >&2; exit 5 ;; esac
running() { docker info >/dev/null 2>&1; }
start() {
  case "$unit" in
    docker) running || { qcloud-start-dockerd; i=0; while ! running && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done; running; } ;;
    ssh | sshd) pkill -HUP -x sshd || true ;; # re-reads its keys and config
    cron) pgrep -x cron >/dev/null || cron ;;
  esac
}
case "$verb" in
  enable)
    grep -qx "$unit" /etc/qcloud-enabled-units 2>/dev/null || echo "$unit" >>/etc/qcloud-enabled-units
    [ $now = 0 ] || start
    ;;
  start | restart | reload) start ;;
  is-active) [ "$unit" != docker ] || running ;;
  *) echo "systemctl (sandbox): '$verb' is not supported here" >&2; exit 1 ;;
esac
