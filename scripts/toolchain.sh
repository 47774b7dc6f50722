#!/usr/bin/env bash
# scripts/toolchain.sh — make the Pulumi CLI, the nodejs language host and the provider
# plugins this repo pins available WITHOUT internet access.
#
# Usage:
#   scripts/toolchain.sh               build what is missing, install plugins, print env
#   scripts/toolchain.sh --quiet       same, but silent when nothing had to be done
#   scripts/toolchain.sh --print-env   only print the shell exports (fails if not built); says on
#                                      stderr which CLI and plugins they give
#   scripts/toolchain.sh --plan        only say what would be used, built and installed (one line
#                                      per component, see plan()); needs neither Go nor a build
#   scripts/toolchain.sh --verify      build, then run an end-to-end check in a temp dir
#   scripts/toolchain.sh --refresh     rebuild everything (e.g. once the Go proxy serves
#                                      the exact CLI version; see the CLI note below)
#   scripts/toolchain.sh --vet         gofmt -l and go vet the stand-in providers' Go
#                                      sources (scripts/toolchain/**/*.go)
#
# Most scripts should simply `source scripts/pulumi-env.sh`.
#
# Why this exists: get.pulumi.com and GitHub downloads are unreachable here, and the `pulumi`
# npm package only downloads a binary at run time. What IS reachable is the Go module proxy,
# so everything is compiled from Go modules. What the proxy serves decides the recipe (found
# out on 2026-11-26, see the notes next to each component):
#
# * CLI: github.com/pulumi/pulumi/pkg/v3. The proxy has .info/.mod but NO .zip for the
#   newest releases (v3.275.0, v3.276.0 answer 403 "not available"), so the build picks the
#   exact version if it is downloadable, else the newest served version below it (v3.274.1),
#   and says so. The result is cached under the WANTED version: run --refresh to pick up the
#   exact version once the proxy serves it. pkg/go.mod replaces sdk with ../sdk: drop that
#   replace, require sdk@same, build ./cmd/pulumi.
# * Language host: github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3 is not
#   served at all (403, any version). Up to sdk v3.68.0 the host lived INSIDE the sdk/v3
#   module, and that zip is served, so it is built from there. The CLI still speaks the old
#   protocol (falls back from GetRequiredPackages/Handshake) and @pulumi/pulumi 3.276's
#   `cmd/run` still accepts the flags it passes: verified with up/preview/destroy.
# * Providers: the pulumi-command/-random/-docker/-hcloud provider modules are NOT served
#   (403 for tags, commits and pseudo-versions). Stand-ins are built instead, from what is
#   served: the upstream Terraform providers + pulumi-terraform-bridge (random, docker,
#   hcloud), and a small re-implementation of the command provider on pulumi-go-provider.
#   Their Go sources are in scripts/toolchain/<provider>/main.go (docker and hcloud also
#   get scripts/toolchain/bridge/serve.go).
#   They register under the npm package's exact name and version, use the same tokens and
#   property names as the npm SDKs, and run for real (see --verify), but they are NOT the
#   published binaries: see "What each stand-in provider is built from" below for the
#   sources and the known differences. Each build writes its inputs to BUILT_FROM.
#
# Official binaries first, never replaced (issue 9). An official `pulumi` (any v3, one not built
# here) found on PATH is used as is. A plugin of the wanted name and version already in
# $PULUMI_HOME/plugins (default ~/.pulumi) that this script did not install is used as is and
# never touched: only where none is installed is a stand-in built and installed, with
# `pulumi plugin install resource <name> <ver> --file <bin>` (no --reinstall), and marked ours
# by a .qcloud-source file holding the binary's sha256. Only a plugin whose marker matches its
# binary is ours to update; one replaced since (`pulumi plugin install ... --reinstall` of the
# official one) is foreign again. So a machine with the official CLI and plugins needs no Go
# and builds nothing. (A pulumi-resource-<name> on PATH would override every version of it for
# every project, with "using ... from $PATH" warnings on every run: not used.)
#
# Everything lives outside the repo, in ${QCLOUD_CACHE:-$HOME/.cache/qui3tly-cloud}/toolchain.
# Builds go to a temp dir under it and are renamed into place, so an interrupted build never
# leaves a half-written binary; a lock serialises concurrent runs.
set -euo pipefail

# Bump when a recipe below changes (build commands, flags, tags): cached builds with another
# revision are rebuilt. Providers are also rebuilt, one by one, when their own Go sources or
# go.mod inputs change (see provider_key); the CLI only when this revision changes.
RECIPE_REV=1

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${QCLOUD_CACHE:-$HOME/.cache/qui3tly-cloud}/toolchain"

MODE=build
QUIET=0
REFRESH=0
for arg in "$@"; do
  case "$arg" in
    --print-env) MODE=print-env ;;
    --verify) MODE=verify ;;
    --quiet | -q) QUIET=1 ;;
    --refresh) REFRESH=1 ;;
    --vet) MODE=vet ;;
    --plan) MODE=plan ;;
    -h | --help)
      sed -n '2,/^# Most scripts/p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "toolchain.sh: unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

# ---------------------------------------------------------------------------------------
# Output helpers. In --quiet mode nothing is printed unless something gets built; then the
# progress goes to stderr like in normal mode (stdout is kept for --print-env).
# ---------------------------------------------------------------------------------------
CURRENT_STEP="start-up"
log() { if [ "$QUIET" = 0 ]; then echo "toolchain: $*" >&2; fi; }
loud() { QUIET=0; }
die() {
  echo "toolchain: ERROR in step '$CURRENT_STEP': $*" >&2
  exit 1
}
on_exit() {
  local rc=$?
  if [ $rc -ne 0 ]; then echo "toolchain: FAILED (exit $rc) in step: $CURRENT_STEP" >&2; fi
}
trap on_exit EXIT

