import type { Estate } from "./estate";
import { probeJob } from "./prometheus";
import { toYaml } from "./yaml";

/**
 * The alert rules, generated from the estate, and their `promtool test rules` cases: each alert is defined once,
 * with a case where it fires and one where it stays silent, so the rules and their tests cannot drift apart.
 */

/** Where the runbooks are when the stack file names no URL: a path in this repository. */
export const RUNBOOKS_PATH = "docs/runbooks.md";

export type Severity = "critical" | "warning";
type Labels = Readonly<Record<string, string>>;

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  /** How long the condition holds before it fires. */
  readonly for: string;
  readonly severity: Severity;
  /** Labels besides `severity`. */
  readonly labels?: Labels;
  /** Templates may use `{{ $labels.<name> }}` only (the tests expand them). */
  readonly summary: string;
  readonly description: string;
}

/** A promtool case: series (selector -> promtool values, one sample a minute), when to look, what fires then. */
export interface AlertCase {
  readonly series: Readonly<Record<string, string>>;
  readonly at: string;
  /** The firing alerts' labels besides `alertname` and `severity`; none for a silent case. */
  readonly fires: readonly Labels[];
}

export interface AlertDef {
  readonly alert: string;
  readonly rules: readonly AlertRule[];
  readonly fires: AlertCase;
  readonly silent: AlertCase;
}

/** Builds a series selector: `name{a="1",b="2"}`. */
const sel = (name: string, labels: Labels) =>
  `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(",")}}`;

/** One rule and its two cases. */
function alert(
  rule: Omit<AlertRule, "alert"> & { alert: string },
  cases: { fires: AlertCase; silent: Omit<AlertCase, "fires"> },
): AlertDef {
  return { alert: rule.alert, rules: [rule], fires: cases.fires, silent: { ...cases.silent, fires: [] } };
}

/**
 * An alert on a job's gauge of its latest attempt (1 or 0): fires as soon as it is 0 (the job has finished: waiting
 * changes nothing), resolves with the next success. Its cases: a failure after a success, beside a series that
 * stays quiet; a success after a failure (only the latest attempt counts).
 */
function latestAttemptFailed(
  rule: Omit<AlertRule, "expr" | "for">,
  gauge: string,
  failing: Labels,
  quiet?: Labels,
): AlertDef {
  return alert(
    { ...rule, expr: `${gauge} == 0`, for: "0m" },
    {
      fires: {
        series: { [sel(gauge, failing)]: "1x10 0x10", ...(quiet ? { [sel(gauge, quiet)]: "1x20" } : {}) },
        at: "15m",
        fires: [failing],
      },
      silent: { series: { [sel(gauge, failing)]: "0x10 1x10" }, at: "15m" },
    },
  );
}

const LADY = { site: "lady", role: "services" } as const;
const LADY_NODE = {
  job: "lady/node-exporter",
  ...LADY,
  service: "node-exporter",
  container: "node-exporter",
};
/** The control plane's exporter: the site that keeps the other sites' backup repositories. */
const MASTER_NODE = {
  job: "master/node-exporter",
  site: "master",
  role: "control-plane",
  service: "node-exporter",
  container: "node-exporter",
};

/**
 * The rules files by name (under Prometheus' rules dir): the fixed alerts, the drift check's, and ContainerDown,
 * one rule per site from the model. Apart, because promtool evaluates every rule of a file in each case: the long
 * per-site rules would slow every other alert's cases tenfold, and the drift cases span a day.
 */
export function ruleFiles(estate: Estate, interval = "30s"): Record<string, AlertDef[]> {
  return {
    "qcloud.yml": alertDefs(interval),
    "drift.yml": driftDefs(),
    "containers.yml": [...containerDefs(estate), ...syncDefs(estate)],
  };
}

/** How many failed scrapes in a row make a site down. */
const SITE_DOWN_SCRAPES = 6;

/** How old a weekly job's last success may be: two weekly periods, plus a day's slack for a late or slow run. */
const WEEKLY_MAX_AGE_DAYS = 15;

