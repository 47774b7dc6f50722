#!/usr/bin/env bash
# scripts/mesh-tools.sh — the Go-built tools for the sandbox's stand-in images (scripts/sandbox/images.sh) and the
# test suite, built offline from the Go module proxy: the mesh (Headscale, Tailscale, wireguard-go, and Traefik,
# the tailnet's way into each site: its tailnet entrypoint, PROXY headers and `private` routes are what admins
# reach through the node) and the backups (restic, rest-server); and Debian's wireguard-tools (`wg`, `wg-quick`) and
# apache2-utils (`htpasswd`: the tests write rest-server's and Traefik's users files with it); and cAdvisor, the
# sites' container metrics (`npm run rightsize` reads them), from its library behind scripts/sandbox/cadvisor's main;
# and Traefik's certificates by the DNS challenge: Let's Encrypt's test ACME server (pebble) and Debian's BIND
# (bind9: `named`, the zone the challenge's records go to, by RFC 2136 updates); and Debian's conntrack, which
# a site's `udp-flows` command runs (the tests run it on a real netfilter table).
#
# Usage:
#   scripts/mesh-tools.sh              build what is missing, print the bin dir (stdout; progress on stderr)
#   scripts/mesh-tools.sh --print-env  the same, but print `export PATH=<bindir>:$PATH` (for eval)
#   scripts/mesh-tools.sh --refresh    rebuild everything
#
# The bin dir holds headscale, tailscale, tailscaled, containerboot, wireguard-go, traefik, restic, rest-server,
# cadvisor and pebble (symlinks into the per-version build dirs). Everything lives outside the repo, in
#   ${QCLOUD_CACHE:-~/.cache/qui3tly-cloud}/mesh/<name>-<version>/    one build, keyed by its version
#   ${QCLOUD_CACHE:-~/.cache/qui3tly-cloud}/mesh/bin-<key>/           the bin dir of the versions pinned below
#   ${QCLOUD_CACHE:-~/.cache/qui3tly-cloud}/mesh/logs/<name>-<version>.log   each build's output
# A warm run only checks files (well under a second). Builds go to a temp dir and are renamed into place, so an
# interrupted build never leaves a half-written binary; a lock serialises concurrent runs.
#
# How (found out on 2026-11-26): the go.mod files of the first three have no replace directive, so `go install
# MOD/cmd/X@VERSION` works, and it stamps the module version into the binary (`headscale version`, `tailscale
# version`), which a `go build` inside a copied module dir would not. One catch: the proxy refuses the version
# LIST of github.com/juanfont/headscale (403), while it serves each tag; `go install` asks for that list (to
# look for a deprecation notice) and fails. So every build runs with the module cache's download dir as the
# first GOPROXY: after `go mod download MOD@VERSION` that dir has a list holding VERSION, everything else
# falls through to the machine's GOPROXY. Traefik's go.mod has replace directives, which `go install` refuses:
# it is built with `go build` inside a copy of its module, its version stamped by -ldflags. Its cold build is the
# longest (about 16 minutes on 2 cores, 8 of them downloading its dependencies).
# restic and rest-server (2026-11-30): no replace directives, so `go install`; the proxy refuses rest-server's list
# too and lists only v0.10.0 of restic, which the file:// proxy above covers. Neither needs a version stamp: restic
# 0.19's build.go still passes -X main.version, but the version is now the constant internal/global.Version
# ("0.19.1"); rest-server's main.version defaults to "0.14.0". restic is built with the tags of upstream's build.go
# and release binaries (selfupdate, disable_grpc_modules: the latter keeps Google Cloud Storage's gRPC code out).
# Cold builds (empty module and build caches, 2 cores shared with another build): restic about 1.5 minutes (79
# modules downloaded), rest-server about 45 seconds (18).
# cAdvisor (2026-12-01): the proxy serves the library github.com/google/cadvisor but not upstream's main (the module
# github.com/google/cadvisor/cmd: refused), so scripts/sandbox/cadvisor holds a minimal main (its header says what
# it keeps) with its own go.mod and go.sum pinning the library; it is built with `go build -mod=readonly` in a copy
# of that dir, keyed by the library's version and a hash of the dir. Cold: about 1.5 minutes (downloads).
# pebble (2026-12-02): no replace directives, so `go install`; cold, 28 s.
set -euo pipefail

