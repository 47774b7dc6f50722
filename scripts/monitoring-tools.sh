#!/usr/bin/env bash
# scripts/monitoring-tools.sh — promtool and amtool, the real validators of the generated Prometheus and
# Alertmanager configs, from Debian's packages, without installing or starting any service.
#
# Usage:
#   scripts/monitoring-tools.sh              fetch what is missing, print the bin dir (stdout; progress on stderr)
#   scripts/monitoring-tools.sh --print-env  the same, but print `export PATH=<bindir>:$PATH` (for eval)
#   scripts/monitoring-tools.sh --check      fetch nothing: print the bin dir, or fail if the tools are missing
#
# The packages are downloaded (`apt-get download`, no install) and unpacked (`dpkg-deb -x`) into
#   ${QCLOUD_CACHE:-~/.cache/qui3tly-cloud}/monitoring-tools/prometheus-<v>_alertmanager-<v>/bin/
# A warm run only checks two files. The unpack goes to a temp dir renamed into place, under a lock.
#
# The versions are Debian 12 (bookworm)'s, pinned: prometheus 2.42.0 and alertmanager 0.25.0, older than the
# images the catalog runs (v2.55.1, v0.27.0). What the generated files use must be in both; a config the older
# tools accept is accepted by the newer servers (both keep their config formats backward compatible).
set -euo pipefail

PROMETHEUS_DEB=2.42.0+ds-5+deb12u1
ALERTMANAGER_DEB=0.25.0-1+b4

mode=${1:-}
case "$mode" in "" | --print-env | --check) ;; *)
  echo "usage: $0 [--print-env | --check]" >&2
  exit 2
  ;;
esac

cache=${QCLOUD_CACHE:-$HOME/.cache/qui3tly-cloud}/monitoring-tools
dir=$cache/prometheus-${PROMETHEUS_DEB}_alertmanager-${ALERTMANAGER_DEB}
bin=$dir/bin

ready() { [[ -x $bin/promtool && -x $bin/amtool ]]; }

fetch() {
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  ready && return 0
  local tmp
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  local pkgs=("prometheus=$PROMETHEUS_DEB" "prometheus-alertmanager=$ALERTMANAGER_DEB")
  echo "monitoring-tools: downloading ${pkgs[*]}" >&2
  if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "${pkgs[@]}" >&2); then
    # A fresh machine has no package lists yet.
    apt-get update -q >&2
    (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "${pkgs[@]}" >&2)
  fi
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$tmp/root"; done
  mkdir -p "$tmp/bin"
  cp "$tmp/root/usr/bin/promtool" "$tmp/root/usr/bin/amtool" "$tmp/bin/"
  rm -rf "$dir"
  mkdir -p "$dir"
  mv "$tmp/bin" "$bin"
  rm -rf "$tmp"
}

if ! ready; then
  if [[ $mode == --check ]]; then
    echo "promtool and amtool are missing from $bin: run scripts/monitoring-tools.sh (npm test runs it first)" >&2
    exit 1
  fi
  fetch
fi

if [[ $mode != --check ]]; then
  echo "monitoring-tools: $("$bin/promtool" --version 2>&1 | head -1)" >&2
  echo "monitoring-tools: $("$bin/amtool" --version 2>&1 | head -1)" >&2
fi
if [[ $mode == --print-env ]]; then
  echo "export PATH=$bin:\$PATH"
else
  echo "$bin"
fi
