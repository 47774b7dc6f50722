#!/bin/sh
# docker.io/restic/rest-server's /entrypoint.sh contract: serve $DATA_DIRECTORY, users from $PASSWORD_FILE (made
# empty, with a warning, if missing), extra flags from $OPTIONS; DISABLE_AUTHENTICATION set adds --no-auth.
set -e
if [ -n "${DISABLE_AUTHENTICATION:-}" ]; then
  OPTIONS="--no-auth ${OPTIONS:-}"
else
  [ -f "$PASSWORD_FILE" ] || (umask 027 && touch "$PASSWORD_FILE")
  [ -s "$PASSWORD_FILE" ] || echo "**WARNING** No user exists, please 'docker exec -it \$CONTAINER_ID create_user'"
fi
# shellcheck disable=SC2086 # OPTIONS is a list of flags, split as upstream does
exec rest-server --path "$DATA_DIRECTORY" --htpasswd-file "$PASSWORD_FILE" ${OPTIONS:-}