# step NAME CMD...: run CMD, print how long it took, name the step if it fails.
step() {
  local name="$1"
  shift
  CURRENT_STEP="$name"
  log "==> $name"
  local t0=$SECONDS
  "$@"
  log "<== $name: $((SECONDS - t0))s"
}

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not on PATH"; }

# ---------------------------------------------------------------------------------------
# Versions: read from the repo, never written down here.
# ---------------------------------------------------------------------------------------
# pkg_version PKG FIELD: FIELD is "version" (npm version) or "plugin" (.pulumi.version,
# the plugin version the SDK asks the engine for). Prefers the installed package.json;
# without node_modules falls back to package-lock.json.
pkg_version() {
  node -e '
    const fs = require("fs"), path = require("path");
    const [root, pkg, field] = process.argv.slice(1);
    const installed = path.join(root, "node_modules", pkg, "package.json");
    let v;
    if (fs.existsSync(installed)) {
      const j = JSON.parse(fs.readFileSync(installed, "utf8"));
      v = field === "plugin" ? (j.pulumi && j.pulumi.version) || j.version : j.version;
    } else {
      const lockFile = path.join(root, "package-lock.json");
      if (!fs.existsSync(lockFile)) {
        console.error("neither " + installed + " nor " + lockFile + " exists");
        process.exit(1);
      }
      const lock = JSON.parse(fs.readFileSync(lockFile, "utf8"));
      const e = (lock.packages || {})["node_modules/" + pkg] || (lock.dependencies || {})[pkg];
      v = e && e.version; // the lock has no .pulumi block; plugin version == npm version
    }
    if (!v) { console.error("no version for " + pkg); process.exit(1); }
    console.log(v);
  ' "$REPO_ROOT" "$1" "$2"
}

PROVIDERS=(command docker hcloud random)

# ---------------------------------------------------------------------------------------
# What each stand-in provider is built from. These are NOT the Pulumi versions (those come
# from the repo): they are the newest upstream sources the Go module proxy serves. Revisit
# them when bumping @pulumi/* in package.json.
# ---------------------------------------------------------------------------------------
# The Terraform bridge and the pulumi pkg/sdk it compiles against (bridge v3.137.0 does not
# compile against pkg v3.274.x: plugin.NewContext changed; v3.260.0 is the served match).
BRIDGE_VERSION=v3.137.0
BRIDGE_PULUMI_VERSION=v3.260.0
# pulumi-terraform-bridge needs pulumi's fork of the Terraform plugin SDK (replace directive).
TF_SDK_FORK="github.com/pulumi/terraform-plugin-sdk/v2 v2.0.0-20260318212141-5525259d096b"
# random: hashicorp/terraform-provider-random (module path terraform-providers/...), newest
# served pseudo-version (2026-08-24). Plugin-framework provider -> pf bridge.
RANDOM_UPSTREAM="github.com/terraform-providers/terraform-provider-random v1.3.2-0.20260824155315-e1092b0cfc07"
# docker: kreuzwerker/terraform-provider-docker (its go.mod says terraform-providers/...),
# newest served pseudo-version (2026-09-16). SDKv2 + plugin-framework mux. Built with
# -tags no_compose, like pulumi-docker. docker.Image (pulumi-docker's native, non-Terraform
# resource) is NOT included; RemoteImage, Container, Network, Volume, ... are.
DOCKER_UPSTREAM_PATH=github.com/kreuzwerker/terraform-provider-docker
DOCKER_UPSTREAM_VERSION=v0.0.0-20260916201441-96d331c98ff4
# hcloud: hetznercloud/terraform-provider-hcloud. pulumi-hcloud 1.41 wraps ~v1.66; the proxy
# serves only some tags and nothing after v1.60.1, so resources/attributes added upstream
# since v1.60.1 are missing. The checksum database has no entries for this module (404), so
# it is fetched with GONOSUMDB for this one module and checked against the hashes pinned here.
HCLOUD_UPSTREAM="github.com/hetznercloud/terraform-provider-hcloud v1.60.1"
HCLOUD_SUMS="github.com/hetznercloud/terraform-provider-hcloud v1.60.1 h1:odWlbo+IFmoAL3ZStFUF9AbW4WzFCY8YQ3oF2E7EIos=
github.com/hetznercloud/terraform-provider-hcloud v1.60.1/go.mod h1:RJQZBFXcA10xfDOewutjExGYbYrCbHy9/skLwGf+Ya4="
# command: own implementation (scripts/toolchain/command/main.go) on pulumi-go-provider
# (v1.3.0, which pulumi-command 1.2.1 uses, does not compile against pkg v3.274; v1.4.0 does).
# It serves command:remote:Command and command:local:Command (what the project and --verify
# use; the rest of @pulumi/command is left out on purpose) with the SDK's property names and
# the same lifecycle (create on create, update-or-create on update, delete on delete,
# PULUMI_COMMAND_STDOUT/STDERR, triggers via the SDK's replaceOnChanges). Differences:
# remote environment variables are sent with SSH setenv and, where sshd refuses them
# (AcceptEnv), exported in front of the command; no schema is served (`pulumi package
# get-schema`).
GO_PROVIDER_VERSION=v1.4.0
GLOB_VERSION=v0.2.3
# pulumi pkg/sdk for the command stand-in: the CLI's fallback version, so the two share
# most of the Go build cache.
CMD_PULUMI_VERSION=v3.274.1
# Language host: the last sdk/v3 release on the proxy that still contains it.
LANGHOST_SDK_VERSION=v3.68.0

