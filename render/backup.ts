import type { Estate } from "./estate";
import { BACKUP_CONSUMER, REPOSITORY_PORT, egressNetwork, egressProxy } from "./policy";
import { TEXTFILE_DIR, gaugeHelpLines } from "./textfile";
import { networkName, type BackupMethod, type ContainerModel, type SiteModel } from "./siteModel";

/**
 * A site's backup job: one script on the host (`qcloud-backup`), run by the host's cron, that snapshots every
 * service's volumes as the catalog declares (files, database dumps, online SQLite copies, the application's
 * export) into the site's restic repository on another site, restores them, tests restores, and on a site that
 * keeps other sites' repositories applies their retention and checks them. Every run writes the gauges of
 * docs/metrics.md. The script holds no secret: those are files the install writes from its stdin.
 */

export const BACKUP_DIR = "/var/lib/qcloud/backup";
export const BACKUP_SCRIPT = "/usr/local/sbin/qcloud-backup";
export const BACKUP_CRON = "/etc/cron.d/qcloud-backup";
export const BACKUP_LOG = "/var/log/qcloud-backup.log";
/** The repository side's Docker volume (the `backup-repository` container's `data`). */
export const REPOSITORY_VOLUME = "backup-repository-data";
/** The methods whose volumes a restore writes from the snapshot's files (a database takes its dump while it runs). */
export const PLACED: ReadonlySet<BackupMethod> = new Set(["files", "export", "sqlite"]);
/** The containers whose databases a restore loads from dumps, running (engines of `postgres` volumes). */
export const databaseEngines = (containers: readonly ContainerModel[]) =>
  containers.filter((c) => c.volumes.some((v) => v.backup.method === "postgres")).map((c) => c.name);

/** One volume of a service, as the job handles it: `<service> <method> <volume> <container> [args...]`. */
interface PlanLine {
  readonly service: string;
  readonly method: "files" | "postgres" | "sqlite" | "export";
  readonly volume: string;
  readonly container: string;
  readonly args: readonly string[];
}

/** A service's containers in an order that starts each after what it depends on. */
export function startOrder(containers: readonly ContainerModel[]): string[] {
  const byName = new Map(containers.map((c) => [c.name, c]));
  const order: string[] = [];
  const visit = (c: ContainerModel) => {
    if (order.includes(c.name)) return;
    for (const d of c.dependsOn) {
      const dep = byName.get(d);
      if (dep) visit(dep);
    }
    order.push(c.name);
  };
  containers.forEach(visit);
  return order;
}

/** Every kept volume of the site, and the services that have one (sorted): what the job backs up. */
export function backupPlan(site: SiteModel): { lines: PlanLine[]; services: string[] } {
  const lines: PlanLine[] = [];
  for (const s of site.services) {
    for (const c of s.containers) {
      for (const v of c.volumes) {
        const b = v.backup;
        const base = { service: s.name, volume: v.volume, container: c.name };
        if (b.method === "files") lines.push({ ...base, method: "files", args: [] });
        else if (b.method === "postgres")
          lines.push({ ...base, method: "postgres", args: [b.database, b.user, c.image] });
        else if (b.method === "sqlite") lines.push({ ...base, method: "sqlite", args: b.databases });
        else if (b.method === "export") lines.push({ ...base, method: "export", args: b.paths });
      }
    }
  }
  return { lines, services: [...new Set(lines.map((l) => l.service))].sort() };
}

/**
 * The repository URL of `site`'s backups on its target. With the REST user's password it is a secret (the job's);
 * without, it may be shown (the stack's output).
 */
export function repositoryUrl(estate: Estate, site: string, target: string, restPassword?: string): string {
  const host = estate.sites.find((s) => s.name === target)?.meshHost;
  if (!host) throw new Error(`site \`${site}\` backs up to \`${target}\`, which is not a site of the estate`);
  const user = restPassword === undefined ? site : `${site}:${restPassword}`;
  return `rest:http://${user}@${host}:${REPOSITORY_PORT}/${site}/`;
}

/**
 * The job's secrets as the install reads them from stdin, one `name value` a line: `repository` (the URL),
 * `password` (this site's repository password), `hosted/<site>` (the password of each repository kept here).
 */
export function renderBackupSecrets(secrets: Readonly<Record<string, string>>): string {
  return Object.entries(secrets)
    .map(([k, v]) => {
      if (!/^[a-z0-9/-]+$/.test(k) || /\s/.test(v))
        throw new Error(`backup secret \`${k}\`: unexpected characters`);
      return `${k} ${v}\n`;
    })
    .join("");
}

/** The gauges the job writes, with their help texts: docs/metrics.md says the same (a test holds them together). */
export const GAUGES: Readonly<Record<string, string>> = {
  qcloud_backup_last_success_timestamp_seconds: "Unix time of the last successful backup.",
  qcloud_backup_last_run_success: "Whether the latest backup attempt succeeded (1) or failed (0).",
  qcloud_backup_duration_seconds: "How long the latest backup attempt took.",
  qcloud_backup_added_bytes:
    "Data the last successful backup added to the repository (restic data_added_packed: compressed, what lands on disk).",
  qcloud_backup_snapshots: "Snapshots of the backup in the repository after the run.",
  qcloud_backup_repository_up: "Whether the repository answered at the latest attempt (1) or not (0).",
  qcloud_restore_test_last_success_timestamp_seconds: "Unix time of the last successful restore test.",
  qcloud_restore_test_success: "Whether the latest restore test succeeded (1) or failed (0).",
  qcloud_restore_test_duration_seconds: "How long the latest restore test took.",
  qcloud_backup_check_last_success_timestamp_seconds:
    "Unix time of the last successful check of the repository.",
  qcloud_backup_check_success: "Whether the latest check of the repository succeeded (1) or failed (0).",
  qcloud_backup_repository_size_bytes: "Size of the repository on disk.",
  qcloud_backup_repository_avail_bytes: "Free space of the filesystem holding the repositories.",
  qcloud_backup_repository_fs_size_bytes: "Size of the filesystem holding the repositories.",
};