/**
 * How old the last completed drift check may be: the scheduled check runs every 6 hours, so four runs missed or
 * failed in a row, plus an hour for GitHub's late starts of scheduled workflows and the check's own minutes.
 */
const DRIFT_MAX_AGE_HOURS = 4 * 6 + 1;

/** The alerts that do not depend on the estate's shape; `interval` is the scrape interval (`30s`). */
function alertDefs(interval: string): AlertDef[] {
  const siteDownFor = `${SITE_DOWN_SCRAPES * Number(interval.slice(0, -1))}s`;
  return [
    alert(
      {
        alert: "SiteDown",
        // The host's own exporter is the site's heartbeat: it answers while the host, its Docker and its path
        // to the control plane (the tailnet node) all work.
        expr: 'up{service="node-exporter"} == 0',
        for: siteDownFor,
        severity: "critical",
        summary: "Site {{ $labels.site }} is down",
        description: `The host exporter of site {{ $labels.site }} has not answered ${SITE_DOWN_SCRAPES} scrapes in a row: the host, its Docker daemon, its path to the control plane (its tailnet node) or the exporter itself is down.`,
      },
      {
        fires: {
          series: {
            [sel("up", LADY_NODE)]: "0x10",
            [sel("up", { ...LADY, job: "lady/cadvisor", service: "cadvisor" })]: "1x10",
            [sel("up", {
              site: "master",
              role: "control-plane",
              job: "master/node-exporter",
              service: "node-exporter",
            })]: "1x10",
            // A probe of lady's route from the control plane says nothing about lady's host.
            [sel("up", { site: "lady", job: probeJob("public") })]: "0x10",
          },
          at: "10m",
          fires: [LADY_NODE],
        },
        silent: {
          series: {
            // Down for less than six scrapes: a blip, not a site down.
            [sel("up", LADY_NODE)]: "1x5 0x1 1x4",
            [sel("up", { ...LADY, job: "lady/cadvisor", service: "cadvisor" })]: "0x10",
          },
          at: "10m",
        },
      },
    ),
    alert(
      {
        alert: "ContainerRestartLoop",
        expr: 'changes(container_start_time_seconds{name!=""}[15m]) >= 3',
        for: "5m",
        severity: "warning",
        summary: "Container {{ $labels.name }} on {{ $labels.site }} keeps restarting",
        description:
          "Container {{ $labels.name }} on site {{ $labels.site }} started at least 3 times in 15 minutes.",
      },
      {
        fires: {
          series: { [sel("container_start_time_seconds", { site: "lady", name: "nextcloud" })]: "0+60x30" },
          at: "25m",
          fires: [{ site: "lady", name: "nextcloud" }],
        },
        silent: {
          series: { [sel("container_start_time_seconds", { site: "lady", name: "nextcloud" })]: "100x30" },
          at: "25m",
        },
      },
    ),
    alert(
      {
        alert: "DiskAbove85",
        expr: '100 * (1 - node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs|nsfs"} / node_filesystem_size_bytes) > 85',
        for: "10m",
        severity: "warning",
        summary: "Disk {{ $labels.mountpoint }} on {{ $labels.site }} is over 85% full",
        description:
          "Filesystem {{ $labels.mountpoint }} on site {{ $labels.site }} has had less than 15% free for 10 minutes.",
      },
      {
        fires: {
          series: {
            [sel("node_filesystem_avail_bytes", { site: "lady", mountpoint: "/", fstype: "ext4" })]: "10x20",
            [sel("node_filesystem_size_bytes", { site: "lady", mountpoint: "/", fstype: "ext4" })]: "100x20",
            // Overlay mounts are containers' views of the same disk: counted once, as the host's.
            [sel("node_filesystem_avail_bytes", { site: "lady", mountpoint: "/o", fstype: "overlay" })]:
              "1x20",
            [sel("node_filesystem_size_bytes", { site: "lady", mountpoint: "/o", fstype: "overlay" })]:
              "100x20",
          },
          at: "15m",
          fires: [{ site: "lady", mountpoint: "/", fstype: "ext4" }],
        },
        silent: {
          series: {
            [sel("node_filesystem_avail_bytes", { site: "lady", mountpoint: "/", fstype: "ext4" })]: "20x20",
            [sel("node_filesystem_size_bytes", { site: "lady", mountpoint: "/", fstype: "ext4" })]: "100x20",
          },
          at: "15m",
        },
      },
    ),
    alert(
      {
        alert: "MemoryPressure",
        expr: "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.1",
        for: "10m",
        severity: "warning",
        summary: "Site {{ $labels.site }} is short of memory",
        description:
          "Less than 10% of site {{ $labels.site }}'s memory has been available for 10 minutes: the kernel will soon kill containers.",
      },
      {
        fires: {
          series: {
            [sel("node_memory_MemAvailable_bytes", { site: "lady" })]: "5x20",
            [sel("node_memory_MemTotal_bytes", { site: "lady" })]: "100x20",
          },
          at: "15m",
          fires: [{ site: "lady" }],
        },
        silent: {
          series: {
            [sel("node_memory_MemAvailable_bytes", { site: "lady" })]: "30x20",
            [sel("node_memory_MemTotal_bytes", { site: "lady" })]: "100x20",
          },
          at: "15m",
        },
      },
    ),
    alert(
      {
        alert: "EndpointProbeFailed",
        expr: "probe_success == 0",
        for: "5m",
        severity: "critical",
        summary: "{{ $labels.instance }} fails its probe",
        description:
          "The blackbox probe ({{ $labels.job }}) of {{ $labels.instance }}, service {{ $labels.service }} on site {{ $labels.site }}, has failed for 5 minutes.",
      },
      {
        fires: {
          series: {
            [sel("probe_success", {
              job: probeJob("public"),
              instance: "https://cloud.qui3tly.cloud/",
              site: "lady",
              service: "nextcloud",
            })]: "0x10",
          },
          at: "10m",
          fires: [
            {
              job: probeJob("public"),
              instance: "https://cloud.qui3tly.cloud/",
              site: "lady",
              service: "nextcloud",
            },
          ],
        },
        silent: {
          series: {
            [sel("probe_success", { job: probeJob("public"), instance: "https://cloud.qui3tly.cloud/" })]:
              "1x10",
          },
          at: "10m",
        },
      },
    ),
    alert(
      {
        // Traefik's own `service` label is renamed beside the scrape target's (`service="traefik"`).
        alert: "SharedRouteDegraded",
        expr: `traefik_service_server_up{service="traefik",exported_service=~".+-(local|peers)@file"} == 0`,
        for: "2m",
        severity: "warning",
        summary: "{{ $labels.site }}'s Traefik finds an instance of a route it shares with another site down",
        description:
          "Traefik on {{ $labels.site }} has failed its health check of {{ $labels.exported_service }} ({{ $labels.url }}) for 2 minutes: `-local` is the site's own instance, `-peers` the other site's through the tailnet. The route is served from the other instance; with both down it is down.",
      },
      {
        fires: {
          series: {
            [sel("traefik_service_server_up", {
              site: "lady",
              service: "traefik",
              exported_service: "homepage-web-peers@file",
            })]: "1x2 0x10",
            [sel("traefik_service_server_up", {
              site: "lady",
              service: "traefik",
              exported_service: "homepage-web-local@file",
            })]: "1x12",
          },
          at: "10m",
          fires: [{ site: "lady", service: "traefik", exported_service: "homepage-web-peers@file" }],
        },
        silent: {
          series: {
            // A route of one site's own is no shared one, and a moment down is what the failover is for.
            [sel("traefik_service_server_up", {
              site: "lady",
              service: "traefik",
              exported_service: "nextcloud-web@file",
            })]: "0x10",
            [sel("traefik_service_server_up", {
              site: "lady",
              service: "traefik",
              exported_service: "homepage-web-local@file",
            })]: "1x5 0x1 1x5",
          },
          at: "10m",
        },
      },
    ),
    alert(
      {
        alert: "TLSCertExpiringSoon",
        expr: "probe_ssl_earliest_cert_expiry - time() < 14 * 86400",
        for: "10m",
        severity: "warning",
        summary: "The TLS certificate of {{ $labels.instance }} expires within 14 days",
        description:
          "The certificate served for {{ $labels.instance }} (site {{ $labels.site }}) expires in less than 14 days: Traefik's Let's Encrypt renewal is failing.",
      },
      {
        fires: {
          // 1e6 s after the epoch: 11.6 days after the test's clock starts.
          series: {
            [sel("probe_ssl_earliest_cert_expiry", {
              site: "lady",
              instance: "https://cloud.qui3tly.cloud/",
            })]: "1000000x20",
          },
          at: "15m",
          fires: [{ site: "lady", instance: "https://cloud.qui3tly.cloud/" }],
        },
        silent: {
          series: {
            [sel("probe_ssl_earliest_cert_expiry", {
              site: "lady",
              instance: "https://cloud.qui3tly.cloud/",
            })]: "5000000x20",
          },
          at: "15m",
        },
      },
    ),
    alert(
      {
        alert: "MeshNodeOffline",
        expr: 'up{service="tailscale"} == 0',
        for: "5m",
        severity: "critical",
        summary: "The tailnet node of {{ $labels.site }} is offline",
        description:
          "The control plane cannot reach site {{ $labels.site }}'s tailnet node {{ $labels.container }}: that site's metrics or logs no longer reach the control plane. On the control plane itself, every other site goes dark.",
      },
      {
        fires: {
          series: { [sel("up", { site: "lady", service: "tailscale" })]: "0x10" },
          at: "10m",
          fires: [{ site: "lady", service: "tailscale" }],
        },
        silent: { series: { [sel("up", { site: "lady", service: "tailscale" })]: "1x10" }, at: "10m" },
      },
    ),
    alert(
      {
        alert: "BackupTooOld",
        expr: "time() - qcloud_backup_last_success_timestamp_seconds > 26 * 3600",
        for: "5m",
        severity: "warning",
        summary: "Backup {{ $labels.backup }} of {{ $labels.site }} is more than 26 hours old",
        description:
          "The last successful run of backup {{ $labels.backup }} on site {{ $labels.site }} is more than 26 hours ago: a daily backup has been missed.",
      },
      {
        fires: {
          series: {
            // 100000 s before the test's clock starts: 27.8 hours old at once.
            [sel("qcloud_backup_last_success_timestamp_seconds", { site: "lady", backup: "nextcloud" })]:
              "-100000x20",
          },
          at: "15m",
          fires: [{ site: "lady", backup: "nextcloud" }],
        },
        silent: {
          series: {
            [sel("qcloud_backup_last_success_timestamp_seconds", { site: "lady", backup: "nextcloud" })]:
              "0+60x20",
          },
          at: "15m",
        },
      },
    ),
    latestAttemptFailed(
      {
        alert: "BackupFailed",
        severity: "warning",
        summary: "Backup {{ $labels.backup }} of {{ $labels.site }} failed",
        description:
          "The latest run of backup {{ $labels.backup }} on site {{ $labels.site }} failed: nothing of it since its last success is in the repository.",
      },
      "qcloud_backup_last_run_success",
      { site: "lady", backup: "nextcloud" },
      { site: "lady", backup: "unifi" },
    ),
    latestAttemptFailed(
      {
        alert: "BackupRepositoryUnreachable",
        severity: "warning",
        summary: "Site {{ $labels.site }} cannot reach its backup repository on {{ $labels.peer }}",
        description:
          "At its latest backup attempt, site {{ $labels.site }} could not reach its restic repository on site {{ $labels.peer }}: none of the site's backups lands until it can.",
      },
      "qcloud_backup_repository_up",
      { site: "lady", peer: "master" },
    ),
    alert(
      {
        alert: "BackupMetricAbsent",
        expr: 'max by (site) (up{service="node-exporter"} == 1) unless on (site) qcloud_backup_last_success_timestamp_seconds',
        // The jobs write the gauge (0 until a first success) when installed: its absence means no job, not "not yet".
        for: "1h",
        severity: "warning",
        summary: "Site {{ $labels.site }} reports no backup",
        description:
          "Site {{ $labels.site }}'s node-exporter answers, but no backup job has written qcloud_backup_last_success_timestamp_seconds there for an hour: no job is installed, or it writes elsewhere.",
      },
      {
        fires: {
          series: { [sel("up", { site: "lady", service: "node-exporter" })]: "1x90" },
          at: "80m",
          fires: [{ site: "lady" }],
        },
        silent: {
          series: {
            [sel("up", { site: "lady", service: "node-exporter" })]: "1x90",
            [sel("qcloud_backup_last_success_timestamp_seconds", { site: "lady", backup: "nextcloud" })]:
              "0x90",
          },
          at: "80m",
        },
      },
    ),
    latestAttemptFailed(
      {
        alert: "BackupCheckFailed",
        severity: "critical",
        summary: "The backup repository of {{ $labels.peer }} on {{ $labels.site }} fails its check",
        description:
          "The latest check (restic check --read-data-subset) of the repository that site {{ $labels.site }} keeps for site {{ $labels.peer }} failed: part of it may be damaged, and backups in it may not restore.",
      },
      "qcloud_backup_check_success",
      { ...MASTER_NODE, peer: "lady" },
      { ...MASTER_NODE, peer: "madam" },
    ),
    alert(
      {
        alert: "BackupCheckTooOld",
        expr: `time() - qcloud_backup_check_last_success_timestamp_seconds > ${WEEKLY_MAX_AGE_DAYS} * 86400`,
        for: "5m",
        severity: "warning",
        summary: `The backup repository of {{ $labels.peer }} on {{ $labels.site }} has not passed a check for ${WEEKLY_MAX_AGE_DAYS} days`,
        description: `The last successful check of the repository that site {{ $labels.site }} keeps for site {{ $labels.peer }} is more than ${WEEKLY_MAX_AGE_DAYS} days ago: two weekly checks have been missed or failed.`,
      },
      {
        fires: {
          series: {
            // 1.4e6 s before the test's clock starts: 16.2 days old.
            [sel("qcloud_backup_check_last_success_timestamp_seconds", {
              ...MASTER_NODE,
              peer: "lady",
            })]: "-1400000x20",
          },
          at: "15m",
          fires: [{ ...MASTER_NODE, peer: "lady" }],
        },
        silent: {
          series: {
            // Two weeks old: last week's check was missed, this week's may still be running.
            [sel("qcloud_backup_check_last_success_timestamp_seconds", {
              ...MASTER_NODE,
              peer: "lady",
            })]: "-1209600x20",
          },
          at: "15m",
        },
      },
    ),
    alert(
      {
        alert: "BackupRepositoryDiskLow",
        expr: "qcloud_backup_repository_avail_bytes / qcloud_backup_repository_fs_size_bytes < 0.15",
        for: "15m",
        severity: "warning",
        summary: "The backup repositories on {{ $labels.site }} have less than 15% of their disk free",
        description:
          "The filesystem holding the backup repositories that site {{ $labels.site }} keeps has had less than 15% free for 15 minutes: once it is full, every backup into it fails.",
      },
      {
        fires: {
          series: {
            [sel("qcloud_backup_repository_avail_bytes", MASTER_NODE)]: "10x30",
            [sel("qcloud_backup_repository_fs_size_bytes", MASTER_NODE)]: "100x30",
          },
          at: "20m",
          fires: [MASTER_NODE],
        },
        silent: {
          series: {
            // 15% free exactly: not less.
            [sel("qcloud_backup_repository_avail_bytes", MASTER_NODE)]: "15x30",
            [sel("qcloud_backup_repository_fs_size_bytes", MASTER_NODE)]: "100x30",
          },
          at: "20m",
        },
      },
    ),
    latestAttemptFailed(
      {
        alert: "RestoreTestFailed",
        severity: "critical",
        summary: "The restore test of backup {{ $labels.backup }} on {{ $labels.site }} failed",
        description:
          "The latest restore test of backup {{ $labels.backup }} on site {{ $labels.site }} failed: a restore of it, when needed, may fail the same way.",
      },
      "qcloud_restore_test_success",
      { site: "lady", backup: "nextcloud" },
      { site: "lady", backup: "unifi" },
    ),
    alert(
      {
        alert: "RestoreTestTooOld",
        expr: `time() - qcloud_restore_test_last_success_timestamp_seconds > ${WEEKLY_MAX_AGE_DAYS} * 86400`,
        for: "5m",
        severity: "warning",
        summary: `Backup {{ $labels.backup }} of {{ $labels.site }} has not passed a restore test for ${WEEKLY_MAX_AGE_DAYS} days`,
        description: `The last successful restore test of backup {{ $labels.backup }} on site {{ $labels.site }} is more than ${WEEKLY_MAX_AGE_DAYS} days ago: two weekly tests have been missed or failed.`,
      },
      {
        fires: {
          series: {
            // 16.2 days old.
            [sel("qcloud_restore_test_last_success_timestamp_seconds", {
              site: "lady",
              backup: "nextcloud",
            })]: "-1400000x20",
          },
          at: "15m",
          fires: [{ site: "lady", backup: "nextcloud" }],
        },
        silent: {
          series: {
            // Two weeks old: one weekly test missed.
            [sel("qcloud_restore_test_last_success_timestamp_seconds", {
              site: "lady",
              backup: "nextcloud",
            })]: "-1209600x20",
          },
          at: "15m",
        },
      },
    ),
    alert(
      {
        alert: "CrossSiteSyncStale",
        expr: "time() - qcloud_sync_last_success_timestamp_seconds > 2 * qcloud_sync_interval_seconds",
        // A minute more than two intervals: a run late on its minute (a big file, the lock) is no outage.
        for: "1m",
        severity: "warning",
        summary: "Sync {{ $labels.task }} of {{ $labels.site }} from {{ $labels.peer }} is stale",
        description:
          "Sync task {{ $labels.task }} on site {{ $labels.site }} (peer {{ $labels.peer }}) has not succeeded for two of its intervals and a minute more.",
      },
      {
        fires: {
          series: {
            [sel("qcloud_sync_last_success_timestamp_seconds", {
              site: "lady",
              peer: "master",
              task: "files",
            })]: "0x40",
            [sel("qcloud_sync_interval_seconds", { site: "lady", peer: "master", task: "files" })]: "600x40",
          },
          at: "30m",
          fires: [{ site: "lady", peer: "master", task: "files" }],
        },
        silent: {
          series: {
            [sel("qcloud_sync_last_success_timestamp_seconds", {
              site: "lady",
              peer: "master",
              task: "files",
            })]: "0+60x40",
            [sel("qcloud_sync_interval_seconds", { site: "lady", peer: "master", task: "files" })]: "600x40",
          },
          at: "30m",
        },
      },
    ),
  ];
}

