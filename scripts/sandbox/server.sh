#!/usr/bin/env bash
# One sandbox server per site: a container with sshd and its own Docker engine.
#
#   scripts/sandbox/server.sh up <site> <ssh-port>   start (or keep) qcloud-sandbox-<site>, SSH on 127.0.0.1:<ssh-port>
#   scripts/sandbox/server.sh boot <site> <ssh-port> <seed-dir>
#                                                    a new hcloud server (the hcloud stand-in's): blank, no Docker
#                                                    engine until its cloud-init (<seed-dir>/user-data) starts one
#   scripts/sandbox/server.sh down <site>            remove it and its docker volume
#   scripts/sandbox/server.sh check <site>           docker -H ssh://... run a stand-in from the registry
#   scripts/sandbox/server.sh ssh <site> [cmd...]    a shell (or a command) on it as root
#   scripts/sandbox/server.sh status                 the sandbox's servers and registry
#
# The server: container qcloud-sandbox-<site> (hostname <site>) on docker network qcloud-sandbox at an address
# that follows its SSH port (10.213.47.<port - 2190>: the same when it is rebuilt), built from
# qcloud-sandbox/server:bookworm (debootstrap base + docker.io, openssh-server, iproute2); its /var/lib/docker is
# the volume qcloud-sandbox-<site>-docker; its dockerd trusts registry:5000 (the qcloud-registry container).
# Root logs in by key only: $QCLOUD_CACHE/sandbox/ssh/id_ed25519, generated once, never in the repository.
# The server's only host key (ed25519) is $QCLOUD_CACHE/sandbox/ssh/hosts/<site>/: stable across re-creation.
# Clients: `ssh -F $QCLOUD_CACHE/sandbox/ssh/config -p <port> root@127.0.0.1`, or for tools that take no ssh
# options (the docker CLI) put $QCLOUD_CACHE/sandbox/bin first on PATH (an `ssh` that adds that -F).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The capabilities Docker-in-Docker needs here: --privileged fails on this machine (no CAP_SYS_RESOURCE).
DIND_OPTS=(
  --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add NET_RAW --cap-add MKNOD --cap-add SYS_PTRACE
  --cap-add SYS_MODULE --cap-add DAC_READ_SEARCH --cap-add SETFCAP --cap-add AUDIT_WRITE
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  --device /dev/net/tun
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw
)