/** `restic forget` flags of a retention. */
const keepFlags = (r: SiteModel["backup"]["retention"]) =>
  `--keep-daily ${r.daily} --keep-weekly ${r.weekly} --keep-monthly ${r.monthly}`;

/** The job: see the usage in its header. */
export function renderBackupScript(site: SiteModel): string {
  const { lines, services } = backupPlan(site);
  const target = site.backup.target ?? "";
  const orders = site.services
    .filter((s) => services.includes(s.name))
    .map((s) => `${s.name} ${startOrder(s.containers).join(" ")}`);
  const deps = site.services
    .filter((s) => services.includes(s.name))
    .flatMap((s) => s.containers.filter((c) => c.dependsOn.length > 0))
    .map((c) => `${c.name} ${c.dependsOn.join(" ")}`);
  const hosted = site.backup.hosted;
  return `#!/usr/bin/env bash
# qcloud-backup: site ${site.name}'s backups. Generated by qui3tly-cloud (render/backup.ts) from the catalog and
# ${site.file}: do not edit here.
#
#   qcloud-backup run [service...]           back up now (every service by default) into ${target || "(no target)"}'s repository
#   qcloud-backup restore-test [service...]  restore the newest snapshots into scratch space and check them
#   qcloud-backup snapshots                  this site's snapshots (restic's JSON)
#   qcloud-backup restore SERVICE SNAPSHOT   stop SERVICE, put its volumes and databases back, start it
#   qcloud-backup place SERVICE DIR          a new host (npm run dr): a fetched snapshot into SERVICE's new volumes
#   qcloud-backup load-dumps SERVICE DIR     a new host, before what uses them starts: the dumps into SERVICE's databases
#   qcloud-backup maintain                   the repositories kept here: retention (forget --prune), sizes
#   qcloud-backup check                      the repositories kept here: restic check, a fifth of the data a week
#   qcloud-backup restic ARGS...             restic against this site's own repository
#   qcloud-backup kept SITE ARGS...          restic on the repository this site keeps for SITE (repairs)
#   qcloud-backup init-metrics               the gauges as installed (0 for services never backed up)
#
# Jobs run one at a time (a lock); cron logs to ${BACKUP_LOG}. Gauges: ${TEXTFILE_DIR}/*.prom.
set -euo pipefail
umask 077

SITE=${site.name}
DIR=${BACKUP_DIR}
METRICS=${TEXTFILE_DIR}
RESTIC_IMAGE=${site.backup.images.restic}
SQLITE_IMAGE=${site.backup.images.sqlite}
# restic reaches the other site through the backup job's own egress node (its key's one flow: the repository),
# on a network the job shares with that node alone.
NETWORK=${networkName(egressNetwork(BACKUP_CONSUMER))}
PROXY=${egressProxy(BACKUP_CONSUMER)}
TARGET=${target}
SERVICES=(${services.join(" ")})
# The repositories this site keeps (other sites'), and the retention each asks for.
HOSTED=(${hosted.map((h) => h.site).join(" ")})
declare -A KEEP=(${hosted.map((h) => `[${h.site}]="${keepFlags(h.retention)}"`).join(" ")})
REPOSITORY_VOLUME=${REPOSITORY_VOLUME}

# What each service keeps: service method volume container [args]. postgres: database user image;
# sqlite: database files; export: the application's export paths (relative to the volume).
PLAN='
${lines.map((l) => [l.service, l.method, l.volume, l.container, ...l.args].join(" ")).join("\n")}
'
# Each service's containers, each after what it depends on; and what each depends on.
ORDER='
${orders.join("\n")}
'
DEPS='
${deps.join("\n")}
'
GAUGES='
${gaugeHelpLines(GAUGES)}
'

log() { printf '%s qcloud-backup[%s]: %s\\n' "$(date -u +%FT%TZ)" "$SITE" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
plan_of() { awk -v s="$1" '$1 == s' <<<"$PLAN"; }
order_of() { awk -v s="$1" '$1 == s { $1 = ""; print }' <<<"$ORDER"; }
deps_of() { awk -v c="$1" '$1 == c { $1 = ""; print }' <<<"$DEPS"; }
known() { [[ " \${SERVICES[*]} " == *" $1 "* ]] || die "no service '$1' with backups on $SITE (known: \${SERVICES[*]})"; }

# restic_own [docker args...] -- restic args: restic against this site's repository.
restic_own() {
  local d=()
  while [ "$1" != -- ]; do d+=("$1"); shift; done
  shift
  docker run --rm --network "$NETWORK" -e "HTTP_PROXY=$PROXY" -e "http_proxy=$PROXY" \\
    -v "$DIR/secrets:/secrets:ro" -v "$DIR/cache:/root/.cache/restic" "\${d[@]}" "$RESTIC_IMAGE" \\
    --repository-file /secrets/repository --password-file /secrets/password --retry-lock 10m "$@"
}
# restic_hosted SITE args: restic on a repository kept here, straight from its directory.
restic_hosted() {
  local client=$1
  shift
  docker run --rm -v "$REPOSITORY_VOLUME:/data" -v "$DIR/secrets/hosted:/secrets:ro" \\
    -v "$DIR/cache:/root/.cache/restic" "$RESTIC_IMAGE" \\
    --repo "/data/$client" --password-file "/secrets/$client" --retry-lock 30m "$@"
}
# in_tool [docker args...] -- script: a shell in the restic image (find, sha256sum, stat, du, df).
in_tool() {
  local d=()
  while [ "$1" != -- ]; do d+=("$1"); shift; done
  shift
  docker run --rm "\${d[@]}" --entrypoint sh "$RESTIC_IMAGE" -c "$@"
}
# The repository answers (its REST server asks for a password) through the tailnet, within 30 s.
repository_up() {
  local url status
  url="$(sed -E 's#^rest:(https?://)[^@/]*@#\\1#' "$DIR/secrets/repository")"
  status=$(docker run --rm --network "$NETWORK" -e "http_proxy=$PROXY" --entrypoint sh "$RESTIC_IMAGE" -c \\
    "timeout 30 wget -S -O /dev/null '$url' 2>&1 | sed -n 's/^ *HTTP\\/[0-9.]* \\([0-9]*\\).*/\\1/p' | tail -n1" || true)
  [ "$status" = 401 ] || [ "$status" = 200 ]
}

# Gauges: state files per series (one line a sample), published as one textfile each, HELP and TYPE once.
setm() { # file metric selector value
  mkdir -p "$(dirname "$1")"
  { grep -v -F "$2$3 " "$1" 2>/dev/null || true; echo "$2$3 $4"; } >"$1.tmp"
  mv "$1.tmp" "$1"
}
getm() { sed -n "s/^$2$3 //p" "$1" 2>/dev/null | head -n1; }
publish() { # name state-dir
  local out="$METRICS/$1.prom"
  install -d -m 755 "$METRICS" # node-exporter reads it as its own uid (catalog/agents.ts), an "other"
  # No state yet (a site that keeps no repository yet, a first install): an empty file, not an error.
  { cat "$2"/*.prom 2>/dev/null || true; } | { grep . || true; } | LC_ALL=C sort | GAUGES="$GAUGES" awk '
    BEGIN { n = split(ENVIRON["GAUGES"], g, "\\n"); for (i = 1; i <= n; i++) { k = g[i]; sub(/ .*/, "", k); h[k] = substr(g[i], length(k) + 2) } }
    { m = $0; sub(/[{ ].*/, "", m); if (m != last) { print "# HELP " m " " h[m]; print "# TYPE " m " gauge"; last = m } print }
  ' >"$out.tmp"
  chmod 644 "$out.tmp" # node-exporter reads it as its own uid (catalog/agents.ts), an "other"
  mv "$out.tmp" "$out"
}

# ---------------------------------------------------------------------------------------------- backup
# Each collects into STAGING (dumps, copies, manifests) and adds docker mounts, paths and excludes for restic.
postgres_backup() { # volume container database user image
  docker exec "$2" pg_dump --clean --if-exists --no-owner -U "$4" -d "$3" >"$STAGING/dumps/$2.sql"
  # Rows per table, from the dump itself: what the restore test must find again.
  awk '/^COPY / { t = $2; n = 0; inside = 1; next } inside && /^\\\\\\.$/ { print t, n; inside = 0; next } inside { n++ }' \\
    "$STAGING/dumps/$2.sql" >"$STAGING/dumps/$2.counts"
}
manifest() { # volume [paths...]: sha256 of every file, before restic reads them
  local vol=$1
  shift
  in_tool -v "$vol:/v:ro" -v "$STAGING/manifests:/m" -- \\
    "cd /v && find \${*:-.} -type f \${EXCLUDE_FIND:-} -print0 | { xargs -0 -r sha256sum 2>/m/$vol.vanished || true; } >/m/$vol.sha256"
}
files_backup() { # volume container
  EXCLUDE_FIND="" manifest "$1"
  MOUNTS+=(-v "$1:/backup/volumes/$1:ro")
  PATHS+=("/backup/volumes/$1")
}
sqlite_backup() { # volume container database...
  local vol=$1 db owner not=""
  shift 2
  mkdir -p "$STAGING/sqlite/$vol"
  for db; do
    owner=$(in_tool -v "$vol:/data:ro" -- "if [ -e '/data/$db' ]; then stat -c %u:%g '/data/$db'; fi")
    if [ -z "$owner" ]; then
      log "$vol: no database $db yet"
      continue
    fi
    echo "$owner" >"$STAGING/sqlite/$vol/$db.owner"
    # Online, consistent: SQLite's backup API, while the service writes.
    docker run --rm --user 0:0 -v "$vol:/data" -v "$STAGING/sqlite/$vol:/out" --entrypoint sqlite3 "$SQLITE_IMAGE" \\
      -cmd ".timeout 60000" "/data/$db" ".backup '/out/$db'"
    EXCLUDES+=(--exclude "/backup/volumes/$vol/$db" --exclude "/backup/volumes/$vol/$db-*")
    not+=" ! -path './$db' ! -path './$db-*'"
  done
  EXCLUDE_FIND="$not" manifest "$vol"
  MOUNTS+=(-v "$vol:/backup/volumes/$vol:ro")
  PATHS+=("/backup/volumes/$vol")
}
export_backup() { # volume container path...
  local vol=$1 p present=()
  shift 2
  for p; do
    if [ "$(in_tool -v "$vol:/v:ro" -- "if [ -e '/v/$p' ]; then echo yes; fi")" = yes ]; then present+=("$p"); fi
  done
  if [ \${#present[@]} -eq 0 ]; then
    log "$vol: the application has exported nothing yet ($*)"
    return 0
  fi
  EXCLUDE_FIND="" manifest "$vol" "\${present[@]}"
  MOUNTS+=(-v "$vol:/backup/volumes/$vol:ro")
  for p in "\${present[@]}"; do PATHS+=("/backup/volumes/$vol/$p"); done
}

backup_one() { # service (a process of its own: set -e holds)
  local svc=$1 line method vol container args summary rc=0
  STAGING="$DIR/staging/$svc"
  rm -rf "$STAGING"
  mkdir -p "$STAGING/dumps" "$STAGING/sqlite" "$STAGING/manifests"
  date +%s >"$STAGING/started"
  MOUNTS=(-v "$STAGING:/backup/staging:ro")
  PATHS=(/backup/staging)
  EXCLUDES=()
  while read -r line; do
    read -r _ method vol container args <<<"$line"
    # shellcheck disable=SC2086 # args are words
    "\${method}_backup" "$vol" "$container" $args
  done < <(plan_of "$svc")
  restic_own "\${MOUNTS[@]}" -- backup --json --host "$SITE" --tag "service=$svc" "\${EXCLUDES[@]}" "\${PATHS[@]}" \\
    >"$STAGING/restic.json" || rc=$?
  # 3: the snapshot was made, but some file vanished or changed while being read (a live service).
  [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || die "$svc: restic backup failed (exit $rc)"
  summary=$(grep '"message_type":"summary"' "$STAGING/restic.json" | tail -n1)
  sed -n 's/.*"data_added_packed":\\([0-9]*\\).*/\\1/p' <<<"$summary" >"$STAGING/added"
  rm -rf "$STAGING/dumps" "$STAGING/sqlite"
}

cmd_run() {
  local svc t0 state="$DIR/state/backup" rc=0 sel n up=1 opened=1
  for svc in "$@"; do known "$svc"; done
  [ $# -gt 0 ] || set -- "\${SERVICES[@]}"
  [ -n "$TARGET" ] || die "no repository: this site has no backup target"
  if ! repository_up; then
    up=0
    log "the repository on $TARGET does not answer"
  elif ! restic_own -- cat config >/dev/null 2>&1; then
    log "initialising this site's repository on $TARGET"
    restic_own -- init >/dev/null || { log "cannot open or initialise the repository on $TARGET"; opened=0; }
  fi
  setm "$state/_repository.prom" qcloud_backup_repository_up "{peer=\\"$TARGET\\"}" "$up"
  publish backup "$state"
  for svc in "$@"; do
    t0=$(date +%s)
    sel="{backup=\\"$svc\\"}"
    if [ "$up" = 1 ] && [ "$opened" = 1 ] && bash "$0" _backup "$svc"; then
      n=$({ restic_own -- snapshots --json --host "$SITE" --tag "service=$svc" || true; } | grep -o '"short_id"' | wc -l)
      setm "$state/$svc.prom" qcloud_backup_last_success_timestamp_seconds "$sel" "$(date +%s)"
      setm "$state/$svc.prom" qcloud_backup_added_bytes "$sel" "$(cat "$DIR/staging/$svc/added" 2>/dev/null || echo 0)"
      setm "$state/$svc.prom" qcloud_backup_snapshots "$sel" "$n"
      setm "$state/$svc.prom" qcloud_backup_last_run_success "$sel" 1
      log "$svc: backed up in $(($(date +%s) - t0)) s"
    else
      setm "$state/$svc.prom" qcloud_backup_last_run_success "$sel" 0
      log "$svc: backup FAILED"
      rc=1
    fi
    setm "$state/$svc.prom" qcloud_backup_duration_seconds "$sel" "$(($(date +%s) - t0))"
    publish backup "$state"
  done
  return "$rc"
}

# ----------------------------------------------------------------------------------------- restore test
check_manifest() { # scratch volume method
  in_tool -v "$1:/r" -- "
    set -e
    m=/r/backup/staging/manifests/$2.sha256
    if [ ! -e \\$m ]; then
      # Only an application that had exported nothing yet has no manifest.
      [ $3 = export ] && exit 0
      echo \\"$2: the snapshot has no manifest\\" >&2
      exit 1
    fi
    cd /r/backup/volumes/$2 2>/dev/null || cd /r
    started=\\$(cat /r/backup/staging/started)
    bad=0
    sha256sum -c \\$m 2>/dev/null | sed -n 's/: FAILED.*\\$//p' >/tmp/failed || true
    while IFS= read -r f; do
      # Written, or deleted, while the backup ran: restic read a newer state than the manifest did.
      if [ ! -e \\"\\$f\\" ] || [ \\"\\$(stat -c %Y \\"\\$f\\")\\" -ge \\"\\$started\\" ]; then continue; fi
      echo \\"$2: \\$f does not match the manifest\\" >&2
      bad=1
    done </tmp/failed
    exit \\$bad"
}
check_sqlite() { # scratch volume database...
  local scratch=$1 vol=$2 db ok
  shift 2
  for db; do
    [ -f "$scratch/backup/staging/sqlite/$vol/$db" ] || continue # none when backed up
    ok=$(docker run --rm --user 0:0 -v "$scratch/backup/staging/sqlite/$vol:/s" --entrypoint sqlite3 "$SQLITE_IMAGE" \\
      "/s/$db" 'PRAGMA integrity_check;')
    [ "$ok" = ok ] || die "$vol/$db: integrity check says: $ok"
  done
}
check_postgres() { # scratch container database user image: load the dump into a scratch engine, count rows
  local dumps="$1/backup/staging/dumps" name="qcloud-restore-test-$2" i=0 table rows got bad=0
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run -d --name "$name" --network none -e POSTGRES_PASSWORD=restore-test -e "POSTGRES_USER=$4" \\
    -e "POSTGRES_DB=$3" "$5" >/dev/null
  # Over TCP: the image's first-start server listens on its socket only.
  until docker exec "$name" pg_isready -q -h 127.0.0.1 -U "$4" -d "$3"; do
    i=$((i + 1))
    [ "$i" -lt 120 ] || { docker rm -f "$name" >/dev/null; die "$2: the scratch database did not start"; }
    sleep 1
  done
  if ! docker exec -i "$name" psql -v ON_ERROR_STOP=1 -q -1 -U "$4" -d "$3" <"$dumps/$2.sql" >/dev/null; then
    docker rm -f "$name" >/dev/null
    die "$2: the dump does not load"
  fi
  while read -r table rows; do
    got=$(docker exec "$name" psql -Atq -U "$4" -d "$3" -c "SELECT count(*) FROM $table")
    if [ "$got" != "$rows" ]; then
      log "$2: $table has $got rows; the backup recorded $rows"
      bad=1
    fi
  done <"$dumps/$2.counts"
  docker rm -f "$name" >/dev/null
  [ "$bad" = 0 ]
}

restore_test_one() { # service
  local svc=$1 scratch="$DIR/scratch/$1" line method vol container args
  rm -rf "$scratch"
  mkdir -p "$scratch"
  need_space latest --host "$SITE" --tag "service=$svc"
  restic_own -v "$scratch:/restore" -- restore latest --host "$SITE" --tag "service=$svc" --target /restore
  while read -r line; do
    read -r _ method vol container args <<<"$line"
    # shellcheck disable=SC2086 # args are words
    case "$method" in
      files | export) check_manifest "$scratch" "$vol" "$method" ;;
      sqlite)
        check_manifest "$scratch" "$vol" "$method"
        check_sqlite "$scratch" "$vol" $args
        ;;
      postgres) check_postgres "$scratch" "$container" $args ;;
    esac
  done < <(plan_of "$svc")
  rm -rf "$scratch"
}

cmd_restore_test() {
  local svc t0 sel state="$DIR/state/restore-test" rc=0
  for svc in "$@"; do known "$svc"; done
  [ $# -gt 0 ] || set -- "\${SERVICES[@]}"
  for svc in "$@"; do
    t0=$(date +%s)
    sel="{backup=\\"$svc\\"}"
    if bash "$0" _restore_test "$svc"; then
      setm "$state/$svc.prom" qcloud_restore_test_last_success_timestamp_seconds "$sel" "$(date +%s)"
      setm "$state/$svc.prom" qcloud_restore_test_success "$sel" 1
      log "$svc: restore test passed in $(($(date +%s) - t0)) s"
    else
      setm "$state/$svc.prom" qcloud_restore_test_success "$sel" 0
      log "$svc: restore test FAILED"
      rc=1
    fi
    setm "$state/$svc.prom" qcloud_restore_test_duration_seconds "$sel" "$(($(date +%s) - t0))"
    publish restore-test "$state"
  done
  rm -rf "$DIR/scratch"
  return "$rc"
}

# ---------------------------------------------------------------------------------------------- restore
# The restore of a snapshot needs its whole size in scratch space, on this host's disk: refuse before filling it.
need_space() { # snapshot-or-"latest" [restic filters...]
  local size avail
  size=$(restic_own -- stats --json --mode restore-size "$@" | sed -n 's/.*"total_size":\\([0-9]*\\).*/\\1/p')
  avail=$(df -Pk "$DIR" | awk 'NR == 2 { printf "%.0f\\n", $4 * 1024 }')
  [ -n "$size" ] || die "cannot size snapshot $1"
  [ "$((size + size / 10))" -lt "$avail" ] ||
    die "snapshot $1 needs $((size / 1048576)) MB in $DIR (and a tenth more); $((avail / 1048576)) MB are free"
}
wait_healthy() { # container
  local i=0 s
  while :; do
    s=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}' "$1")
    case "$s" in
      "running healthy" | "running -") return 0 ;;
      exited* | dead*) die "$1 stopped: $s" ;;
    esac
    i=$((i + 1))
    [ "$i" -lt 900 ] || die "$1 is not healthy after 900 s ($s)"
    sleep 1
  done
}
phase() { # what t0: the time a phase took
  printf 'restore: %-28s %5s s\\n' "$1" "$(($(date +%s) - $2))"
}
# The snapshot is fetched whole into scratch space while the service still runs (restic may need the tailnet node
# this very restore stops), then copied into the stopped service's volumes.
files_restore() { # scratch volume [paths...]: replace what the snapshot holds
  local scratch=$1 vol=$2
  shift 2
  in_tool -v "$scratch:/r:ro" -v "$vol:/v" -- '
    set -e
    from=/r/backup/volumes/$1
    shift
    if [ $# -eq 0 ]; then
      find /v -mindepth 1 -delete
      if [ -d "$from" ]; then cp -a "$from/." /v/; fi
    else
      for p; do rm -rf "/v/$p"; if [ -e "$from/$p" ]; then mkdir -p "/v/$(dirname "$p")" && cp -a "$from/$p" "/v/$p"; fi; done
    fi' _ "$vol" "$@"
}
sqlite_restore() { # scratch volume database...
  local scratch=$1 vol=$2
  shift 2
  in_tool -v "$scratch:/r:ro" -v "$vol:/v" -- '
    set -e
    from=/r/backup/staging/sqlite/$1
    shift
    for db; do
      [ -f "$from/$db" ] || continue
      rm -f "/v/$db-wal" "/v/$db-shm"
      cp "$from/$db" "/v/$db"
      chown "$(cat "$from/$db.owner")" "/v/$db"
    done' _ "$vol" "$@"
}
postgres_restore() { # scratch container database user
  wait_healthy "$2"
  docker exec -i "$2" psql -v ON_ERROR_STOP=1 -q -1 -U "$4" -d "$3" <"$1/backup/staging/dumps/$2.sql" >/dev/null
}

# Every volume the plan keeps as files must be in the fetched snapshot: an empty volume is no restore.
check_fetched() { # scratch service what
  local line method vol
  while read -r line; do
    read -r _ method vol _ <<<"$line"
    case "$method" in files | sqlite) [ -d "$1/backup/volumes/$vol" ] || die "$3 has no $vol" ;; esac
  done < <(plan_of "$2")
}
# The service's volumes kept as files, sqlite copies and exports, from the fetched snapshot; its containers stopped.
place_volumes() { # scratch service
  local line method vol container args t0
  while read -r line; do
    read -r _ method vol container args <<<"$line"
    t0=$(date +%s)
    # shellcheck disable=SC2086 # args are words
    case "$method" in
      files) files_restore "$1" "$vol" ;;
      export) files_restore "$1" "$vol" $args ;;
      sqlite)
        files_restore "$1" "$vol"
        sqlite_restore "$1" "$vol" $args
        ;;
      *) continue ;;
    esac
    phase "$vol ($method)" "$t0"
    if [ "$method" = export ]; then log "$vol: the application's own backups are back: restore from them in its UI"; fi
  done < <(plan_of "$2")
}
# Its databases from the fetched dumps, each engine started (if it is not yet); nothing that uses them runs.
load_dumps() { # scratch service
  local line method vol container args t0
  while read -r line; do
    read -r _ method vol container args <<<"$line"
    [ "$method" = postgres ] || continue
    t0=$(date +%s)
    docker start "$container" >/dev/null
    # shellcheck disable=SC2086 # args are words
    postgres_restore "$1" "$container" $args
    phase "$vol ($method)" "$t0"
  done < <(plan_of "$2")
}
# From here on a failure leaves the service stopped: say so, and what to do.
stop_service() { # service
  local i t0
  trap 'rc=$?; [ "$rc" = 0 ] || log "restore of '"$1"' FAILED (exit $rc): its containers are stopped (\${order[*]}) and its volumes may be half replaced; fix the cause and run the restore again (docker start them to run on what is there)"' EXIT
  t0=$(date +%s)
  for ((i = \${#order[@]} - 1; i >= 0; i--)); do docker stop -t 30 "\${order[$i]}" >/dev/null; done
  phase "stop $1" "$t0"
}
# Each starts once what it depends on is healthy, the others meanwhile: health checks run in parallel.
start_service() { # service
  local c d t0
  t0=$(date +%s)
  for c in "\${order[@]}"; do
    for d in $(deps_of "$c"); do wait_healthy "$d"; done
    docker start "$c" >/dev/null
  done
  for c in "\${order[@]}"; do wait_healthy "$c"; done
  phase "start $1, healthy" "$t0"
}

cmd_restore() { # service snapshot
  local svc=$1 snap=$2 scratch="$DIR/scratch/restore" t0 start
  known "$svc"
  start=$(date +%s)
  read -r -a order <<<"$(order_of "$svc")"
  restic_own -- snapshots --json "$snap" | grep -q "\\"service=$svc\\"" ||
    die "snapshot $snap is not one of $svc's"
  need_space "$snap"
  rm -rf "$scratch"
  mkdir -p "$scratch"
  t0=$(date +%s)
  restic_own -v "$scratch:/restore" -- restore "$snap" --target /restore >/dev/null
  check_fetched "$scratch" "$svc" "snapshot $snap"
  phase "fetch snapshot $snap" "$t0"
  stop_service "$svc"
  place_volumes "$scratch" "$svc"
  load_dumps "$scratch" "$svc"
  start_service "$svc"
  rm -rf "$scratch"
  phase "total" "$start"
}

# A new host (npm run dr, npm run move): the service's volumes exist, empty, and no container of a volume placed
# here exists yet (its databases, loaded from dumps, and what keeps no data may run already).
cmd_place() { # service dir
  local svc=$1 method vol c
  known "$svc"
  [ -d "$2/backup" ] || die "$2 holds no fetched snapshot"
  check_fetched "$2" "$svc" "$2"
  while read -r _ method vol _; do
    docker volume inspect "$vol" >/dev/null 2>&1 || die "volume $vol does not exist: create the site's volumes first"
    case "$method" in
      ${[...PLACED].join(" | ")})
        c=$(docker ps -aq --filter "volume=$vol" | xargs)
        [ -z "$c" ] || die "container $c mounts $vol: it is placed before their first start (a running service: restore)"
        ;;
    esac
  done < <(plan_of "$svc")
  place_volumes "$2" "$svc"
}

# A new host: the service's database engines run, created and healthy; nothing that depends on another container
# of it (what would write to them) exists yet.
cmd_load_dumps() { # service dir
  local svc=$1 c
  known "$svc"
  plan_of "$svc" | awk '$2 == "postgres"' | grep -q . || return 0
  [ -d "$2/backup/staging/dumps" ] || die "$2 holds no database dumps"
  for c in $(order_of "$svc"); do
    [ -n "$(deps_of "$c")" ] || continue
    ! docker container inspect "$c" >/dev/null 2>&1 ||
      die "container $c exists: load-dumps is for a new host, before the first start of what uses the databases (a running service: restore)"
  done
  load_dumps "$2" "$svc"
}

# ------------------------------------------------------------------------------------------- repository
cmd_maintain() {
  local client state="$DIR/state/repository" rc=0 df future
  for client in "\${HOSTED[@]}"; do
    if ! in_tool -v "$REPOSITORY_VOLUME:/data:ro" -- "test -f /data/$client/config"; then
      log "$client: no repository yet"
      continue
    fi
    # A snapshot dated ahead (a forged one) would take the newest place in every bucket: no retention then.
    future=$(restic_hosted "$client" snapshots --json | grep -o '"time":"[^"]*"' | cut -d'"' -f4 |
      while read -r t; do [ "$(date -d "$t" +%s)" -le "$(($(date +%s) + 3600))" ] || echo "$t"; done)
    # shellcheck disable=SC2086 # the flags are words
    if [ -n "$future" ]; then
      log "$client: snapshots dated in the future ($future): retention NOT applied; see the BackupCheckFailed runbook"
      rc=1
    elif restic_hosted "$client" forget --prune --group-by host,tags \${KEEP[$client]}; then
      log "$client: retention applied (\${KEEP[$client]})"
    else
      log "$client: forget --prune FAILED"
      rc=1
    fi
    setm "$state/$client.prom" qcloud_backup_repository_size_bytes "{peer=\\"$client\\"}" \\
      "$(in_tool -v "$REPOSITORY_VOLUME:/data:ro" -- "du -sk /data/$client | cut -f1" | awk '{ printf "%.0f\\n", $1 * 1024 }')"
  done
  df=$(in_tool -v "$REPOSITORY_VOLUME:/data:ro" -- "df -Pk /data | tail -n1")
  setm "$state/_fs.prom" qcloud_backup_repository_avail_bytes "" "$(awk '{ printf "%.0f\\n", $4 * 1024 }' <<<"$df")"
  setm "$state/_fs.prom" qcloud_backup_repository_fs_size_bytes "" "$(awk '{ printf "%.0f\\n", $2 * 1024 }' <<<"$df")"
  publish backup-repository "$state"
  return "$rc"
}

cmd_check() {
  local client state="$DIR/state/repository" rc=0 sel subset
  # A different fifth of the data every week: all of it read every five weeks.
  subset="$((10#$(date +%V) % 5 + 1))/5"
  for client in "\${HOSTED[@]}"; do
    in_tool -v "$REPOSITORY_VOLUME:/data:ro" -- "test -f /data/$client/config" || continue
    sel="{peer=\\"$client\\"}"
    if restic_hosted "$client" check --read-data-subset "$subset"; then
      setm "$state/$client.prom" qcloud_backup_check_last_success_timestamp_seconds "$sel" "$(date +%s)"
      setm "$state/$client.prom" qcloud_backup_check_success "$sel" 1
    else
      setm "$state/$client.prom" qcloud_backup_check_success "$sel" 0
      log "$client: repository check FAILED"
      rc=1
    fi
  done
  publish backup-repository "$state"
  return "$rc"
}

cmd_init_metrics() {
  local svc f state="$DIR/state/backup"
  mkdir -p "$state" "$DIR/state/restore-test" "$DIR/state/repository"
  for svc in "\${SERVICES[@]}"; do
    [ -f "$state/$svc.prom" ] ||
      setm "$state/$svc.prom" qcloud_backup_last_success_timestamp_seconds "{backup=\\"$svc\\"}" 0
  done
  # Services no longer here, repositories no longer kept here: their gauges go.
  for f in "$state"/*.prom "$DIR/state/restore-test"/*.prom; do
    [ -e "$f" ] || continue
    svc=$(basename "$f" .prom)
    [ "$svc" = _repository ] || [[ " \${SERVICES[*]} " == *" $svc "* ]] || rm -f "$f"
  done
  for f in "$DIR/state/repository"/*.prom; do
    [ -e "$f" ] || continue
    svc=$(basename "$f" .prom)
    [ "$svc" = _fs ] || [[ " \${HOSTED[*]} " == *" $svc "* ]] || rm -f "$f"
  done
  publish backup "$state"
  if [ -n "$(ls "$DIR/state/restore-test")" ]; then publish restore-test "$DIR/state/restore-test"; fi
  if [ \${#HOSTED[@]} -gt 0 ]; then publish backup-repository "$DIR/state/repository"; fi
}

# One job at a time; the internal steps run in processes of their own, where \`set -e\` holds.
locked() {
  exec 9>"$DIR/lock"
  flock -w 7200 9 || die "another qcloud-backup job holds $DIR/lock"
  "$@"
}
mkdir -p "$DIR/cache" "$DIR/staging" "$DIR/state"
case "\${1:-}" in
  run) shift && locked cmd_run "$@" ;;
  restore-test) shift && locked cmd_restore_test "$@" ;;
  restore)
    [ $# -eq 3 ] || die "usage: qcloud-backup restore SERVICE SNAPSHOT"
    locked cmd_restore "$2" "$3"
    ;;
  place | load-dumps)
    [ $# -eq 3 ] || die "usage: qcloud-backup $1 SERVICE DIR"
    locked "cmd_\${1//-/_}" "$2" "$3"
    ;;
  snapshots) restic_own -- snapshots --json ;;
  maintain) locked cmd_maintain ;;
  check) locked cmd_check ;;
  restic) shift && restic_own -- "$@" ;;
  kept)
    [[ " \${HOSTED[*]} " == *" \${2:-} "* ]] || die "this site keeps no repository of '\${2:-}' (it keeps: \${HOSTED[*]})"
    restic_hosted "$2" "\${@:3}"
    ;;
  init-metrics)
    # Run by every install (\`pulumi up\`): it waits for a running job a minute at most, then leaves the gauges to it.
    exec 9>"$DIR/lock"
    if flock -w 60 9; then cmd_init_metrics; else log "a job is running: it publishes the gauges"; fi
    ;;
  _backup) backup_one "$2" ;;
  _restore_test) restore_test_one "$2" ;;
  *)
    sed -n '5,15p' "$0" | sed 's/^# \\{0,1\\}//' >&2
    exit 2
    ;;
esac
`;
}