# The versions. The newest each module serves that builds with this machine's Go (1.26.8), checked 2026-11-26:
# - Headscale: the proxy lists no versions (403); tags probed one by one: v0.29.3 is served (needs go 1.26.5),
#   v0.29.4, v0.30.0 are not. v0.29.3 supports Tailscale clients v1.80 and newer (its capver table ends at v1.98;
#   newer clients are accepted).
# - Tailscale: v1.104.5 is the newest served, but needs go >= 1.27.3; v1.102.5 (go 1.26.6) is the newest that
#   builds with go 1.26 and is two minors from the one Headscale v0.29.3 is built against (v1.101.0-pre).
#   A version needing a newer Go than the machine's is built with GOTOOLCHAIN=$NEWER_GO (see go_for).
# - wireguard-go: no tags; the newest pseudo-version (2026-05-22, go 1.23.1).
HEADSCALE_VERSION=v0.29.3
TAILSCALE_VERSION=v1.102.5
WIREGUARD_GO_VERSION=v0.0.0-20260522210424-ecfc5a8d5446
# - Traefik: the catalog's pin (catalog/agents.ts), go 1.23.
TRAEFIK_VERSION=v3.2.3
# - restic (checked 2026-11-30): v0.19.1 (go 1.25.8) is the newest served (v0.19.2, v0.20.0 are not); `@latest`
#   resolves to v0.10.0, the only listed version.
# - rest-server: v0.14.0 (go 1.23) is the only version served; its list is refused (403).
RESTIC_VERSION=v0.19.1
REST_SERVER_VERSION=v0.14.0
# - cAdvisor: the catalog's pin (catalog/agents.ts), go 1.21; scripts/sandbox/cadvisor/go.mod requires it.
CADVISOR_VERSION=v0.49.1
CADVISOR_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/sandbox/cadvisor"
# - pebble (checked 2026-12-02): v2.10.3, the newest the proxy lists (go 1.25.0).
PEBBLE_VERSION=v2.10.3
# The newer Go for a module that asks for one, pinned (never "the newest"): the go command fetches it from the Go
# module proxy like any module (golang.org/toolchain v0.0.1-go1.27.3.linux-amd64, about 76 MB; served, checked
# 2026-11-30). No tool pinned above needs it today.
NEWER_GO=go1.27.3
# Bump when the build recipe (commands, flags) changes: builds of another revision are redone.
RECIPE_REV=1

# shellcheck source=sandbox/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/sandbox/lib.sh"
# lib.sh's helpers (timed, apt_install, need_root) log through these: name this script instead of the sandbox.
log() { printf '[mesh-tools %6ss] %s\n' "$(since "$_t0_script")" "$*" >&2; }
die() {
  printf '[mesh-tools] ERROR: %s\n' "$*" >&2
  exit 1
}

MESH_CACHE="$QCLOUD_CACHE/mesh"
MODE=bin-dir
REFRESH=0
for arg in "$@"; do
  case "$arg" in
    --print-env) MODE=print-env ;;
    --refresh) REFRESH=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument: $arg (expected --print-env, --refresh)" ;;
  esac
done

