# shellcheck shell=bash disable=SC2034 # the names below are used by the scripts that source this
# Shared helpers for the sandbox scripts: sourced, never run.
#
# Everything the sandbox makes lives outside the repository, under
#   QCLOUD_CACHE (default ~/.cache/qui3tly-cloud)/sandbox
# (debootstrap tarball, build contexts, the SSH key pair, dockerd's log).

if [[ -n "${_QCLOUD_SANDBOX_LIB:-}" ]]; then return 0; fi
_QCLOUD_SANDBOX_LIB=1

SANDBOX_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SANDBOX_DIR/../.." && pwd)"
QCLOUD_CACHE="${QCLOUD_CACHE:-$HOME/.cache/qui3tly-cloud}"
SANDBOX_CACHE="$QCLOUD_CACHE/sandbox"

# Names shared by every script: change them here only.
SANDBOX_NETWORK="qcloud-sandbox"
REGISTRY_CONTAINER="qcloud-registry"
REGISTRY_VOLUME="qcloud-registry-data"
REGISTRY_ALIAS="registry" # how the sandbox servers reach it: registry:5000
REGISTRY_PUSH="127.0.0.1:5000" # how this machine reaches it
BASE_IMAGE="qcloud-sandbox/debian:bookworm"
REGISTRY_IMAGE="qcloud-sandbox/registry:bookworm"
SERVER_IMAGE="qcloud-sandbox/server:bookworm"
HCLOUD_SERVER_IMAGE="qcloud-sandbox/hcloud-server:bookworm"
STANDIN_BASE_IMAGE="qcloud-sandbox/standin-base:bookworm"
HASH_LABEL="cloud.qui3tly.sandbox.hash"
SSH_DIR="$SANDBOX_CACHE/ssh"
SSH_KEY="$SSH_DIR/id_ed25519"
SSH_CONFIG="$SSH_DIR/config"