/** The drift check's alerts (docs/metrics.md, `drift.prom`). */
function driftDefs(): AlertDef[] {
  const LADY_AT = { site: "lady" };
  const MASTER_AT = { site: "master" };
  const exporter = (site: Labels) => sel("up", { ...site, service: "node-exporter" });
  const stale = DRIFT_MAX_AGE_HOURS * 3600;
  return [
    alert(
      {
        alert: "DriftDetected",
        expr: "qcloud_drift_resources > 0",
        // The check has finished: waiting changes nothing; the next check that finds none resolves it.
        for: "0m",
        severity: "warning",
        summary: "Site {{ $labels.site }} differs from its code",
        description:
          "The latest completed drift check of site {{ $labels.site }} (a refresh, then a preview) found resources whose servers differ from the code (qcloud_drift_resources says how many): changed or removed by hand, or code not deployed yet.",
      },
      {
        fires: {
          series: {
            [sel("qcloud_drift_resources", LADY_AT)]: "0x10 2x10",
            [sel("qcloud_drift_resources", MASTER_AT)]: "0x20",
          },
          at: "15m",
          fires: [LADY_AT],
        },
        // Repaired (`up`): the next check finds none.
        silent: { series: { [sel("qcloud_drift_resources", LADY_AT)]: "2x10 0x10" }, at: "15m" },
      },
    ),
    alert(
      {
        alert: "DriftCheckStale",
        expr: `time() - qcloud_drift_last_check_timestamp_seconds > ${DRIFT_MAX_AGE_HOURS} * 3600`,
        for: "5m",
        severity: "warning",
        summary: `Site {{ $labels.site }} has had no completed drift check for ${DRIFT_MAX_AGE_HOURS} hours`,
        description: `The last completed drift check of site {{ $labels.site }} is more than ${DRIFT_MAX_AGE_HOURS} hours ago: the scheduled check (every 6 hours) has not run, or fails (qcloud_drift_last_check_success is 0); drift there would go unseen.`,
      },
      {
        fires: {
          series: {
            // An hour past the limit when the test's clock starts.
            [sel("qcloud_drift_last_check_timestamp_seconds", LADY_AT)]: `-${stale + 3600}x20`,
            // Checked every minute: quiet.
            [sel("qcloud_drift_last_check_timestamp_seconds", MASTER_AT)]: "0+60x20",
          },
          at: "15m",
          fires: [LADY_AT],
        },
        silent: {
          // 24 hours old: the fourth run since is due, and may start late.
          series: { [sel("qcloud_drift_last_check_timestamp_seconds", LADY_AT)]: "-86400x20" },
          at: "15m",
        },
      },
    ),
    alert(
      {
        alert: "DriftMetricAbsent",
        expr: 'max by (site) (up{service="node-exporter"} == 1) unless on (site) qcloud_drift_last_check_timestamp_seconds',
        // A new site's first check comes within 6 hours; past the stale alert's limit it never came.
        for: `${DRIFT_MAX_AGE_HOURS}h`,
        severity: "warning",
        summary: "Site {{ $labels.site }} reports no drift check",
        description: `Site {{ $labels.site }}'s node-exporter has answered for ${DRIFT_MAX_AGE_HOURS} hours, but no drift check has written qcloud_drift_last_check_timestamp_seconds there: the scheduled check does not cover the site, or cannot reach its host.`,
      },
      {
        fires: {
          series: {
            [exporter(LADY_AT)]: `1x${(DRIFT_MAX_AGE_HOURS + 1) * 60}`,
            [exporter(MASTER_AT)]: `1x${(DRIFT_MAX_AGE_HOURS + 1) * 60}`,
            [sel("qcloud_drift_last_check_timestamp_seconds", MASTER_AT)]:
              `0x${(DRIFT_MAX_AGE_HOURS + 1) * 60}`,
          },
          at: `${DRIFT_MAX_AGE_HOURS}h30m`,
          fires: [LADY_AT],
        },
        silent: {
          series: {
            // Up long enough, but its first check has not come yet: a new site.
            [exporter(LADY_AT)]: `0x${(DRIFT_MAX_AGE_HOURS - 6) * 60} 1x${7 * 60}`,
          },
          at: `${DRIFT_MAX_AGE_HOURS}h30m`,
        },
      },
    ),
  ];
}