# ---------------------------------------------------------------------------------------
# Go helpers
# ---------------------------------------------------------------------------------------
export CGO_ENABLED=0
# -mod=mod: let go update go.sum of the generated build modules. -buildvcs=false: the temp
# build dirs are not repos (and this machine's go env sets it too).
export GOFLAGS="-mod=mod -buildvcs=false"
# A newer `go` line in a go.mod must never make go try to download a toolchain offline.
export GOTOOLCHAIN=local

# The newest `go` line among the modules built here: pulumi pkg/sdk v3.274.1 and v3.260.0
# (the CLI, the bridge's and the command stand-in's pulumi) declare go 1.26.6; the bridge,
# pulumi-go-provider and the Terraform providers 1.25.x or older; sdk v3.68.0 1.18. With
# GOTOOLCHAIN=local an older go refuses them. The README names this minimum.
GO_MIN=1.26.6
check_go() {
  need go
  local v
  v="$(go env GOVERSION)" # go1.26.8
  v="${v#go}"
  if [ "$(printf '%s\n%s\n' "$GO_MIN" "$v" | sort -V | head -1)" != "$GO_MIN" ]; then
    die "Go >= $GO_MIN is needed (pulumi pkg v3.274 declares go $GO_MIN); found go$v"
  fi
}

# mod_dir MODULE@VERSION: download a module through the proxy, print its read-only dir.
mod_dir() {
  go mod download -json "$1" | node -e '
    let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
      const j = JSON.parse(s);
      if (j.Error || !j.Dir) { console.error(j.Error || "no Dir"); process.exit(1); }
      console.log(j.Dir);
    });'
}

# pick_served MODULE WANT: print WANT if its zip downloads, else the newest listed version
# below WANT that does (the proxy lists versions whose zips it refuses, so try each).
pick_served() {
  local mod="$1" want="$2"
  if go mod download "$mod@$want" 2>/dev/null; then
    echo "$want"
    return
  fi
  local v
  for v in $(go list -m -versions "$mod" | tr ' ' '\n' | tail -n +2 | sort -rV); do
    if [ "$(printf '%s\n%s\n' "$v" "$want" | sort -V | head -1)" = "$v" ] && [ "$v" != "$want" ]; then
      if go mod download "$mod@$v" 2>/dev/null; then
        echo "$v"
        return
      fi
    fi
  done
  return 1
}

# new_tmp: a fresh temp dir on the cache's filesystem (so the final `mv` is a rename).
new_tmp() {
  mkdir -p "$CACHE_ROOT/tmp"
  mktemp -d "$CACHE_ROOT/tmp/build.XXXXXX"
}

# ---------------------------------------------------------------------------------------
# CLI + language host
# ---------------------------------------------------------------------------------------
build_cli() { # $1 = wanted version (no v), $2 = final dir
  local want="v$1" final="$2" tmp pkgver dir
  tmp="$(new_tmp)"
  pkgver="$(pick_served github.com/pulumi/pulumi/pkg/v3 "$want")" ||
    die "no version <= $want of github.com/pulumi/pulumi/pkg/v3 is downloadable from the Go proxy"
  if [ "$pkgver" != "$want" ]; then
    loud
    log "NOTE: the Go proxy does not serve pulumi pkg $want yet; building the CLI from $pkgver (newest served)"
  fi
  dir="$(mod_dir "github.com/pulumi/pulumi/pkg/v3@$pkgver")"
  cp -r "$dir" "$tmp/pkg"
  chmod -R u+w "$tmp/pkg"
  (
    cd "$tmp/pkg"
    go mod edit -dropreplace=github.com/pulumi/pulumi/sdk/v3 \
      -require="github.com/pulumi/pulumi/sdk/v3@$pkgver"
    go build -trimpath -tags osusergo,grpcnotrace \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$pkgver" \
      -o "$tmp/out/bin/pulumi" ./cmd/pulumi
  )
  echo "pulumi CLI built from github.com/pulumi/pulumi/pkg/v3@$pkgver" >"$tmp/out/BUILT_FROM"
  echo "$pkgver" >"$tmp/out/CLI_VERSION"
  mkdir -p "$final.parts"
  rm -rf "$final.parts/cli"
  mv "$tmp/out" "$final.parts/cli"
  rm -rf "$tmp"
}

build_langhost() { # $1 = final dir
  local final="$1" tmp dir
  tmp="$(new_tmp)"
  dir="$(mod_dir "github.com/pulumi/pulumi/sdk/v3@$LANGHOST_SDK_VERSION")"
  cp -r "$dir" "$tmp/sdk"
  chmod -R u+w "$tmp/sdk"
  (
    cd "$tmp/sdk"
    go build -trimpath \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$LANGHOST_SDK_VERSION" \
      -o "$tmp/out/pulumi-language-nodejs" ./nodejs/cmd/pulumi-language-nodejs
  )
  mkdir -p "$final.parts"
  rm -rf "$final.parts/langhost"
  mv "$tmp/out" "$final.parts/langhost"
  rm -rf "$tmp"
}

