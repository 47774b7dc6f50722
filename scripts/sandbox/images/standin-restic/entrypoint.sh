#!/bin/sh
# docker.io/restic/restic's entrypoint contract: restic with the container's arguments, under `nice -n $NICE`,
# and under `ionice -c $IONICE_CLASS -n $IONICE_PRIORITY` when IONICE_CLASS is set.
set -e
set -- /usr/bin/restic "$@"
if [ -n "${IONICE_CLASS:-}" ]; then set -- ionice -c "$IONICE_CLASS" -n "${IONICE_PRIORITY:-4}" "$@"; fi
exec nice -n "${NICE:-0}" "$@"
