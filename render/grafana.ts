import type { Estate } from "./estate";
import { logTenants } from "./monitoring";
import { PROBE_JOB_PREFIX } from "./prometheus";
import { TENANT_HEADER } from "./traefik";
import { toYaml } from "./yaml";

/**
 * Grafana as code: the datasources, the dashboard provider and the dashboards, generated from the estate. Every
 * panel names its datasource by uid; the provider forbids edits in the UI, so the files stay the truth.
 */

export const DATASOURCES = {
  prometheus: { name: "Prometheus", uid: "prometheus", type: "prometheus", url: "http://prometheus:9090" },
  loki: { name: "Loki", uid: "loki", type: "loki", url: "http://loki:3100" },
} as const;
type Datasource = keyof typeof DATASOURCES;

export const GRAFANA_PROVISIONING = "/etc/grafana/provisioning";
export const DASHBOARDS_DIR = "/etc/grafana/dashboards";

/**
 * Loki is multi-tenant, a tenant per site (render/monitoring.ts): Grafana asks for every site of the tailnet at
 * once (`a|b|c`); each log line then carries `__tenant_id__`, the site that pushed it, which no site can forge.
 */
export function renderGrafanaDatasources(estate: Estate, controlPlane: string): string {
  return toYaml({
    apiVersion: 1,
    datasources: [
      { ...DATASOURCES.prometheus, access: "proxy", isDefault: true },
      {
        ...DATASOURCES.loki,
        access: "proxy",
        jsonData: { httpHeaderName1: TENANT_HEADER },
        // Not a secret: Grafana takes custom header values from secureJsonData only.
        secureJsonData: { httpHeaderValue1: logTenants(estate, controlPlane).join("|") },
      },
    ],
  });
}

export function renderDashboardProvider(): string {
  return toYaml({
    apiVersion: 1,
    providers: [
      {
        name: "qcloud",
        folder: "qui3tly.cloud",
        type: "file",
        disableDeletion: true,
        allowUiUpdates: false,
        options: { path: DASHBOARDS_DIR },
      },
    ],
  });
}

interface Query {
  readonly expr: string;
  readonly legend?: string;
}

interface PanelSpec {
  readonly title: string;
  readonly type: "stat" | "timeseries" | "logs" | "table";
  readonly datasource?: Datasource;
  readonly queries: readonly Query[];
  /** Grafana unit id, e.g. `percent`. */
  readonly unit?: string;
  /** Up/down stats: 1 reads UP, 0 DOWN. */
  readonly upDown?: boolean;
  readonly w: number;
  readonly h: number;
}

const UP_DOWN = [
  {
    type: "value",
    options: { "0": { text: "DOWN", color: "red" }, "1": { text: "UP", color: "green" } },
  },
];

/** Lays panels out left to right, wrapping at Grafana's 24 columns; ids follow the order. */
function layout(specs: readonly PanelSpec[]): object[] {
  let x = 0;
  let y = 0;
  let rowH = 0;
  return specs.map((p, i) => {
    if (x + p.w > 24) {
      x = 0;
      y += rowH;
      rowH = 0;
    }
    const gridPos = { x, y, w: p.w, h: p.h };
    x += p.w;
    rowH = Math.max(rowH, p.h);
    const ds = {
      type: DATASOURCES[p.datasource ?? "prometheus"].type,
      uid: DATASOURCES[p.datasource ?? "prometheus"].uid,
    };
    return {
      id: i + 1,
      type: p.type,
      title: p.title,
      gridPos,
      datasource: ds,
      targets: p.queries.map((q, j) => ({
        refId: String.fromCharCode(65 + j),
        datasource: ds,
        expr: q.expr,
        ...(q.legend === undefined ? {} : { legendFormat: q.legend }),
      })),
      fieldConfig: {
        defaults: {
          ...(p.unit === undefined ? {} : { unit: p.unit }),
          ...(p.upDown ? { mappings: UP_DOWN, color: { mode: "thresholds" } } : {}),
        },
        overrides: [],
      },
      options: {},
    };
  });
}