# Assemble <cache>/pulumi-<ver>/ from the parts and rename it into place.
assemble_cli() { # $1 = final dir, $2 = wanted version
  local final="$1" tmp
  tmp="$(new_tmp)"
  mkdir -p "$tmp/dir/bin"
  cp "$final.parts/cli/bin/pulumi" "$final.parts/langhost/pulumi-language-nodejs" "$tmp/dir/bin/"
  {
    cat "$final.parts/cli/BUILT_FROM"
    echo "pulumi-language-nodejs built from github.com/pulumi/pulumi/sdk/v3@$LANGHOST_SDK_VERSION (nodejs/cmd/pulumi-language-nodejs)"
    echo "for @pulumi/pulumi $2, recipe revision $RECIPE_REV"
  } >"$tmp/dir/BUILT_FROM"
  echo "$RECIPE_REV" >"$tmp/dir/RECIPE_REV"
  rm -rf "$final.old"
  if [ -e "$final" ]; then mv "$final" "$final.old"; fi
  mv "$tmp/dir" "$final"
  rm -rf "$final.old" "$final.parts" "$tmp"
}

# ---------------------------------------------------------------------------------------
# Provider stand-ins. Their Go sources are real files (gofmt-clean; --vet type-checks them):
# scripts/toolchain/<name>/main.go, plus scripts/toolchain/bridge/serve.go for docker and
# hcloud (numeric-ID fix-up, default tokens, autonaming, mux dispatch table, serving), so
# their main.go only holds what is specific to them. A build copies them into a temp module
# next to the go.mod written below, which pins the versions noted at the top of this file.
# The bridged ones (random, docker, hcloud) name things like the Pulumi providers: tokens
# <pkg>:index/<camelName>:<PascalName> (random prefixes "Random"), bridge-default property
# names, plus the overrides the npm SDKs rely on.
# ---------------------------------------------------------------------------------------
GO_SRC="$REPO_ROOT/scripts/toolchain"

# provider_sources NAME: the Go files (relative to $GO_SRC) provider NAME is built from. A
# build copies each into the module dir under its base name.
provider_sources() {
  case "$1" in
    docker | hcloud) echo "$1/main.go bridge/serve.go" ;;
    *) echo "$1/main.go" ;;
  esac
}

# provider_gomod NAME: print the go.mod provider NAME is built with.
provider_gomod() {
  local name="$1" module upstream_req replace=""
  case "$name" in
    command)
      cat <<EOF
// Generated by qui3tly-cloud scripts/toolchain.sh.
module qui3tly.local/pulumi-resource-command

go 1.26

require (
	github.com/gobwas/glob $GLOB_VERSION
	github.com/pulumi/pulumi-go-provider $GO_PROVIDER_VERSION
	github.com/pulumi/pulumi/pkg/v3 $CMD_PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 $CMD_PULUMI_VERSION
)
EOF
      return
      ;;
    random)
      module=github.com/terraform-providers/terraform-provider-random/pulumibridge
      upstream_req="$RANDOM_UPSTREAM"
      ;;
    docker)
      module=github.com/terraform-providers/terraform-provider-docker/pulumibridge
      upstream_req="github.com/terraform-providers/terraform-provider-docker $DOCKER_UPSTREAM_VERSION"
      # The kreuzwerker module declares the terraform-providers path: fetch it via replace.
      replace="replace github.com/terraform-providers/terraform-provider-docker => $DOCKER_UPSTREAM_PATH $DOCKER_UPSTREAM_VERSION"
      ;;
    hcloud)
      module=qui3tly.local/pulumi-resource-hcloud
      upstream_req="$HCLOUD_UPSTREAM"
      ;;
    *) die "unknown provider: $name" ;;
  esac
  cat <<EOF
// Generated by qui3tly-cloud scripts/toolchain.sh. The module path sits under the upstream
// module's path where needed, so that Go lets it import the upstream's internal/provider.
module $module

go 1.26

require (
	github.com/pulumi/pulumi-terraform-bridge/v3 $BRIDGE_VERSION
	github.com/pulumi/pulumi/pkg/v3 $BRIDGE_PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 $BRIDGE_PULUMI_VERSION
	$upstream_req
)

replace github.com/hashicorp/terraform-plugin-sdk/v2 => $TF_SDK_FORK
$replace
EOF
}

# provider_gosum NAME: print the go.sum lines pinned here for provider NAME (most have none).
provider_gosum() {
  if [ "$1" = hcloud ]; then printf '%s\n' "$HCLOUD_SUMS"; fi
}

# write_module DIR NAME: the Go module provider NAME is built from (*.go, go.mod, go.sum).
write_module() {
  local dir="$1" name="$2" srcs f sums
  read -ra srcs <<<"$(provider_sources "$name")"
  for f in "${srcs[@]}"; do
    cp "$GO_SRC/$f" "$dir/${f##*/}"
  done
  provider_gomod "$name" >"$dir/go.mod"
  sums="$(provider_gosum "$name")"
  if [ -n "$sums" ]; then printf '%s\n' "$sums" >"$dir/go.sum"; fi
}

# provider_go NAME SUBCOMMAND ARGS...: run `go SUBCOMMAND ARGS...` in provider NAME's module
# (the current dir) with the build tags and environment that module needs.
provider_go() {
  local name="$1" sub="$2" env=() flags=()
  shift 2
  case "$name" in
    docker) if [ "$sub" != mod ]; then flags=(-tags no_compose); fi ;;
    hcloud) env=(GONOSUMDB=github.com/hetznercloud/terraform-provider-hcloud) ;;
  esac
  env "${env[@]}" go "$sub" "${flags[@]}" "$@"
}

