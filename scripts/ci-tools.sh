#!/usr/bin/env bash
# scripts/ci-tools.sh — the checker of the GitHub workflows (.github/workflows): actionlint, built from its Go
# module, and shellcheck from Debian's package, which actionlint runs on every `run:` script.
#
# Usage:
#   scripts/ci-tools.sh              fetch and build what is missing, print the bin dir (stdout; progress on stderr)
#   scripts/ci-tools.sh --print-env  the same, but print `export PATH=<bindir>:$PATH` (for eval)
#   scripts/ci-tools.sh --check      build nothing: print the bin dir, or fail if a tool is missing
#
# Everything lives outside the repo, in one dir keyed by both versions:
#   ${QCLOUD_CACHE:-~/.cache/qui3tly-cloud}/ci-tools/actionlint-<v>_shellcheck-<v>/bin/   actionlint, shellcheck
#   ${QCLOUD_CACHE:-~/.cache/qui3tly-cloud}/ci-tools/logs/actionlint-<v>.log              the build's output
# A warm run only checks two files. Builds go to a temp dir renamed into place, under a lock.
#
# How (2026-12-01): `go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12` (no replace directive in its
# go.mod; the proxy serves it); `go install` stamps the module version, which `actionlint -version` prints.
# Debian's shellcheck is downloaded (`apt-get download`, no install) and unpacked (`dpkg-deb -x`), as
# scripts/monitoring-tools.sh does: Debian 12 (bookworm)'s 0.9.0-1, pinned. Its binary links only libc, libffi and
# libgmp (a base Debian has both: coreutils and apt need them). Without shellcheck actionlint silently skips the `run:` scripts: the tests give
# actionlint this one by path (`-shellcheck`), so a missing one fails instead.
set -euo pipefail

ACTIONLINT_VERSION=v1.7.12
SHELLCHECK_DEB=0.9.0-1

mode=${1:-}
case "$mode" in "" | --print-env | --check) ;; *)
  echo "usage: $0 [--print-env | --check]" >&2
  exit 2
  ;;
esac

cache=${QCLOUD_CACHE:-$HOME/.cache/qui3tly-cloud}/ci-tools
dir=$cache/actionlint-${ACTIONLINT_VERSION}_shellcheck-${SHELLCHECK_DEB}
bin=$dir/bin

ready() { [[ -x $bin/actionlint && -x $bin/shellcheck ]]; }

fetch() {
  mkdir -p "$cache/logs"
  exec 9>"$cache/.lock"
  flock 9 # another run may be building: wait for it, then use its results
  ready && return 0
  command -v go >/dev/null 2>&1 || {
    echo "ci-tools: 'go' is required to build actionlint but is not on PATH" >&2
    exit 1
  }
  rm -rf "$cache"/.fetch.* # leftovers of interrupted runs
  local tmp t0 logf=$cache/logs/actionlint-$ACTIONLINT_VERSION.log
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  mkdir -p "$tmp/bin"

  echo "ci-tools: downloading shellcheck=$SHELLCHECK_DEB" >&2
  if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "shellcheck=$SHELLCHECK_DEB" >&2); then
    # A fresh machine has no package lists yet.
    apt-get update -q >&2
    (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "shellcheck=$SHELLCHECK_DEB" >&2)
  fi
  dpkg-deb -x "$tmp"/shellcheck_*.deb "$tmp/root"
  cp "$tmp/root/usr/bin/shellcheck" "$tmp/bin/"

  echo "ci-tools: go install github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION (log: $logf)" >&2
  t0=$(date +%s)
  # In the cache dir: go must not see the caller's go.mod.
  if ! (cd "$cache" && env GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN="$tmp/bin" \
    go install -trimpath -ldflags "-s -w" "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" \
    >"$logf" 2>&1); then
    tail -n 25 "$logf" | sed 's/^/    | /' >&2
    echo "ci-tools: go install of actionlint $ACTIONLINT_VERSION failed: see $logf" >&2
    exit 1
  fi
  echo "ci-tools: actionlint built in $(($(date +%s) - t0))s" >&2

  chmod 755 "$tmp/bin"
  rm -rf "$dir"
  mkdir -p "$dir"
  mv "$tmp/bin" "$bin"
  rm -rf "$tmp"
}

if ! ready; then
  if [[ $mode == --check ]]; then
    echo "actionlint and shellcheck are missing from $bin: run scripts/ci-tools.sh (npm test runs it first)" >&2
    exit 1
  fi
  fetch
fi

if [[ $mode != --check ]]; then
  echo "ci-tools: actionlint $("$bin/actionlint" -version 2>&1 | head -1)" >&2
  echo "ci-tools: shellcheck $("$bin/shellcheck" --version 2>&1 | awk '$1 == "version:" { print $2 }')" >&2
fi
if [[ $mode == --print-env ]]; then
  echo "export PATH=$bin:\$PATH"
else
  echo "$bin"
fi
