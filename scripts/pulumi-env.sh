# scripts/pulumi-env.sh — source me:  source scripts/pulumi-env.sh
# shellcheck shell=bash
#
# Makes the offline Pulumi toolchain available in the current shell: builds whatever is
# missing (scripts/toolchain.sh; silent when everything is already built, which takes
# about a second) and exports PATH, PULUMI_SKIP_UPDATE_CHECK and
# PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION. Afterwards `pulumi` is the toolchain's CLI.
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