# provider_key NAME VERSION: the cache key of provider NAME's build, a hash of what it is
# built from: the recipe revision, the plugin version, its exact Go sources and the go.mod
# and go.sum written for it. So editing one provider's main.go (or a version only it uses)
# rebuilds just that provider, bridge/serve.go rebuilds docker and hcloud, and RECIPE_REV
# rebuilds everything. Stored in <plugin dir>/KEY. (What Go fetches beyond the pinned
# versions is fixed by them; the Go toolchain version is not part of the key.)
provider_key() {
  local name="$1" ver="$2" srcs
  read -ra srcs <<<"$(provider_sources "$name")"
  {
    echo "recipe $RECIPE_REV"
    echo "pulumi-resource-$name $ver"
    (cd "$GO_SRC" && sha256sum -- "${srcs[@]}") || exit 1
    provider_gomod "$name"
    provider_gosum "$name"
  } | sha256sum | cut -c1-16
}

# build_provider NAME VERSION FINAL_DIR KEY (KEY computed before the sources are copied: if
# they are edited in between, the stored key is the old one and the next run rebuilds).
build_provider() {
  local name="$1" ver="$2" final="$3" key="$4" tmp
  tmp="$(new_tmp)"
  mkdir -p "$tmp/src" "$tmp/out"
  write_module "$tmp/src" "$name"
  (
    cd "$tmp/src"
    sha256sum -- *.go >"$tmp/sources.sha256" # before go touches anything
    provider_go "$name" mod tidy
    provider_go "$name" build -trimpath -ldflags "-s -w -X main.version=$ver" \
      -o "$tmp/out/pulumi-resource-$name" .
  )
  {
    echo "pulumi-resource-$name $ver (qui3tly-cloud stand-in, recipe revision $RECIPE_REV, key $key)"
    sed 's/^/sha256 /' "$tmp/sources.sha256"
    grep -vE '^\s*(//|$)' "$tmp/src/go.mod"
  } >"$tmp/out/BUILT_FROM"
  echo "$key" >"$tmp/out/KEY"
  rm -rf "$final.old"
  if [ -e "$final" ]; then mv "$final" "$final.old"; fi
  mv "$tmp/out" "$final"
  rm -rf "$final.old" "$tmp"
}

# provider_built DIR KEY: DIR holds a build with cache key KEY.
provider_built() { [ -f "$1/KEY" ] && [ "$(cat "$1/KEY")" = "$2" ]; }

# is_built DIR: the CLI + language host in DIR were built with this RECIPE_REV.
is_built() { [ -f "$1/RECIPE_REV" ] && [ "$(cat "$1/RECIPE_REV")" = "$RECIPE_REV" ]; }

# ---------------------------------------------------------------------------------------
# Plugins in $PULUMI_HOME: whose they are. Official (or any other) plugins are used, never
# replaced; ours are the ones whose .qcloud-source marker names their binary's sha256.
# ---------------------------------------------------------------------------------------
pulumi_home() { echo "${PULUMI_HOME:-$HOME/.pulumi}"; }
plugin_dir() { echo "$(pulumi_home)/plugins/resource-$1-v${PLUGIN_VER[$1]}"; } # name

sha256_of() { sha256sum <"$1" | cut -d' ' -f1; }

# is_ours NAME: the installed plugin NAME carries our marker and is still the binary we put
# there. Marker: "<source binary> <size> <key> sha256:<hex> stat:<inode>:<mtime>:<size>"; the
# stat fingerprint spares hashing 70 MB binaries on every warm run (an in-place rewrite
# changes it), the sha256 decides when it differs. The first format ("<source> <size>
# <key>", until issue 9) is recognised by comparing with the source binary it names.
is_ours() {
  local d bin marker src _size _key sum fp
  d="$(plugin_dir "$1")"
  bin="$d/pulumi-resource-$1"
  marker="$d/.qcloud-source"
  [ -f "$marker" ] && [ -f "$bin" ] || return 1
  read -r src _size _key sum fp <"$marker" || true
  if [ -n "$sum" ]; then
    [ "$fp" = "stat:$(stat -c %i:%Y:%s "$bin")" ] || [ "$sum" = "sha256:$(sha256_of "$bin")" ]
  else
    [ -f "$src" ] && cmp -s "$src" "$bin"
  fi
}

# plugin_state NAME: absent | foreign (installed, not by us: official or anyone's, used as
# is) | ours (our stand-in, built with the wanted key) | ours-stale (our stand-in, built from
# other sources or with --refresh: ours to replace).
plugin_state() {
  local d key
  d="$(plugin_dir "$1")"
  if [ ! -e "$d" ] && [ ! -e "$d.partial" ]; then
    echo absent
  elif ! is_ours "$1"; then
    echo foreign
  else
    key="$(cut -d' ' -f3 "$d/.qcloud-source")"
    if [ "$key" = "${PLUGIN_KEY[$1]}" ] && [ "$REFRESH" = 0 ]; then echo ours; else echo ours-stale; fi
  fi
}

