#!/usr/bin/env bash
# Build the sandbox's images offline and fill its registry.
#
#   scripts/sandbox/images.sh [TARGET...]      TARGET: base registry server standins   (default: all four)
#
#   base       qcloud-sandbox/debian:bookworm: debootstrap --variant=minbase + docker import
#   registry   qcloud-sandbox/registry:bookworm (Debian's docker-registry), run as container qcloud-registry on
#              network qcloud-sandbox (alias `registry`), 127.0.0.1:5000, data in volume qcloud-registry-data
#   server     qcloud-sandbox/server:bookworm: what scripts/sandbox/server.sh runs (sshd + dockerd)
#   standins   a stand-in for every image ref the stacks use (npm run render), pushed as
#              127.0.0.1:5000/<ref>, which the sandbox servers pull as registry:5000/<ref>; the headscale,
#              tailscale and wireguard kinds get real binaries from scripts/mesh-tools.sh (built on first use)
#
# Environment: QCLOUD_CACHE (default ~/.cache/qui3tly-cloud), QCLOUD_STACKS (default: every
# Pulumi.<stack>.yaml), QCLOUD_DEBIAN_MIRROR (default: the one this machine's apt uses).
# Every image carries the label cloud.qui3tly.sandbox.hash (its recipe's content hash, chained to its parent's
# image id): an image whose hash matches is not rebuilt, a pushed image whose digest matches is not pushed.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=docker.sh
source "$SANDBOX_DIR/docker.sh"

export DOCKER_BUILDKIT=0 # the classic builder: no buildx plugin needed, works with Debian's dockerd 20.10
IMAGES_DIR="$SANDBOX_DIR/images"
BUILD_LOG_DIR="$SANDBOX_CACHE/logs"
mkdir -p "$BUILD_LOG_DIR"

# ---------------------------------------------------------------------------------------------- base
build_base() {
  local suite=bookworm variant=minbase mirror h tarball
  mirror="${QCLOUD_DEBIAN_MIRROR:-$(debian_mirror)}"
  # Bump "recipe 1" when the steps below change.
  h=$(printf 'recipe 1\n%s\n%s\n%s\n' "$suite" "$variant" "$mirror" | sha256sum | cut -c1-16)
  if [[ "$(image_hash "$BASE_IMAGE")" == "$h" ]]; then
    log "base: $BASE_IMAGE is up to date (hash $h)"
    return 0
  fi
  tarball="$SANDBOX_CACHE/base/debian-$suite-$variant-$h.tar"
  if [[ ! -s "$tarball" ]]; then
    need_root
    apt_install debootstrap
    local root
    root=$(mktemp -d "${TMPDIR:-/tmp}/qcloud-debootstrap.XXXXXX")
    log "base: debootstrap --variant=$variant $suite from $mirror (log: $BUILD_LOG_DIR/debootstrap.log)"
    if ! timed_log "$BUILD_LOG_DIR/debootstrap.log" "base: debootstrap" \
      debootstrap --variant="$variant" "$suite" "$root" "$mirror"; then
      rm -rf "$root"
      die "debootstrap failed (mirror $mirror): see $BUILD_LOG_DIR/debootstrap.log"
    fi
    # A container image, not a machine: no services started by package scripts, no recommends, no caches.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90qcloud-sandbox"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
    mkdir -p "$(dirname "$tarball")"
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
    log "base: rootfs cached in $tarball ($(du -h "$tarball" | cut -f1))"
  else
    log "base: reusing the cached rootfs $tarball"
  fi
  timed "base: docker import $BASE_IMAGE" docker import \
    --change "LABEL $HASH_LABEL=$h" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    "$tarball" "$BASE_IMAGE" >/dev/null
}

