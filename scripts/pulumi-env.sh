# scripts/pulumi-env.sh — source me:  source scripts/pulumi-env.sh
# shellcheck shell=bash
#
# Makes a Pulumi CLI and the pinned provider plugins available in the current shell, official
# ones first (scripts/toolchain.sh): an official `pulumi` v3 on PATH is used as is, and so is
# every plugin of the pinned version already in $PULUMI_HOME/plugins that the toolchain did
# not put there; it never replaces them. Only what is missing is built from the Go module
# proxy (stand-ins, see toolchain.sh) and installed. It says on stderr which CLI and which
# plugins (official or STAND-IN) the shell gets, and exports PATH (only for a stand-in CLI),
# PULUMI_SKIP_UPDATE_CHECK, PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION and
# PULUMI_NODEJS_TRANSPILE_ONLY (each run skips the type check: `npm test` or `npm run build` does it,
# and the CI action once per commit). Silent otherwise
# when nothing had to be done (about a second).
#
# It only exports variables: it does not change the caller's shell options (set -e etc.),
# and on failure it returns non-zero (the toolchain's own message names the failed step).
# It does not log in anywhere: set PULUMI_BACKEND_URL (e.g. file://...) and
# PULUMI_CONFIG_PASSPHRASE(_FILE) yourself.

# Works from bash and zsh, from any directory.
if [ -n "${BASH_SOURCE:-}" ]; then
  __qcloud_env_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
elif [ -n "${ZSH_VERSION:-}" ]; then
  # shellcheck disable=SC2296 # zsh-only expansion
  __qcloud_env_dir="$(cd "$(dirname "${(%):-%x}")" && pwd)"
else
  __qcloud_env_dir="$(cd "$(dirname "$0")" && pwd)"
fi

if "$__qcloud_env_dir/toolchain.sh" --quiet &&
  __qcloud_env_exports="$("$__qcloud_env_dir/toolchain.sh" --print-env)"; then
  eval "$__qcloud_env_exports"
  unset __qcloud_env_dir __qcloud_env_exports
else
  echo "pulumi-env.sh: the Pulumi toolchain is not available (see the messages above)" >&2
  unset __qcloud_env_dir __qcloud_env_exports
  # `return` when sourced; `false` keeps a mistaken `bash pulumi-env.sh` non-zero too.
  # shellcheck disable=SC2317
  return 1 2>/dev/null || false
fi