/** ContainerDown: what should run on each site comes from the model. */
function containerDefs(estate: Estate): AlertDef[] {
  const withContainers = estate.sites.filter((s) => s.containers.length > 0);
  if (withContainers.length === 0) return [];
  // cAdvisor sees running containers only: a stopped or missing one is an absent series.
  const seen = (site: string, name: string) => sel("container_last_seen", { site, name });
  const everyContainer = Object.fromEntries(
    withContainers.flatMap((s) => s.containers.map((c) => [seen(s.name, c), "1x10"])),
  );
  const first = withContainers[0]!;
  const missing = first.containers[0]!;
  return [
    {
      alert: "ContainerDown",
      rules: withContainers.map((s) => ({
        alert: "ContainerDown",
        // One rule per site: the site label keeps them apart for promtool's duplicate-rule lint.
        labels: { site: s.name },
        expr: s.containers.map((c) => `absent(${seen(s.name, c)})`).join(" or "),
        for: "5m",
        severity: "critical",
        summary: "Container {{ $labels.name }} on {{ $labels.site }} is not running",
        description:
          "Container {{ $labels.name }} is part of site {{ $labels.site }}'s model, but cAdvisor has not seen it running for 5 minutes.",
      })),
      fires: {
        series: Object.fromEntries(
          Object.entries(everyContainer).filter(([k]) => k !== seen(first.name, missing)),
        ),
        at: "10m",
        fires: [{ site: first.name, name: missing }],
      },
      silent: { series: everyContainer, at: "10m", fires: [] },
    },
  ];
}

