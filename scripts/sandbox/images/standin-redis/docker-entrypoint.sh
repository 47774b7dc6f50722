#!/bin/sh
# The official redis image's entrypoint contract: flags or a .conf file as first argument mean redis-server.
set -e
if [ "${1#-}" != "${1:-}" ] || [ "${1%.conf}" != "${1:-}" ]; then set -- redis-server "$@"; fi
exec "$@"
