#!/usr/bin/env bash
# Ensure a Docker engine answers on this machine.
#
#   scripts/sandbox/docker.sh          # run it
#   source scripts/sandbox/docker.sh   # or source it (it runs in a subshell: your shell's options stay)
#
# If `docker info` fails: installs Debian's docker.io when dockerd is missing, starts dockerd in the
# background (log: $QCLOUD_CACHE/sandbox/dockerd.log) and waits until it answers (60 s at most). A dockerd that
# was shutting down when this began (another script stopping the sandbox) is waited for, then replaced.

_qcloud_ensure_docker() {
  # shellcheck source=lib.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
  local t0=$EPOCHREALTIME
  if docker info >/dev/null 2>&1; then
    # A sandbox script that already checked (and exported this) needs no second line.
    [[ -z "${QCLOUD_SANDBOX_DOCKER_OK:-}" ]] || return 0
    log "docker engine is up ($(docker info --format '{{.ServerVersion}}, {{.Driver}}, cgroup v{{.CgroupVersion}}'))"
    return 0
  fi
  need_root
  if ! command -v dockerd >/dev/null; then
    log "dockerd is missing: installing Debian's docker.io"
    apt_install docker.io
  fi
  command -v dockerd >/dev/null || die "dockerd still missing after installing docker.io"
  mkdir -p "$SANDBOX_CACHE"
  local logf="$SANDBOX_CACHE/dockerd.log" started=0
  if pgrep -x dockerd >/dev/null; then
    log "dockerd runs (pid $(pgrep -x dockerd | head -n1)) but does not answer yet: waiting"
  fi
  local i
  for ((i = 0; i < 120; i++)); do
    if docker info >/dev/null 2>&1; then
      log "docker engine is up after $(since "$t0")s ($(docker info --format '{{.ServerVersion}}, {{.Driver}}'))"
      return 0
    fi
    if ! pgrep -x dockerd >/dev/null; then
      # One we started that died is an error; one that was shutting down when we came (another sandbox script
      # stopping it) is replaced, once.
      if ((started)); then
        tail -n 20 "$logf" >&2 || true
        die "dockerd exited while starting: see $logf (last lines above)"
      fi
      log "starting dockerd in the background (log: $logf)"
      # setsid + nohup: the daemon outlives this script and its terminal.
      setsid nohup dockerd >>"$logf" 2>&1 </dev/null &
      disown || true
      started=1
    fi
    sleep 0.5
  done
  tail -n 20 "$SANDBOX_CACHE/dockerd.log" >&2 || true
  die "dockerd did not answer within 60 s: see $SANDBOX_CACHE/dockerd.log"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  _qcloud_ensure_docker
else
  (
    set -euo pipefail
    _qcloud_ensure_docker
  ) && export QCLOUD_SANDBOX_DOCKER_OK=1
fi