/** CrossSiteSyncMissing: which sites pull from which comes from the model (`services.<name>.follows`). */
function syncDefs(estate: Estate): AlertDef[] {
  const tasks = estate.sites.flatMap((s) =>
    s.follows.filter((f) => f.pulls).map((f) => ({ site: s.name, peer: f.primary, task: f.service })),
  );
  if (tasks.length === 0) return [];
  const last = (t: Labels) => sel("qcloud_sync_last_success_timestamp_seconds", t);
  const every = Object.fromEntries(tasks.map((t) => [last(t), "0+60x20"]));
  const first = tasks[0]!;
  return [
    {
      alert: "CrossSiteSyncMissing",
      rules: tasks.map((t) => ({
        alert: "CrossSiteSyncMissing",
        labels: t,
        expr: `absent(${last(t)})`,
        for: "10m",
        severity: "warning",
        summary: "Sync {{ $labels.task }} on {{ $labels.site }} reports no success",
        description:
          "Site {{ $labels.site }} runs {{ $labels.task }} as a secondary of {{ $labels.peer }}'s, but its sync job has reported no success for 10 minutes: it never succeeded, or it no longer runs.",
      })),
      fires: {
        series: Object.fromEntries(Object.entries(every).filter(([k]) => k !== last(first))),
        at: "15m",
        fires: [first],
      },
      silent: { series: every, at: "15m", fires: [] },
    },
  ];
}