# ------------------------------------------------------------------------------------- generic builds
# The content hash of a build: its context's files (paths, modes, contents) and its parent's image id.
context_hash() {
  local ctx=$1 parent parent_id
  parent=$(awk 'toupper($1) == "FROM" { print $2; exit }' "$ctx/Dockerfile")
  parent_id=$(docker image inspect --format '{{.Id}}' "$parent" 2>/dev/null) ||
    die "$ctx/Dockerfile builds FROM $parent, which is missing"
  {
    echo "$parent_id"
    # Python's byte-code caches are not part of a recipe.
    (cd "$ctx" && find . -type f ! -path '*/__pycache__/*' -printf '%p %m\n' | LC_ALL=C sort)
    (cd "$ctx" && find . -type f ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
}

# build_image TAG CONTEXT: docker build unless TAG already carries the context's hash. Sets BUILT=1 if built.
BUILT=0
build_image() {
  local tag=$1 ctx=$2 h logf
  h=$(context_hash "$ctx")
  BUILT=0
  if [[ "$(image_hash "$tag")" == "$h" ]]; then
    log "$tag: up to date"
    return 0
  fi
  logf="$BUILD_LOG_DIR/build-$(echo "$tag" | tr '/:' '__').log"
  if ! timed_log "$logf" "$tag: built" docker build --label "$HASH_LABEL=$h" -t "$tag" "$ctx"; then
    die "docker build of $tag failed: see $logf"
  fi
  BUILT=1
}

# ------------------------------------------------------------------------------------------ registry
registry_up() {
  build_image "$REGISTRY_IMAGE" "$IMAGES_DIR/registry"
  ensure_network
  local want have
  want=$(docker image inspect --format '{{.Id}}' "$REGISTRY_IMAGE")
  have=$(docker container inspect --format '{{.Image}}' "$REGISTRY_CONTAINER" 2>/dev/null || true)
  if [[ -n "$have" && "$have" != "$want" ]]; then
    log "registry: $REGISTRY_CONTAINER runs an older image: replacing it (volume $REGISTRY_VOLUME kept)"
    docker rm -f "$REGISTRY_CONTAINER" >/dev/null
    have=""
  fi
  if [[ -z "$have" ]]; then
    log "registry: starting $REGISTRY_CONTAINER on $SANDBOX_NETWORK (alias $REGISTRY_ALIAS), published on $REGISTRY_PUSH"
    docker run -d --name "$REGISTRY_CONTAINER" --restart unless-stopped \
      --network "$SANDBOX_NETWORK" --network-alias "$REGISTRY_ALIAS" \
      -p "$REGISTRY_PUSH:5000" -v "$REGISTRY_VOLUME:/var/lib/docker-registry" \
      --label cloud.qui3tly.sandbox=registry "$REGISTRY_IMAGE" >/dev/null ||
      die "could not start $REGISTRY_CONTAINER (is $REGISTRY_PUSH taken? see: ss -ltnp | grep 5000)"
  elif [[ "$(docker container inspect --format '{{.State.Running}}' "$REGISTRY_CONTAINER")" != true ]]; then
    log "registry: starting the stopped $REGISTRY_CONTAINER"
    docker start "$REGISTRY_CONTAINER" >/dev/null
  fi
  local i
  for ((i = 0; i < 60; i++)); do
    if curl -fsS -o /dev/null "http://$REGISTRY_PUSH/v2/" 2>/dev/null; then
      log "registry: answers on http://$REGISTRY_PUSH/v2/"
      return 0
    fi
    sleep 0.5
  done
  docker logs --tail 20 "$REGISTRY_CONTAINER" >&2 || true
  die "the registry does not answer on http://$REGISTRY_PUSH/v2/ after 30 s"
}

# push_if_needed REF: push $REGISTRY_PUSH/REF unless the registry already has that exact manifest.
push_if_needed() {
  local ref=$1 local_ref="$REGISTRY_PUSH/$1" repo tag remote logf
  repo=${ref%:*}
  tag=${ref##*:}
  remote=$(curl -fsSI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY_PUSH/v2/$repo/manifests/$tag" 2>/dev/null |
    awk -F': ' 'tolower($1) == "docker-content-digest" { gsub("\r", "", $2); print $2 }') || true
  if [[ -n "$remote" ]]; then
    local digests
    digests=$(docker image inspect --format '{{join .RepoDigests " "}}' "$local_ref")
    [[ " $digests " == *" $REGISTRY_PUSH/$repo@$remote "* ]] && return 1
  fi
  logf="$BUILD_LOG_DIR/push.log"
  if ! docker push "$local_ref" >>"$logf" 2>&1; then
    tail -n 10 "$logf" >&2
    die "docker push $local_ref failed: see $logf"
  fi
  return 0
}

# ------------------------------------------------------------------------------------------ standins
# kind_context KIND: set KIND_CTX to the build context of images/standin-KIND. A recipe with a `mesh-binaries`
# file (binary names, one a line, # comments) needs binaries built by scripts/mesh-tools.sh (Headscale,
# Tailscale, wireguard-go): the recipe and those binaries are copied into a generated context under the cache
# (the repository holds no binaries), so context_hash covers the binaries too and a new version rebuilds.
KIND_CTX=""
kind_context() {
  local kind=$1 src="$IMAGES_DIR/standin-$1" ctx bindir b
  KIND_CTX=$src
  [[ -f "$src/mesh-binaries" ]] || return 0
  bindir=$(bash "$REPO_DIR/scripts/mesh-tools.sh" </dev/null) || die "scripts/mesh-tools.sh failed (needed by the stand-in kind $kind)"
  ctx="$SANDBOX_CACHE/contexts/standin-$kind"
  rm -rf "$ctx"
  mkdir -p "$ctx/bin"
  cp -r "$src/." "$ctx/"
  while read -r b; do
    [[ -z "$b" || "$b" == \#* ]] && continue
    cp "$bindir/$b" "$ctx/bin/$b" || die "scripts/mesh-tools.sh made no $b (in $bindir)"
  done <"$src/mesh-binaries"
  KIND_CTX=$ctx
}

standins() {
  local render_root stacks=() s plan
  if [[ -n "${QCLOUD_STACKS:-}" ]]; then
    read -r -a stacks <<<"$QCLOUD_STACKS"
  else
    for s in "$REPO_DIR"/Pulumi.*.yaml; do
      s=${s##*/Pulumi.}
      stacks+=("${s%.yaml}")
    done
  fi
  [[ ${#stacks[@]} -gt 0 ]] || die "no stacks (Pulumi.<stack>.yaml) in $REPO_DIR"
  render_root="$SANDBOX_CACHE/render"
  rm -rf "$render_root"
  mkdir -p "$render_root"
  for s in "${stacks[@]}"; do
    # shellcheck disable=SC2016 # expanded by the inner bash
    if ! timed_log "$BUILD_LOG_DIR/render-$s.log" "render $s" \
      bash -c 'cd "$1" && npm run -s render -- --stack "$2" --out "$3"' _ "$REPO_DIR" "$s" "$render_root/$s"; then
      die "npm run render -- --stack $s failed: see $BUILD_LOG_DIR/render-$s.log"
    fi
    [[ -s "$render_root/$s/site.json" ]] || die "render of $s wrote no site.json"
  done
  plan=$(python3 "$SANDBOX_DIR/standins.py" "$SANDBOX_CACHE/standins" "${stacks[@]/#/$render_root/}") ||
    die "standins.py could not plan the stand-ins"
  local n
  n=$(wc -l <<<"$plan")
  log "standins: $n image refs in stacks ${stacks[*]} (plan: $SANDBOX_CACHE/standins/plan.json)"

  build_image "$STANDIN_BASE_IMAGE" "$IMAGES_DIR/standin-base"
  local kind
  while read -r kind; do
    [[ -d "$IMAGES_DIR/standin-$kind" ]] || die "no recipe for the stand-in kind $kind ($IMAGES_DIR/standin-$kind)"
    kind_context "$kind"
    build_image "qcloud-sandbox/standin-$kind:bookworm" "$KIND_CTX"
  done < <(cut -f2 <<<"$plan" | grep -v '^generic' | sort -u)
  local ref ctx built=0 pushed=0 t0=$EPOCHREALTIME
  while IFS=$'\t' read -r ref kind ctx; do
    build_image "$REGISTRY_PUSH/$ref" "$ctx"
    built=$((built + BUILT))
  done <<<"$plan"
  log "standins: $built of $n stand-ins (re)built in $(since "$t0")s"
  registry_up
  t0=$EPOCHREALTIME
  while IFS=$'\t' read -r ref kind ctx; do
    if push_if_needed "$ref"; then
      pushed=$((pushed + 1))
      log "pushed $REGISTRY_PUSH/$ref ($kind)"
    fi
  done <<<"$plan"
  log "standins: $pushed of $n pushed in $(since "$t0")s; the rest were already in the registry"
  # Dangling leftovers of earlier builds of these images.
  docker image prune -f --filter "label=$HASH_LABEL" >/dev/null || true
}

# ---------------------------------------------------------------------------------------------- main
main() {
  local targets=("$@") t t0=$EPOCHREALTIME
  [[ ${#targets[@]} -gt 0 ]] || targets=(base registry server standins)
  for t in "${targets[@]}"; do
    case "$t" in
      base | registry | server | hcloud-server | standins) ;;
      -h | --help)
        sed -n '2,20p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
      *) die "unknown target '$t' (expected: base registry server hcloud-server standins)" ;;
    esac
  done
  build_base
  for t in "${targets[@]}"; do
    case "$t" in
      registry) registry_up ;;
      server) build_image "$SERVER_IMAGE" "$IMAGES_DIR/server" ;;
      hcloud-server)
        build_image "$SERVER_IMAGE" "$IMAGES_DIR/server"
        build_image "$HCLOUD_SERVER_IMAGE" "$IMAGES_DIR/hcloud-server"
        ;;
      standins) standins ;;
    esac
  done
  log "images ready (${targets[*]}) in $(since "$t0")s"
}

main "$@"