# install_plugin NAME: put our stand-in where plugin_state allows it, then mark it ours only if
# what is installed now is exactly our build (`pulumi plugin install` without --reinstall keeps
# a plugin someone else installed in between, and says nothing).
install_plugin() {
  local name="$1" ver="${PLUGIN_VER[$1]}" bin d state
  bin="$PLUGIN_ROOT/$name-$ver/pulumi-resource-$name"
  d="$(plugin_dir "$name")"
  state="$(plugin_state "$name")"
  case "$state" in
    absent) "$PULUMI_BIN" plugin install resource "$name" "$ver" --file "$bin" >&2 ;;
    # Replaces only our own earlier stand-in (is_ours checked its marker against its binary).
    ours-stale) "$PULUMI_BIN" plugin install resource "$name" "$ver" --file "$bin" --reinstall >&2 ;;
    *) return 0 ;;
  esac
  if [ -f "$d/pulumi-resource-$name" ] && cmp -s "$bin" "$d/pulumi-resource-$name"; then
    echo "$bin $(stat -c %s "$bin") ${PLUGIN_KEY[$name]} sha256:$(sha256_of "$bin")" \
      "stat:$(stat -c %i:%Y:%s "$d/pulumi-resource-$name")" >"$d/.qcloud-source"
  else
    log "left alone: $d holds another pulumi-resource-$name $ver, installed meanwhile"
  fi
}

# upgrade_marker NAME: rewrite our first-format marker (recognised only while the cache binary
# it names is unchanged) in the sha256 format, keeping its key, so a later rebuild still finds
# the stand-in ours (and stale) rather than taking it for an official plugin.
upgrade_marker() {
  local d bin src size key sum
  d="$(plugin_dir "$1")"
  bin="$d/pulumi-resource-$1"
  [ -f "$d/.qcloud-source" ] || return 0
  read -r src size key sum <"$d/.qcloud-source" || true
  if [ -z "$sum" ] && is_ours "$1"; then
    echo "$src $size $key sha256:$(sha256_of "$bin") stat:$(stat -c %i:%Y:%s "$bin")" >"$d/.qcloud-source"
  fi
}

# ---------------------------------------------------------------------------------------
# Main flow
# ---------------------------------------------------------------------------------------
# is_our_cli BIN: BIN is a CLI built by this script (any cache: its dir has our marker files).
is_our_cli() {
  local d
  d="$(dirname "$(dirname "$(readlink -f "$1")")")"
  [ -f "$d/RECIPE_REV" ] && grep -q '^pulumi CLI built from ' "$d/BUILT_FROM" 2>/dev/null
}

resolve() {
  need node
  PULUMI_WANT="$(pkg_version @pulumi/pulumi version)"
  declare -gA PLUGIN_VER PLUGIN_KEY
  local p
  for p in "${PROVIDERS[@]}"; do
    PLUGIN_VER[$p]="$(pkg_version "@pulumi/$p" plugin)"
    PLUGIN_KEY[$p]="$(provider_key "$p" "${PLUGIN_VER[$p]}")"
  done
  CLI_DIR="$CACHE_ROOT/pulumi-$PULUMI_WANT"
  PLUGIN_ROOT="$CACHE_ROOT/plugins"
  # The first official `pulumi` v3 on PATH (not one built here) is used as is, whatever its
  # minor version: the SDK talks to any 3.x engine.
  SYSTEM_PULUMI=""
  SYSTEM_PULUMI_VERSION=""
  local onpath v
  while IFS= read -r onpath; do
    [ -n "$onpath" ] || continue
    if is_our_cli "$onpath"; then continue; fi
    v="$("$onpath" version 2>/dev/null || true)"
    if [[ "$v" == v3.* ]]; then
      SYSTEM_PULUMI="$onpath"
      SYSTEM_PULUMI_VERSION="$v"
      break
    fi
  done < <(type -ap pulumi 2>/dev/null || true)
  if [ -n "$SYSTEM_PULUMI" ]; then
    PULUMI_BIN="$SYSTEM_PULUMI"
    BIN_DIR=""
  else
    PULUMI_BIN="$CLI_DIR/bin/pulumi"
    BIN_DIR="$CLI_DIR/bin"
  fi
}

# cli_ready: an official CLI, or our build of this recipe revision (not with --refresh).
cli_ready() { [ -n "$SYSTEM_PULUMI" ] || { [ "$REFRESH" = 0 ] && is_built "$CLI_DIR"; }; }

# plugin_ready NAME: nothing to install (an official plugin, or our current stand-in).
plugin_ready() { case "$(plugin_state "$1")" in foreign | ours) return 0 ;; *) return 1 ;; esac; }

all_ready() {
  cli_ready || return 1
  local p
  for p in "${PROVIDERS[@]}"; do plugin_ready "$p" || return 1; done
}

# plan: one line per component, what this run would use or do (stdout), and no side effects:
#   cli official <path> <version>        an official pulumi on PATH, used as is
#   cli stand-in <path> <version>        our build, already there
#   cli build <path> <version>           our build, to be built (needs Go)
#   plugin <name> <ver> <decision> <plugin dir> <stand-in key>, decision one of:
#     official          installed, not by this script: used as is, never touched
#     stand-in          our stand-in, current
#     install           none installed: our stand-in goes there (build+install: built first, Go)
#     reinstall         our stand-in, from other sources: replaced (build+reinstall: likewise)
plan() {
  local p state decision
  if [ -n "$SYSTEM_PULUMI" ]; then
    echo "cli official $SYSTEM_PULUMI $SYSTEM_PULUMI_VERSION"
  elif cli_ready; then
    echo "cli stand-in $CLI_DIR/bin/pulumi $(sed -n 's/^pulumi CLI built from .*@//p' "$CLI_DIR/BUILT_FROM")"
  else
    echo "cli build $CLI_DIR/bin/pulumi v$PULUMI_WANT"
  fi
  for p in "${PROVIDERS[@]}"; do
    state="$(plugin_state "$p")"
    case "$state" in
      foreign) decision=official ;;
      ours) decision=stand-in ;;
      absent) decision=install ;;
      ours-stale) decision=reinstall ;;
    esac
    if [[ "$state" == absent || "$state" == ours-stale ]] &&
      { [ "$REFRESH" = 1 ] || ! provider_built "$PLUGIN_ROOT/$p-${PLUGIN_VER[$p]}" "${PLUGIN_KEY[$p]}"; }; then
      decision="build+$decision"
    fi
    echo "plugin $p ${PLUGIN_VER[$p]} $decision $(plugin_dir "$p") ${PLUGIN_KEY[$p]}"
  done
}