function dashboard(
  uid: string,
  title: string,
  variables: readonly object[],
  panels: readonly PanelSpec[],
): string {
  return `${JSON.stringify(
    {
      uid,
      title,
      tags: ["qcloud", "generated"],
      editable: false,
      schemaVersion: 39,
      version: 1,
      time: { from: "now-6h", to: "now" },
      refresh: "1m",
      templating: { list: variables },
      panels: layout(panels),
    },
    null,
    2,
  )}\n`;
}

/** A template variable over a label of Prometheus' scrape targets. */
function labelVariable(name: string, query: string): object {
  return {
    name,
    label: name,
    type: "query",
    datasource: { type: DATASOURCES.prometheus.type, uid: DATASOURCES.prometheus.uid },
    query: { query, refId: `${name}-values` },
    definition: query,
    refresh: 2,
    sort: 1,
    includeAll: false,
    multi: false,
  };
}

const SCRAPED = `job!~"${PROBE_JOB_PREFIX}.*"`;
const cpu = (site: string) => `100 * (1 - avg(rate(node_cpu_seconds_total{site="${site}",mode="idle"}[5m])))`;
const memory = (site: string) =>
  `100 * (1 - sum(node_memory_MemAvailable_bytes{site="${site}"}) / sum(node_memory_MemTotal_bytes{site="${site}"}))`;
const rootDisk = (site: string) =>
  `100 * max(1 - node_filesystem_avail_bytes{site="${site}",mountpoint="/"} / node_filesystem_size_bytes{site="${site}",mountpoint="/"})`;

/** Every site at a glance: one row of stats per site of the estate. */
function estateOverview(estate: Estate): string {
  const panels = estate.sites.flatMap((s): PanelSpec[] => [
    {
      title: `${s.name}: up`,
      type: "stat",
      queries: [{ expr: `max(up{site="${s.name}",service="node-exporter"})` }],
      upDown: true,
      w: 4,
      h: 4,
    },
    { title: `${s.name}: CPU`, type: "stat", queries: [{ expr: cpu(s.name) }], unit: "percent", w: 4, h: 4 },
    {
      title: `${s.name}: memory`,
      type: "stat",
      queries: [{ expr: memory(s.name) }],
      unit: "percent",
      w: 4,
      h: 4,
    },
    {
      title: `${s.name}: disk /`,
      type: "stat",
      queries: [{ expr: rootDisk(s.name) }],
      unit: "percent",
      w: 4,
      h: 4,
    },
    {
      title: `${s.name}: containers running (of ${s.containers.length})`,
      type: "stat",
      queries: [{ expr: `count(container_last_seen{site="${s.name}",name!=""})` }],
      w: 4,
      h: 4,
    },
    {
      title: `${s.name}: mesh node`,
      type: "stat",
      queries: [{ expr: `max(up{site="${s.name}",service="tailscale"})` }],
      upDown: true,
      w: 4,
      h: 4,
    },
  ]);
  return dashboard("qcloud-estate", "Estate overview", [], panels);
}

