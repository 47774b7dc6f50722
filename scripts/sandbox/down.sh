#!/usr/bin/env bash
# Tear the sandbox down.
#
#   scripts/sandbox/down.sh          every sandbox server (qcloud-sandbox-<site>) and its docker volume,
#                                    the registry container qcloud-registry and the network qcloud-sandbox;
#                                    keeps the images, the registry's data (volume qcloud-registry-data) and
#                                    $QCLOUD_CACHE/sandbox (rootfs tarball, SSH key), so the next up is quick;
#                                    removes `npm run sandbox`'s Pulumi state ($QCLOUD_CACHE/sandbox/work)
#   scripts/sandbox/down.sh --all    also the registry's data, every qcloud-sandbox/* and 127.0.0.1:5000/* image
#                                    and $QCLOUD_CACHE/sandbox (a new SSH key is made next time)
#
# The Docker engine itself is left running (and is started when it is installed but stopped).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

all=0
case "${1:-}" in
  "") ;;
  --all) all=1 ;;
  *)
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
t0=$EPOCHREALTIME

# The hcloud stand-in (scripts/sandbox/hcloudServe.ts) and its state: its servers go with the others below.
hcloud_dir="$SANDBOX_CACHE/hcloud"
if [[ -f "$hcloud_dir/pid" ]] && kill "$(cat "$hcloud_dir/pid")" 2>/dev/null; then
  log "stopped the hcloud stand-in"
fi
rm -rf "$hcloud_dir/pid" "$hcloud_dir/state.json" "$hcloud_dir/servers"

if ! command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1; then
  log "no Docker engine here: no containers to remove"
else
  # An engine that is installed but stopped (a new session on this machine) still holds the servers and
  # volumes of the last run in /var/lib/docker: start it, or they come back with the next up.
  # shellcheck source=docker.sh
  source "$SANDBOX_DIR/docker.sh"
  mapfile -t servers < <(docker ps -a --filter label=cloud.qui3tly.sandbox=server --format '{{.Names}}')
  for name in "${servers[@]}"; do
    remove_server "${name#qcloud-sandbox-}"
  done
  # Volumes of servers whose container is already gone.
  mapfile -t vols < <(docker volume ls -q | grep -E '^qcloud-sandbox-[a-z0-9-]+-docker$' || true)
  for v in "${vols[@]}"; do
    v=${v#qcloud-sandbox-}
    remove_server "${v%-docker}"
  done
  if docker container inspect "$REGISTRY_CONTAINER" >/dev/null 2>&1; then
    log "removing the registry container $REGISTRY_CONTAINER"
    docker rm -f "$REGISTRY_CONTAINER" >/dev/null
  fi
  if docker network inspect "$SANDBOX_NETWORK" >/dev/null 2>&1; then
    log "removing the network $SANDBOX_NETWORK"
    docker network rm "$SANDBOX_NETWORK" >/dev/null ||
      die "network $SANDBOX_NETWORK still has containers: docker network inspect $SANDBOX_NETWORK"
  fi
  if [[ $all -eq 1 ]]; then
    if docker volume inspect "$REGISTRY_VOLUME" >/dev/null 2>&1; then
      log "removing the registry's data $REGISTRY_VOLUME"
      docker volume rm "$REGISTRY_VOLUME" >/dev/null
    fi
    mapfile -t images < <(docker images --format '{{.Repository}}:{{.Tag}}' |
      grep -E "^(qcloud-sandbox/|${REGISTRY_PUSH//./\\.}/)" || true)
    if [[ ${#images[@]} -gt 0 ]]; then
      log "removing ${#images[@]} images (qcloud-sandbox/*, $REGISTRY_PUSH/*)"
      docker rmi -f "${images[@]}" >/dev/null
    fi
    docker image prune -f --filter "label=$HASH_LABEL" >/dev/null || true
  fi
fi
# `npm run sandbox`'s Pulumi project and state describe the servers just removed: they go with them.
if [[ -d "$SANDBOX_CACHE/work" ]]; then
  log "removing the sandbox's Pulumi state $SANDBOX_CACHE/work"
  rm -rf "$SANDBOX_CACHE/work"
fi
if [[ $all -eq 1 && -d "$SANDBOX_CACHE" ]]; then
  log "removing $SANDBOX_CACHE (rootfs tarball, build contexts, SSH key, logs)"
  # The engine may still log into dockerd.log there: keep that one file.
  find "$SANDBOX_CACHE" -mindepth 1 -maxdepth 1 ! -name dockerd.log -exec rm -rf {} +
fi
log "sandbox down in $(since "$t0")s$([[ $all -eq 1 ]] || echo " (images and caches kept: --all removes them)")"