# summary: which CLI and plugins the environment gives (stderr, for the operator).
summary() {
  local p line=""
  if [ -n "$SYSTEM_PULUMI" ]; then
    echo "toolchain: pulumi CLI: official $SYSTEM_PULUMI ($SYSTEM_PULUMI_VERSION)" >&2
    if [ "$SYSTEM_PULUMI_VERSION" != "v$PULUMI_WANT" ]; then
      echo "toolchain:   (the program's @pulumi/pulumi is $PULUMI_WANT)" >&2
    fi
  else
    echo "toolchain: pulumi CLI: stand-in $CLI_DIR/bin/pulumi (no official pulumi v3 on PATH; $(head -1 "$CLI_DIR/BUILT_FROM"))" >&2
  fi
  for p in "${PROVIDERS[@]}"; do
    case "$(plugin_state "$p")" in
      foreign) line+="${line:+, }$p ${PLUGIN_VER[$p]} official" ;;
      *) line+="${line:+, }$p ${PLUGIN_VER[$p]} STAND-IN" ;;
    esac
  done
  echo "toolchain: plugins in $(pulumi_home)/plugins: $line" >&2
}

print_env() {
  if [ -n "$BIN_DIR" ]; then
    # Prepend only once, so sourcing pulumi-env.sh repeatedly does not grow PATH.
    # shellcheck disable=SC2016 # $PATH is expanded by the shell that evals this
    printf 'case ":$PATH:" in *":%s:"*) ;; *) export PATH="%s:$PATH" ;; esac\n' "$BIN_DIR" "$BIN_DIR"
  fi
  echo "export PULUMI_SKIP_UPDATE_CHECK=true"
  echo "export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true"
  # The program is type-checked by `npm test`/`npm run build` (tsc --noEmit, and the CI action once per commit),
  # not by ts-node on every run: 3 s less each.
  echo "export PULUMI_NODEJS_TRANSPILE_ONLY=true"
}

build_all() {
  local t_all=$SECONDS p dir planned
  CURRENT_STEP="prepare $CACHE_ROOT"
  mkdir -p "$CACHE_ROOT"
  cd "$CACHE_ROOT" # go commands must not see any go.mod of the caller's directory
  exec 9>"$CACHE_ROOT/.lock"
  flock 9 # another run may be building: wait for it, then find its results
  if [ "$REFRESH" = 1 ]; then
    rm -rf "$CLI_DIR" "$CACHE_ROOT/plugins"
  fi
  rm -rf "$CACHE_ROOT/tmp" # leftovers of interrupted builds
  for p in "${PROVIDERS[@]}"; do upgrade_marker "$p"; done
  if all_ready; then
    log "everything up to date ($CACHE_ROOT)"
    return 0
  fi
  loud # something will be built or installed: show progress even with --quiet
  log "cache: $CACHE_ROOT"
  log "wanted: @pulumi/pulumi $PULUMI_WANT; plugins: $(for p in "${PROVIDERS[@]}"; do printf '%s %s  ' "$p" "${PLUGIN_VER[$p]}"; done)"
  # Go only when something is to be built: official binaries and earlier builds need none.
  # (plan's output taken whole first: `plan | grep -q` fails under pipefail when grep stops early)
  planned="$(plan)"
  if grep -qE '^cli build |^plugin .* build\+' <<<"$planned"; then
    CURRENT_STEP="check the Go toolchain"
    check_go
  fi

  if [ -n "$SYSTEM_PULUMI" ]; then
    log "using $SYSTEM_PULUMI ($SYSTEM_PULUMI_VERSION) from PATH; not building the CLI"
  elif ! is_built "$CLI_DIR"; then
    # (if-blocks, not `cond || step`: errexit is off inside the left side of || lists)
    # The parts survive an interrupted run, so a rerun only builds what is missing.
    if [ ! -f "$CLI_DIR.parts/cli/CLI_VERSION" ]; then
      step "build pulumi CLI" build_cli "$PULUMI_WANT" "$CLI_DIR"
    fi
    if [ ! -x "$CLI_DIR.parts/langhost/pulumi-language-nodejs" ]; then
      step "build pulumi-language-nodejs" build_langhost "$CLI_DIR"
    fi
    step "assemble $CLI_DIR" assemble_cli "$CLI_DIR" "$PULUMI_WANT"
  fi
  for p in "${PROVIDERS[@]}"; do
    if plugin_ready "$p"; then
      # Official (or anyone else's) plugins are used as they are: nothing built for them.
      log "pulumi-resource-$p ${PLUGIN_VER[$p]}: using $(plugin_dir "$p") ($(awk -v p="$p" '$1 == "plugin" && $2 == p { print $4 }' <<<"$planned"))"
      continue
    fi
    dir="$PLUGIN_ROOT/$p-${PLUGIN_VER[$p]}"
    if ! provider_built "$dir" "${PLUGIN_KEY[$p]}"; then
      mkdir -p "$PLUGIN_ROOT"
      log "pulumi-resource-$p ${PLUGIN_VER[$p]}: cached key $(cat "$dir/KEY" 2>/dev/null || echo none), wanted ${PLUGIN_KEY[$p]}"
      step "build pulumi-resource-$p ${PLUGIN_VER[$p]} (key ${PLUGIN_KEY[$p]})" \
        build_provider "$p" "${PLUGIN_VER[$p]}" "$dir" "${PLUGIN_KEY[$p]}"
    fi
    step "install stand-in plugin $p ${PLUGIN_VER[$p]} (key ${PLUGIN_KEY[$p]}) into $(pulumi_home)" \
      install_plugin "$p"
  done
  REFRESH=0 # rebuilt and reinstalled: from here on, ours are current
  CURRENT_STEP="done"
  log "done in $((SECONDS - t_all))s; cache size: $(du -sh "$CACHE_ROOT" | cut -f1)"
  log "add to your shell (or: source scripts/pulumi-env.sh):"
  if [ "$QUIET" = 0 ]; then print_env | sed 's/^/  /' >&2; fi
}