/** One site in depth; `$site` picks it. */
function siteDashboard(): string {
  const site = "$site";
  return dashboard(
    "qcloud-site",
    "Site",
    [labelVariable("site", `label_values(up{${SCRAPED}}, site)`)],
    [
      {
        title: "CPU",
        type: "timeseries",
        queries: [{ expr: cpu(site), legend: "busy" }],
        unit: "percent",
        w: 8,
        h: 8,
      },
      {
        title: "Memory",
        type: "timeseries",
        queries: [{ expr: memory(site), legend: "used" }],
        unit: "percent",
        w: 8,
        h: 8,
      },
      {
        title: "Disk used",
        type: "timeseries",
        queries: [
          {
            expr: `100 * (1 - node_filesystem_avail_bytes{site="${site}",fstype!~"tmpfs|overlay|squashfs|nsfs"} / node_filesystem_size_bytes{site="${site}"})`,
            legend: "{{mountpoint}}",
          },
        ],
        unit: "percent",
        w: 8,
        h: 8,
      },
      {
        title: "Network",
        type: "timeseries",
        queries: [
          {
            expr: `sum by (device) (rate(node_network_receive_bytes_total{site="${site}",device!~"lo|veth.*|br-.*|docker.*"}[$__rate_interval]))`,
            legend: "{{device}} in",
          },
          {
            expr: `-sum by (device) (rate(node_network_transmit_bytes_total{site="${site}",device!~"lo|veth.*|br-.*|docker.*"}[$__rate_interval]))`,
            legend: "{{device}} out",
          },
        ],
        unit: "Bps",
        w: 12,
        h: 8,
      },
      {
        title: "Scrape targets",
        type: "table",
        queries: [{ expr: `up{site="${site}",${SCRAPED}}`, legend: "{{container}}" }],
        upDown: true,
        w: 12,
        h: 8,
      },
      {
        title: "Container CPU",
        type: "timeseries",
        queries: [
          {
            expr: `sum by (name) (rate(container_cpu_usage_seconds_total{site="${site}",name!=""}[$__rate_interval]))`,
            legend: "{{name}}",
          },
        ],
        unit: "short",
        w: 12,
        h: 8,
      },
      {
        title: "Container memory",
        type: "timeseries",
        queries: [
          {
            expr: `sum by (name) (container_memory_working_set_bytes{site="${site}",name!=""})`,
            legend: "{{name}}",
          },
        ],
        unit: "bytes",
        w: 12,
        h: 8,
      },
      {
        title: "Logs",
        type: "logs",
        datasource: "loki",
        // The tenant, not the `site` label: a site chooses its labels, not its tenant.
        queries: [{ expr: `{__tenant_id__="${site}"}` }],
        w: 24,
        h: 10,
      },
    ],
  );
}

/** One service across the sites it runs on; `$service` picks it. */
function serviceDashboard(): string {
  const svc = "$service";
  const byService = `container_label_cloud_qui3tly_service="${svc}"`;
  return dashboard(
    "qcloud-service",
    "Service",
    [labelVariable("service", `label_values(up{${SCRAPED}}, service)`)],
    [
      {
        title: "Metrics endpoints",
        type: "table",
        queries: [{ expr: `up{service="${svc}",${SCRAPED}}`, legend: "{{site}}/{{container}}" }],
        upDown: true,
        w: 12,
        h: 8,
      },
      {
        title: "Probes",
        type: "table",
        queries: [{ expr: `probe_success{service="${svc}"}`, legend: "{{instance}}" }],
        upDown: true,
        w: 12,
        h: 8,
      },
      {
        title: "Container CPU",
        type: "timeseries",
        queries: [
          {
            expr: `sum by (site, name) (rate(container_cpu_usage_seconds_total{${byService}}[$__rate_interval]))`,
            legend: "{{site}}/{{name}}",
          },
        ],
        unit: "short",
        w: 12,
        h: 8,
      },
      {
        title: "Container memory",
        type: "timeseries",
        queries: [
          {
            expr: `sum by (site, name) (container_memory_working_set_bytes{${byService}})`,
            legend: "{{site}}/{{name}}",
          },
        ],
        unit: "bytes",
        w: 12,
        h: 8,
      },
      {
        title: "Restarts (15m)",
        type: "timeseries",
        queries: [
          { expr: `changes(container_start_time_seconds{${byService}}[15m])`, legend: "{{site}}/{{name}}" },
        ],
        w: 24,
        h: 6,
      },
      {
        title: "Logs",
        type: "logs",
        datasource: "loki",
        queries: [{ expr: `{service="${svc}"}` }],
        w: 24,
        h: 10,
      },
    ],
  );
}

/** The dashboards by file name. */
export function renderDashboards(estate: Estate): Record<string, string> {
  return {
    "estate.json": estateOverview(estate),
    "site.json": siteDashboard(),
    "service.json": serviceDashboard(),
  };
}