/** The host's cron: the backup and the restore test, and on a site that keeps repositories, their upkeep. */
export function renderBackupCron(site: SiteModel): string {
  const job = (when: string, what: string) => `${when} root ${BACKUP_SCRIPT} ${what} >>${BACKUP_LOG} 2>&1`;
  const hosted = site.backup.hosted.length > 0;
  // Upkeep of the repositories kept here: daily, two hours after this site's own backup window.
  const upkeep = site.backup.schedule.split(" ");
  return [
    `# Generated by qui3tly-cloud (render/backup.ts): site ${site.name}'s backups. Times are the host's.`,
    "SHELL=/bin/bash",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ...(site.backup.target
      ? [job(site.backup.schedule, "run"), job(site.backup.restoreTest, "restore-test")]
      : [`# No backup: ${site.name} has no other site to keep its repository.`]),
    ...(hosted
      ? [
          job(`${upkeep[0]} 7 * * *`, "maintain"),
          job(`${upkeep[0]} 8 * * ${site.backup.restoreTest.split(" ")[4]}`, "check"),
        ]
      : []),
    "",
  ].join("\n");
}

/** Shell lines that install cron where the host lacks it and start it: host jobs' installs end with them. */
export const ENSURE_CRON: readonly string[] = [
  "if ! command -v cron >/dev/null 2>&1; then",
  "  export DEBIAN_FRONTEND=noninteractive",
  "  apt-get update -q >/dev/null && apt-get install -y -q cron >/dev/null",
  "fi",
  "if [ -d /run/systemd/system ]; then systemctl enable --now cron >/dev/null 2>&1",
  "elif ! pgrep -x cron >/dev/null 2>&1; then cron; fi",
];