usage() {
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

check_site() {
  [[ "${1:-}" =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || die "site '${1:-}' is not a valid name (lower-case letters, digits, '-')"
}

ssh_port_of() {
  docker container inspect --format '{{with index .NetworkSettings.Ports "22/tcp"}}{{(index . 0).HostPort}}{{end}}' \
    "qcloud-sandbox-$1" 2>/dev/null || true
}

# sandbox_ssh PORT 'command line': ssh hands the remote shell one string, so quote for it.
sandbox_ssh() {
  local port=$1
  shift
  ssh -F "$SSH_CONFIG" -p "$port" root@127.0.0.1 "$@"
}

cmd_up() {
  local site=${1:-} port=${2:-}
  check_site "$site"
  [[ "$port" =~ ^[0-9]+$ && $port -ge 1024 && $port -le 65535 ]] || die "ssh port '$port' must be a number 1024-65535"
  local name="qcloud-sandbox-$site" volume="qcloud-sandbox-$site-docker" t0=$EPOCHREALTIME
  # shellcheck source=docker.sh
  source "$SANDBOX_DIR/docker.sh"
  "$SANDBOX_DIR/images.sh" registry server
  ensure_ssh_key
  ensure_network

  local image_id pubkey cfg have host_keys ip
  ip=$(server_ip "$port")
  image_id=$(docker image inspect --format '{{.Id}}' "$SERVER_IMAGE")
  pubkey=$(cat "$SSH_KEY.pub")
  host_keys=$(ensure_host_key "$site")
  cfg=$(printf '%s\n%s\n%s\n%s\n%s\n%s\n' "$image_id" "$port" "$pubkey" "${DIND_OPTS[*]}" \
    "$(cat "$host_keys/ssh_host_ed25519_key.pub")" "$ip" | sha256sum | cut -c1-16)
  have=$(docker container inspect --format '{{index .Config.Labels "cloud.qui3tly.sandbox.config"}}' "$name" 2>/dev/null || true)
  # Before touching anything: the port must be free, or already this server's.
  if [[ "$(ssh_port_of "$site")" != "$port" ]] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "127.0.0.1:$port is already in use (by: $(docker ps --filter "publish=$port" --format '{{.Names}}' | head -n1))"
  fi
  if [[ -n "$have" && "$have" != "$cfg" ]]; then
    log "$name exists with another image, port or key: replacing it (volume $volume kept)"
    docker stop -t 20 "$name" >/dev/null 2>&1 || true
    docker rm -f "$name" >/dev/null
    have=""
  fi
  if [[ -z "$have" ]]; then
    log "starting $name (hostname $site, network $SANDBOX_NETWORK at $ip, ssh 127.0.0.1:$port, volume $volume)"
    docker run -d --name "$name" --hostname "$site" --network "$SANDBOX_NETWORK" --ip "$ip" \
      "${DIND_OPTS[@]}" \
      -v "$volume:/var/lib/docker" \
      -v "$host_keys:/etc/ssh/qcloud-host-keys:ro" \
      -p "127.0.0.1:$port:22" \
      -e QCLOUD_AUTHORIZED_KEY="$pubkey" \
      --restart unless-stopped --stop-timeout 30 \
      --label cloud.qui3tly.sandbox=server --label "cloud.qui3tly.sandbox.site=$site" \
      --label "cloud.qui3tly.sandbox.config=$cfg" \
      "$SERVER_IMAGE" >/dev/null ||
      die "docker run $name failed (is 127.0.0.1:$port already taken? ss -ltnp | grep :$port)"
  elif [[ "$(docker container inspect --format '{{.State.Running}}' "$name")" != true ]]; then
    log "starting the stopped $name"
    docker start "$name" >/dev/null
  else
    log "$name is already running"
  fi

  local i info=""
  for ((i = 0; i < 180; i++)); do
    if info=$(sandbox_ssh "$port" "docker info --format '{{.ServerVersion}} {{.Driver}}'" 2>/dev/null); then
      break
    fi
    info=""
    if [[ "$(docker container inspect --format '{{.State.Running}}' "$name")" != true ]]; then
      docker logs --tail 30 "$name" >&2 || true
      die "$name stopped while starting (its log is above)"
    fi
    sleep 0.5
  done
  if [[ -z "$info" ]]; then
    docker logs --tail 20 "$name" >&2 || true
    docker exec "$name" tail -n 20 /var/log/dockerd.log >&2 || true
    die "no 'ssh root@127.0.0.1 -p $port docker info' after 90 s: sshd or the inner dockerd did not come up (logs above)"
  fi
  log "$name is up in $(since "$t0")s: inner docker $info"
  cat >&2 <<EOF
  host key:   [127.0.0.1]:$port $(cut -d' ' -f1,2 "$host_keys/ssh_host_ed25519_key.pub")
  ssh:        ssh -F $SSH_CONFIG -p $port root@127.0.0.1
  docker CLI: PATH=$SANDBOX_CACHE/bin:\$PATH docker -H ssh://root@127.0.0.1:$port ps
  Pulumi:     docker.Provider host "ssh://root@127.0.0.1:$port", sshOpts ["-F", "$SSH_CONFIG"]
  images:     registry:5000/<ref> (stack config images.registry: registry:5000)
EOF
}

# A new server made through the hcloud stand-in: what Hetzner boots. Its seed directory holds the NoCloud user-data
# and meta-data, `authorized_keys` (the server's SSH keys) and `firewall.rules`; nothing of the sandbox's own keys.
# Done once sshd answers on its address (cloud-init's host keys are in place); the late stages go on.
cmd_boot() {
  local site=${1:-} port=${2:-} seed=${3:-}
  check_site "$site"
  [[ "$port" =~ ^[0-9]+$ ]] || die "ssh port '$port' must be a number"
  [[ -f "$seed/user-data" && -f "$seed/authorized_keys" ]] || die "seed directory '$seed' has no user-data and authorized_keys"
  local name="qcloud-sandbox-$site" ip t0=$EPOCHREALTIME i
  source "$SANDBOX_DIR/docker.sh"
  "$SANDBOX_DIR/images.sh" registry hcloud-server
  ensure_network
  ip=$(server_ip "$port")
  # A new server is blank: whatever had its name is gone.
  remove_server "$site"
  log "booting $name (hostname $site, network $SANDBOX_NETWORK at $ip, ssh 127.0.0.1:$port, seed $seed)"
  docker run -d --name "$name" --hostname "$site" --network "$SANDBOX_NETWORK" --ip "$ip" \
    "${DIND_OPTS[@]}" \
    -v "qcloud-sandbox-$site-docker:/var/lib/docker" \
    -v "$seed:/var/lib/cloud/seed/nocloud:ro" \
    -p "127.0.0.1:$port:22" \
    --restart unless-stopped --stop-timeout 30 \
    --label cloud.qui3tly.sandbox=server --label "cloud.qui3tly.sandbox.site=$site" \
    --label cloud.qui3tly.sandbox.hcloud=true \
    "$HCLOUD_SERVER_IMAGE" >/dev/null || die "docker run $name failed"
  for ((i = 0; i < 240; i++)); do
    if timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/22" && head -c 4 <&3' _ "$ip" 2>/dev/null | grep -q '^SSH-'; then
      log "$name answers SSH on $ip:22 in $(since "$t0")s"
      echo "$ip"
      return 0
    fi
    if [[ "$(docker container inspect --format '{{.State.Running}}' "$name")" != true ]]; then
      docker logs --tail 30 "$name" >&2 || true
      die "$name stopped while booting (its log is above)"
    fi
    sleep 0.5
  done
  docker logs --tail 30 "$name" >&2 || true
  die "$name does not answer SSH on $ip:22 after 120 s (log above; cloud-init's: docker exec $name cat /var/log/cloud-init-output.log)"
}

cmd_down() {
  local site=${1:-} t0=$EPOCHREALTIME
  check_site "$site"
  docker container inspect "qcloud-sandbox-$site" >/dev/null 2>&1 || log "qcloud-sandbox-$site does not exist"
  remove_server "$site"
  log "qcloud-sandbox-$site is down ($(since "$t0")s)"
}

cmd_check() {
  local site=${1:-} port ref="docker.io/library/redis:7.4.1-alpine"
  check_site "$site"
  port=$(ssh_port_of "$site")
  [[ -n "$port" ]] || die "qcloud-sandbox-$site is not running: scripts/sandbox/server.sh up $site <ssh-port>"
  ensure_ssh_key
  log "docker -H ssh://root@127.0.0.1:$port run --rm $REGISTRY_ALIAS:5000/$ref redis-server --version"
  PATH="$SANDBOX_CACHE/bin:$PATH" timed "check $site" \
    docker -H "ssh://root@127.0.0.1:$port" run --rm "$REGISTRY_ALIAS:5000/$ref" redis-server --version ||
    die "the check failed: are the stand-ins pushed (scripts/sandbox/images.sh)?"
}

cmd_ssh() {
  local site=${1:-} port
  check_site "$site"
  shift
  port=$(ssh_port_of "$site")
  [[ -n "$port" ]] || die "qcloud-sandbox-$site is not running"
  if [[ $# -eq 0 ]]; then
    exec ssh -F "$SSH_CONFIG" -t -p "$port" root@127.0.0.1
  fi
  exec ssh -F "$SSH_CONFIG" -p "$port" root@127.0.0.1 "$@"
}

cmd_status() {
  docker ps -a --filter label=cloud.qui3tly.sandbox \
    --format 'table {{.Names}}\t{{.Status}}\t{{.Ports}}\t{{.Label "cloud.qui3tly.sandbox"}}'
}

case "${1:-}" in
  up) cmd_up "${@:2}" ;;
  boot) cmd_boot "${@:2}" ;;
  down) cmd_down "${@:2}" ;;
  check) cmd_check "${@:2}" ;;
  ssh) cmd_ssh "${@:2}" ;;
  status) cmd_status ;;
  *) usage ;;
esac