# ---------------------------------------------------------------------------------------
# --verify: a throw-away project outside the repo exercising random, command and docker.
# ---------------------------------------------------------------------------------------
verify() {
  local work
  work="$(mktemp -d /tmp/qcloud-toolchain-verify.XXXXXX)"
  CURRENT_STEP="verify (in $work)"
  log "==> verify in $work"
  eval "$(print_env)"
  # PULUMI_BACKEND_URL rather than `pulumi login`, which would change the user's login.
  export PULUMI_BACKEND_URL="file://$work/state" PULUMI_CONFIG_PASSPHRASE=verify
  mkdir -p "$work/state" "$work/proj"
  cd "$work/proj"
  ln -s "$REPO_ROOT/node_modules" node_modules
  printf 'name: toolchain-verify\nruntime: nodejs\n' >Pulumi.yaml
  echo '{ "name": "toolchain-verify", "main": "index.ts" }' >package.json
  echo '{ "compilerOptions": { "strict": true, "target": "es2020", "module": "commonjs" } }' >tsconfig.json
  cat >index.ts <<'EOF'
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as random from "@pulumi/random";

const pw = new random.RandomPassword("pw", { length: 20, special: false });
const echo = new command.local.Command("echo", {
    create: pw.result.apply((r) => `echo created-${r.length}`),
    delete: "echo deleted",
});
// Only previewed: a provider pointing at nowhere must still load and plan (autonaming).
const nowhere = new docker.Provider("nowhere", { host: "tcp://127.0.0.1:9" });
const net = new docker.Network("net", { driver: "bridge" }, { provider: nowhere });
export const pwLength = pw.result.apply((r) => r.length);
export const stdout = echo.stdout;
export const netName = net.name;
EOF
  pulumi stack init dev >&2
  # The docker network cannot be created without a daemon: target the other resources.
  local targets=(--target "urn:pulumi:dev::toolchain-verify::random:index/randomPassword:RandomPassword::pw"
    --target "urn:pulumi:dev::toolchain-verify::command:local:Command::echo")
  pulumi preview >&2
  pulumi up --yes --skip-preview "${targets[@]}" >&2
  [ "$(pulumi stack output stdout)" = "created-20" ] || die "unexpected command output"
  pulumi preview --expect-no-changes "${targets[@]}" >&2
  pulumi destroy --yes >&2
  # hcloud: the plugin must start and answer the engine (a provider with a dummy token).
  cat >index.ts <<'EOF'
import * as hcloud from "@pulumi/hcloud";
const p = new hcloud.Provider("h", { token: "x".repeat(64) });
const key = new hcloud.SshKey("k", { publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDummyKeyForPreviewOnly0000000000000000000 x" }, { provider: p });
export const keyName = key.name;
EOF
  pulumi preview >&2
  pulumi plugin ls >&2
  cd /
  rm -rf "$work"
  log "<== verify: OK"
}

# ---------------------------------------------------------------------------------------
# --vet: the stand-ins' Go sources (all of $GO_SRC) must be gofmt-clean and pass `go vet` in the module they
# are built in. Temp dirs in /tmp, not the cache's tmp/, which a concurrent build clears.
# ---------------------------------------------------------------------------------------
vet_all() {
  local p bad t_all=$SECONDS
  CURRENT_STEP="check the Go toolchain"
  check_go
  CURRENT_STEP="gofmt -l $GO_SRC"
  bad="$(gofmt -l "$GO_SRC")"
  [ -z "$bad" ] || die "not gofmt-formatted (fix with gofmt -w): $bad"
  for p in "${PROVIDERS[@]}"; do
    step "go vet $p" vet_provider "$p"
  done
  log "vet: OK in $((SECONDS - t_all))s"
}

vet_provider() { # $1 provider name
  local tmp
  tmp="$(mktemp -d /tmp/qcloud-toolchain-vet.XXXXXX)"
  write_module "$tmp" "$1"
  (
    cd "$tmp"
    provider_go "$1" mod tidy
    provider_go "$1" vet .
  )
  rm -rf "$tmp"
}

# ---------------------------------------------------------------------------------------
main() {
  CURRENT_STEP="read versions from $REPO_ROOT"
  resolve
  case "$MODE" in
    print-env)
      CURRENT_STEP="print-env"
      all_ready || die "toolchain not built (or plugins not installed): run scripts/toolchain.sh"
      summary
      print_env
      ;;
    plan) plan ;;
    build) build_all ;;
    verify)
      build_all
      verify
      ;;
    vet) vet_all ;;
  esac
  CURRENT_STEP="done"
}

main