/**
 * Installs the job on the host (run over SSH): the script, the cron file, the secrets read from stdin into 0600
 * files (never a command line), cron itself where the host lacks it, and the gauges as installed.
 */
export function renderBackupInstall(site: SiteModel): string {
  const logrotate = [
    `${BACKUP_LOG} {`,
    "  weekly",
    "  rotate 8",
    "  compress",
    "  missingok",
    "  notifempty",
    "}",
    "",
  ];
  return [
    "set -eu",
    "umask 077",
    // The job writes /etc/cron.d, /usr/local/sbin and runs Docker and restic as root, as Docker's bootstrap does.
    `[ "$(id -u)" = 0 ] || { echo "the backup job installs as root; $(id -un) is not: set host.user to root" >&2; exit 1; }`,
    `mkdir -p ${BACKUP_DIR}/secrets/hosted`,
    `cat >${BACKUP_SCRIPT}.tmp <<'QCLOUD_BACKUP_SCRIPT'`,
    renderBackupScript(site).trimEnd(),
    "QCLOUD_BACKUP_SCRIPT",
    `chmod 755 ${BACKUP_SCRIPT}.tmp && mv ${BACKUP_SCRIPT}.tmp ${BACKUP_SCRIPT}`,
    `cat >${BACKUP_CRON} <<'QCLOUD_BACKUP_CRON'`,
    renderBackupCron(site).trimEnd(),
    "QCLOUD_BACKUP_CRON",
    `chmod 644 ${BACKUP_CRON}`,
    "if [ -d /etc/logrotate.d ]; then",
    `  printf '%s\\n' ${logrotate.map((l) => `'${l}'`).join(" ")} >/etc/logrotate.d/qcloud-backup`,
    "  chmod 644 /etc/logrotate.d/qcloud-backup",
    "fi",
    `rm -f ${BACKUP_DIR}/secrets/hosted/*`,
    'while read -r name value; do printf \'%s\\n\' "$value" >"' + BACKUP_DIR + '/secrets/$name"; done',
    ...ENSURE_CRON,
    `${BACKUP_SCRIPT} init-metrics`,
    "",
  ].join("\n");
}

/** Removes the job (the repositories and the gauges' history stay). */
export function renderBackupUninstall(): string {
  return [
    "set -eu",
    `rm -f ${BACKUP_CRON} ${BACKUP_SCRIPT} /etc/logrotate.d/qcloud-backup`,
    `rm -rf ${BACKUP_DIR}/secrets ${BACKUP_DIR}/staging ${BACKUP_DIR}/scratch`,
    "",
  ].join("\n");
}