# Refuse to let the cache (which holds the private key) sit inside the repository.
case "$(realpath -m "$SANDBOX_CACHE")/" in
  "$(realpath -m "$REPO_DIR")"/*)
    echo "sandbox: QCLOUD_CACHE ($QCLOUD_CACHE) is inside the repository: keys and images must not be; pick another" >&2
    exit 1
    ;;
esac

_t0_script=$EPOCHREALTIME

# Seconds since $1 (an $EPOCHREALTIME), one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

log() { printf '[sandbox %6ss] %s\n' "$(since "$_t0_script")" "$*" >&2; }
die() {
  printf '[sandbox] ERROR: %s\n' "$*" >&2
  exit 1
}
# `timed LABEL cmd...`: run cmd, log how long it took.
timed() {
  local label=$1 t0 rc=0
  shift
  t0=$EPOCHREALTIME
  "$@" || rc=$?
  log "$label: $(since "$t0")s$([[ $rc -eq 0 ]] || echo " (FAILED, exit $rc)")"
  return "$rc"
}
# `timed_log LOGFILE LABEL cmd...`: the same, with cmd's output going to LOGFILE; its tail is shown on failure.
timed_log() {
  local logf=$1 label=$2 t0 rc=0
  shift 2
  t0=$EPOCHREALTIME
  "$@" >"$logf" 2>&1 || rc=$?
  log "$label: $(since "$t0")s$([[ $rc -eq 0 ]] || echo " (FAILED, exit $rc)")"
  if [[ $rc -ne 0 ]]; then tail -n 25 "$logf" | sed 's/^/    | /' >&2; fi
  return "$rc"
}
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (apt-get, dockerd)"; }

# The Debian mirror this machine's apt uses (deb822 or one-line format), for debootstrap.
debian_mirror() {
  local uri
  uri=$(
    {
      grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
      grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'
    } | grep -v -- '-security' | grep -E '/debian/?$' | sed -n 1p
  )
  [[ -n "$uri" ]] || die "no Debian mirror found in /etc/apt/sources.list(.d): set QCLOUD_DEBIAN_MIRROR"
  echo "${uri%/}"
}

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  need_root
  log "apt-get install ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
    apt-get update >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
      die "apt-get install ${missing[*]} failed"
  fi
}

# Hash of files/strings, for the content-hash labels.
content_hash() { sha256sum "$@" | sha256sum | cut -c1-16; }

image_hash() { docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$1" 2>/dev/null || true; }

# The servers' network: a fixed subnet, so each server has a fixed address (server_ip), the same when it is
# rebuilt (a disaster-recovery drill "at the same address"); containers without one (the registry) get theirs
# from the upper half.
SANDBOX_SUBNET=10.213.47.0/24
ensure_network() {
  local subnet
  subnet=$(docker network inspect --format '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$SANDBOX_NETWORK" 2>/dev/null) || subnet=none
  [[ "$subnet" == "$SANDBOX_SUBNET" ]] && return 0
  if [[ "$subnet" != none ]]; then
    [[ -z "$(docker network inspect --format '{{range .Containers}}{{.Name}} {{end}}' "$SANDBOX_NETWORK")" ]] ||
      die "network $SANDBOX_NETWORK has subnet '$subnet', not $SANDBOX_SUBNET, and containers: npm run sandbox:down first"
    docker network rm "$SANDBOX_NETWORK" >/dev/null
  fi
  log "creating docker network $SANDBOX_NETWORK ($SANDBOX_SUBNET)"
  docker network create --subnet "$SANDBOX_SUBNET" --ip-range 10.213.47.128/25 "$SANDBOX_NETWORK" >/dev/null
}

# server_ip PORT: a server's address on the network, from its SSH port (2201 -> 10.213.47.11).
server_ip() {
  local n=$(($1 - 2190))
  [[ $n -ge 2 && $n -le 127 ]] || die "ssh port $1: sandbox servers take ports 2192-2317 (their address follows it)"
  echo "10.213.47.$n"
}

# ensure_host_key SITE: the server's SSH host key, kept here so it survives the server being recreated
# (a stack pins it); handed to the server read-only. Prints the key directory.
ensure_host_key() {
  local dir="$SSH_DIR/hosts/$1"
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [[ ! -f "$dir/ssh_host_ed25519_key" ]]; then
    log "generating the SSH host key of $1"
    ssh-keygen -q -t ed25519 -N '' -C "qcloud-sandbox-$1" -f "$dir/ssh_host_ed25519_key"
  fi
  echo "$dir"
}

ensure_ssh_key() {
  mkdir -p "$SSH_DIR"
  chmod 700 "$SSH_DIR"
  if [[ ! -f "$SSH_KEY" ]]; then
    log "generating the sandbox SSH key $SSH_KEY"
    ssh-keygen -q -t ed25519 -N '' -C "qcloud-sandbox" -f "$SSH_KEY"
  fi
  # Unix socket paths are limited to 108 bytes: a long cache path puts the control sockets in /tmp.
  local control_dir="$SSH_DIR"
  if [[ ${#SSH_DIR} -gt 50 ]]; then
    control_dir="/tmp/qcloud-sandbox-ssh-$(id -u)"
    mkdir -p "$control_dir"
    chmod 700 "$control_dir"
  fi
  # The options every client needs: the provider's sshOpts, `ssh -F`, the docker CLI wrapper.
  cat >"$SSH_CONFIG" <<EOF
# Written by scripts/sandbox (qui3tly-cloud): the sandbox servers on 127.0.0.1.
Host 127.0.0.1 qcloud-sandbox-*
  HostName 127.0.0.1
  User root
  IdentityFile $SSH_KEY
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 5
  # One connection reused by consecutive commands (docker -H ssh:// opens one per API call).
  ControlMaster auto
  ControlPath $control_dir/cm-%C
  ControlPersist 60s
EOF
  # `ssh` on PATH that reads that config: for tools (the docker CLI) that take no ssh options.
  mkdir -p "$SANDBOX_CACHE/bin"
  cat >"$SANDBOX_CACHE/bin/ssh" <<EOF
#!/bin/sh
exec /usr/bin/ssh -F "$SSH_CONFIG" "\$@"
EOF
  chmod 755 "$SANDBOX_CACHE/bin/ssh"
}

# remove_server SITE: stop qcloud-sandbox-SITE (its dockerd stops its containers), remove it, its docker volume
# and the cgroups its containers leave on this machine (the hierarchies are shared: cgroup v1 bind mount).
remove_server() {
  local name="qcloud-sandbox-$1" volume="qcloud-sandbox-$1-docker"
  if docker container inspect "$name" >/dev/null 2>&1; then
    log "stopping and removing $name"
    docker stop -t 20 "$name" >/dev/null 2>&1 || true
    docker rm -f "$name" >/dev/null
  fi
  if docker volume inspect "$volume" >/dev/null 2>&1; then
    log "removing volume $volume"
    docker volume rm "$volume" >/dev/null
  fi
  local d
  for d in /sys/fs/cgroup/*/"$name"; do
    if [[ -d "$d" ]]; then find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true; fi
  done
}