# name -> "module@version main-package..." (main packages relative to the module; "." is the module root)
declare -A TOOL_MOD=(
  [headscale]="github.com/juanfont/headscale@$HEADSCALE_VERSION"
  [tailscale]="tailscale.com@$TAILSCALE_VERSION"
  [wireguard-go]="golang.zx2c4.com/wireguard@$WIREGUARD_GO_VERSION"
  [traefik]="github.com/traefik/traefik/v3@$TRAEFIK_VERSION"
  [restic]="github.com/restic/restic@$RESTIC_VERSION"
  [rest-server]="github.com/restic/rest-server@$REST_SERVER_VERSION"
  [cadvisor]="github.com/google/cadvisor@$CADVISOR_VERSION"
  [pebble]="github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION"
)
declare -A TOOL_PKGS=(
  [headscale]="cmd/headscale"
  [tailscale]="cmd/tailscale cmd/tailscaled cmd/containerboot"
  [wireguard-go]="."
  [traefik]="cmd/traefik"
  [restic]="cmd/restic"
  [rest-server]="cmd/rest-server"
  [cadvisor]="."
  [pebble]="cmd/pebble"
)
# name -> the binaries it yields (go install names a module-root main after the module: `wireguard`).
declare -A TOOL_BINS=(
  [headscale]="headscale"
  [tailscale]="tailscale tailscaled containerboot"
  [wireguard-go]="wireguard-go"
  [traefik]="traefik"
  [restic]="restic"
  [rest-server]="rest-server"
  [cadvisor]="cadvisor"
  [pebble]="pebble"
)
# name -> build tags its upstream builds with (none if absent).
declare -A TOOL_TAGS=(
  [restic]="selfupdate,disable_grpc_modules"
)
TOOLS=(headscale tailscale wireguard-go traefik restic rest-server cadvisor pebble)