/** A rule's annotations; `runbooks` is where docs/runbooks.md is read, each alert has its section. */
function annotations(rule: AlertRule, runbooks: string): Labels {
  return {
    summary: rule.summary,
    description: rule.description,
    runbook_url: `${runbooks}#${rule.alert.toLowerCase()}`,
  };
}

/** The rules file Prometheus loads (`rule_files`). */
export function renderAlertRules(defs: readonly AlertDef[], runbooks: string): string {
  return toYaml({
    groups: [
      {
        name: "qcloud",
        rules: defs.flatMap((d) =>
          d.rules.map((r) => ({
            alert: r.alert,
            expr: r.expr,
            ...(r.for === "0m" ? {} : { for: r.for }),
            labels: { severity: r.severity, ...r.labels },
            annotations: annotations(r, runbooks),
          })),
        ),
      },
    ],
  });
}

/** Expands `{{ $labels.x }}` as Prometheus would, for the expected annotations. */
const expand = (template: string, labels: Labels) =>
  template.replace(/\{\{ \$labels\.([a-zA-Z_]+) \}\}/g, (_, k: string) => labels[k] ?? "");

/** A `promtool test rules` file for the rules file `rulesFile`: both cases of every alert. */
export function renderRuleTests(defs: readonly AlertDef[], rulesFile: string, runbooks: string): string {
  const rule = (d: AlertDef) => d.rules[0]!;
  const test = (d: AlertDef, c: AlertCase) => ({
    interval: "1m",
    input_series: Object.entries(c.series).map(([series, values]) => ({ series, values })),
    alert_rule_test: [
      {
        eval_time: c.at,
        alertname: d.alert,
        exp_alerts: c.fires.map((labels) => {
          const all = { ...labels, severity: rule(d).severity };
          const a = annotations(rule(d), runbooks);
          return {
            exp_labels: all,
            exp_annotations: Object.fromEntries(Object.entries(a).map(([k, v]) => [k, expand(v, all)])),
          };
        }),
      },
    ],
  });
  return toYaml({
    rule_files: [rulesFile],
    evaluation_interval: "1m",
    tests: defs.flatMap((d) => [test(d, d.fires), test(d, d.silent)]),
  });
}
