#!/bin/sh
# Stand-in for the nextcloud image's /cron.sh: it also runs busybox crond in the foreground
# (Debian's busybox-static: the dynamic busybox package has no crond applet).
set -e
mkdir -p /var/spool/cron/crontabs
exec busybox crond -f -l 8 -L /dev/stdout