# cAdvisor's build is also keyed by its main's source: an edit there rebuilds it.
CADVISOR_SRC_REV=$(cat "$CADVISOR_SRC/go.mod" "$CADVISOR_SRC/go.sum" "$CADVISOR_SRC/main.go" | sha256sum | cut -c1-8)
tool_dir() {
  local v=${TOOL_MOD[$1]##*@}
  [[ "$1" != cadvisor ]] || v+="-$CADVISOR_SRC_REV"
  echo "$MESH_CACHE/$1-$v"
}

# built NAME: its dir has every binary and was made by this recipe revision.
built() {
  local dir b
  dir=$(tool_dir "$1")
  [[ "$(cat "$dir/RECIPE_REV" 2>/dev/null)" == "$RECIPE_REV" ]] || return 1
  for b in ${TOOL_BINS[$1]}; do [[ -x "$dir/$b" ]] || return 1; done
}

# The bin dir of exactly these pins: a new pin gets a new dir, so two checkouts never fight over one.
BIN_KEY=$(printf '%s\n' "$RECIPE_REV" "${TOOL_MOD[@]}" "$CADVISOR_SRC_REV" | sha256sum | cut -c1-12)
BIN_DIR="$MESH_CACHE/bin-$BIN_KEY"

bin_dir_ready() {
  local t b
  for t in "${TOOLS[@]}"; do
    for b in ${TOOL_BINS[$t]}; do
      [[ "$(readlink "$BIN_DIR/$b" 2>/dev/null)" == "$(tool_dir "$t")/$b" ]] || return 1
    done
  done
}

# go_for GOMOD: print the GOTOOLCHAIN for a module whose go.mod is GOMOD: local, or $NEWER_GO if it asks for
# a newer Go than the machine's (`go` would otherwise refuse: GOTOOLCHAIN=local, never download silently).
go_for() {
  local want have
  want=$(awk '$1 == "go" { print $2; exit }' "$1")
  have=$(GOTOOLCHAIN=local go env GOVERSION)
  have=${have#go}
  if [[ -n "$want" && "$(printf '%s\n%s\n' "$want" "$have" | sort -V | tail -n1)" != "$have" ]]; then
    echo "$NEWER_GO"
  else
    echo local
  fi
}

# build NAME: go install its main packages into a temp dir, then rename the dir into place.
build() {
  local name=$1 mod=${TOOL_MOD[$1]} final tmp gomod moddir commit toolchain pkgs=() p
  local ldflags="-s -w" flags=(-trimpath)
  final=$(tool_dir "$name")
  mkdir -p "$MESH_CACHE/tmp"
  tmp=$(mktemp -d "$MESH_CACHE/tmp/$name.XXXXXX")
  # Populates the module cache (and its @v/list, which the file:// proxy below serves).
  # A module asking for a newer Go fails here with "requires go >= X", yet its .mod is downloaded: go_for
  # decides from it.
  read -r gomod commit moddir < <({ GOTOOLCHAIN=local go mod download -json "$mod" || true; } | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(j.get("GoMod") or sys.exit(j.get("Error") or "no GoMod"), (j.get("Origin") or {}).get("Hash", "-"),
      j.get("Dir", "-"))') ||
    die "go mod download $mod failed"
  [[ -n "$gomod" ]] || die "go mod download $mod failed"
  if [[ "$name" == tailscale ]]; then
    # Without these stamps (set by upstream's Dockerfile and build_dist.sh) `tailscale version` says
    # "1.102.5-ERR-BuildInfo": the module zip has no VCS data.
    local v=${mod#*@v} long=${mod#*@v}
    [[ "$commit" == - ]] || long="$v-t${commit:0:9}"
    ldflags+=" -X tailscale.com/version.shortStamp=$v -X tailscale.com/version.longStamp=$long"
    [[ "$commit" == - ]] || ldflags+=" -X tailscale.com/version.gitCommitStamp=$commit"
  fi
  [[ -z "${TOOL_TAGS[$name]:-}" ]] || flags+=(-tags "${TOOL_TAGS[$name]}")
  toolchain=$(go_for "$gomod")
  [[ "$toolchain" == local ]] || log "$name: ${mod#*@} needs a newer Go than $(go env GOVERSION): GOTOOLCHAIN=$toolchain"
  for p in ${TOOL_PKGS[$name]}; do
    if [[ "$p" == . ]]; then pkgs+=("$mod"); else pkgs+=("${mod%@*}/$p@${mod#*@}"); fi
  done
  local modcache
  modcache=$(go env GOMODCACHE)
  local logf="$MESH_CACHE/logs/$name-${mod#*@}.log"
  mkdir -p "$MESH_CACHE/logs"
  local goenv=(env GOTOOLCHAIN="$toolchain" CGO_ENABLED=0 GOFLAGS="-buildvcs=false"
    GOPROXY="file://$modcache/cache/download,$(go env GOPROXY)")
  if [[ "$name" == traefik ]]; then
    # Its replace directives apply only where its go.mod is the main module: build in a copy of the module.
    [[ -d "$moddir" ]] || die "go mod download $mod gave no module dir"
    cp -r "$moddir" "$tmp/src"
    chmod -R u+w "$tmp/src"
    ldflags+=" -X github.com/traefik/traefik/v3/pkg/version.Version=${mod#*@}"
    log "$name: go build ./${TOOL_PKGS[$name]} in a copy of ${mod} (log: $logf)"
    (cd "$tmp/src" && timed_log "$logf" "$name ${mod#*@}: built" "${goenv[@]}" \
      go build "${flags[@]}" -ldflags "$ldflags" -o "$tmp/traefik" "./${TOOL_PKGS[$name]}") ||
      die "go build of $mod failed: see $logf"
    rm -rf "$tmp/src"
  elif [[ "$name" == cadvisor ]]; then
    # Its own main (scripts/sandbox/cadvisor): go.sum pins every module, so -mod=readonly.
    cp -r "$CADVISOR_SRC" "$tmp/src"
    log "$name: go build in a copy of $CADVISOR_SRC (${mod}; log: $logf)"
    (cd "$tmp/src" && timed_log "$logf" "$name ${mod#*@}: built" "${goenv[@]}" \
      go build -mod=readonly "${flags[@]}" -ldflags "$ldflags" -o "$tmp/cadvisor" .) ||
      die "go build of $CADVISOR_SRC failed: see $logf"
    rm -rf "$tmp/src"
  else
    log "$name: go install ${pkgs[*]} (log: $logf)"
    timed_log "$logf" "$name ${mod#*@}: built" "${goenv[@]}" GOBIN="$tmp" \
      go install "${flags[@]}" -ldflags "$ldflags" "${pkgs[@]}" || die "go install of $mod failed: see $logf"
  fi
  if [[ "$name" == wireguard-go ]]; then mv "$tmp/wireguard" "$tmp/wireguard-go"; fi
  {
    echo "${pkgs[*]}"
    echo "${flags[*]} -ldflags '$ldflags', CGO_ENABLED=0, GOTOOLCHAIN=$toolchain ($(GOTOOLCHAIN=$toolchain go env GOVERSION))"
    echo "recipe revision $RECIPE_REV, $(date -u +%FT%TZ)"
  } >"$tmp/BUILT_FROM"
  echo "$RECIPE_REV" >"$tmp/RECIPE_REV"
  chmod 755 "$tmp" # mktemp's 700 would hide the binaries from other users
  rm -rf "$final"
  mv "$tmp" "$final"
}

link_bin_dir() {
  local tmp t b
  tmp=$(mktemp -d "$MESH_CACHE/tmp/bin.XXXXXX")
  for t in "${TOOLS[@]}"; do
    for b in ${TOOL_BINS[$t]}; do ln -s "$(tool_dir "$t")/$b" "$tmp/$b"; done
  done
  chmod 755 "$tmp"
  rm -rf "$BIN_DIR"
  mv "$tmp" "$BIN_DIR"
}

ready() {
  local t
  for t in "${TOOLS[@]}"; do built "$t" || return 1; done
  bin_dir_ready && dpkg -s wireguard-tools apache2-utils bind9 conntrack >/dev/null 2>&1
}

ensure() {
  if [[ $REFRESH == 0 ]] && ready; then return 0; fi # the warm path: no lock, no go, no apt
  local t0=$EPOCHREALTIME t
  mkdir -p "$MESH_CACHE"
  exec 9>"$MESH_CACHE/.lock"
  flock 9 # another run may be building: wait for it, then use its results
  if [[ $REFRESH == 1 ]]; then
    for t in "${TOOLS[@]}"; do rm -rf "$(tool_dir "$t")"; done
  fi
  rm -rf "$MESH_CACHE/tmp" # leftovers of interrupted builds
  local had_bind=0
  ! dpkg -s bind9 >/dev/null 2>&1 || had_bind=1
  apt_install wireguard-tools apache2-utils bind9 conntrack
  # The tests run `named` by hand, in a network namespace of their own: a service the package started (systemd
  # hosts) would hold this machine's port 53.
  if [[ $had_bind == 0 ]] && command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet named 2>/dev/null; then
    log "bind9: its named.service stopped and disabled (the tests start their own)"
    systemctl disable --now named >/dev/null 2>&1 || die "systemctl disable --now named failed"
  fi
  command -v go >/dev/null 2>&1 || die "'go' is required but not on PATH"
  cd "$MESH_CACHE" # go must not see the caller's go.mod
  for t in "${TOOLS[@]}"; do
    if [[ $REFRESH == 1 ]] || ! built "$t"; then build "$t"; fi
  done
  bin_dir_ready || link_bin_dir
  rm -rf "$MESH_CACHE/tmp"
  local versions=""
  for t in "${TOOLS[@]}"; do versions+="${versions:+, }$t ${TOOL_MOD[$t]##*@}"; done
  log "ready in $(since "$t0")s: $versions in $BIN_DIR"
}

ensure
if [[ $MODE == print-env ]]; then
  # Prepend only once, so evaluating this repeatedly does not grow PATH.
  # shellcheck disable=SC2016 # $PATH is expanded by the shell that evals this
  printf 'case ":$PATH:" in *":%s:"*) ;; *) export PATH="%s:$PATH" ;; esac\n' "$BIN_DIR" "$BIN_DIR"
else
  echo "$BIN_DIR"
fi
