import type { Estate, EstateSite, MetricsEndpoint } from "./estate";
import { egressProxy } from "./policy";
import type { CatalogContext } from "./siteModel";
import { toYaml } from "./yaml";

/**
 * Prometheus on the control plane: every site's metrics endpoints, from the estate, and blackbox probes of every
 * routed URL. Its own site's containers are scraped by name on the `metrics` network; every other site's on
 * `<meshHost>:<port>`, through the local egress node's HTTP proxy (the node on that site forwards the port).
 */

/**
 * Where Prometheus reaches other sites by MagicDNS name: the HTTP proxy of its own egress node (catalog/mesh.ts),
 * on a network it shares with that node alone; the node's key gives it the monitoring flows and nothing else.
 */
export const MESH_PROXY = egressProxy("prometheus");
export const BLACKBOX = "blackbox:9115";
/** The rules files' dir, relative to Prometheus' config dir (promtool resolves it the same way). */
export const RULES_DIR = "rules";
export const PROMETHEUS_DIR = "/etc/prometheus";

/** Blackbox modules, by what a probe expects (their definitions: renderBlackboxConfig). */
export const PROBE_MODULES = {
  /** A public route: 2xx over valid TLS. */
  public: "http_2xx",
  /** A private route from outside the tailnet: valid TLS, and Traefik's allow-list answers 403. */
  private: "http_403_outside_tailnet",
  /** A control-plane service's own health endpoint, on the `metrics` network. */
  internal: "http_2xx_internal",
} as const;
export type ProbeKind = keyof typeof PROBE_MODULES;
/** Probe jobs are named `probe-<kind>`: alerts on scraped targets leave them out by this prefix. */
export const PROBE_JOB_PREFIX = "probe-";
export const probeJob = (kind: ProbeKind) => `${PROBE_JOB_PREFIX}${kind}`;

/**
 * The control plane's own health endpoints, probed beside them: the monitoring stack cannot watch itself through
 * its own metrics alone, and Loki and Alertmanager have no public route to probe.
 */
const INTERNAL_HEALTH: Readonly<Record<string, string>> = {
  headscale: "http://headscale:8080/health",
  alertmanager: "http://alertmanager:9093/-/healthy",
  grafana: "http://grafana:3000/api/health",
  loki: "http://loki:3100/ready",
};

/**
 * One job per site and service: a job's endpoints share how they are reached (by name, or through the mesh). On
 * the control plane, its egress nodes (on no network Prometheus shares) are reached through its own node, in a
 * job of their own (`<site>/<service>/tailnet`).
 */
function scrapeConfigs(estate: Estate, self: string): object[] {
  return estate.sites.flatMap((site) => {
    const byJob = new Map<string, { service: string; local: boolean; endpoints: MetricsEndpoint[] }>();
    for (const e of site.metrics) {
      const local = site.name === self && !e.throughNode;
      const job = `${site.name}/${e.service}${site.name === self && !local ? "/tailnet" : ""}`;
      const j = byJob.get(job) ?? { service: e.service, local, endpoints: [] };
      byJob.set(job, { ...j, endpoints: [...j.endpoints, e] });
    }
    return [...byJob].map(([job, { service, local, endpoints }]) => ({
      job_name: job,
      honor_labels: false,
      ...(local ? {} : { proxy_url: MESH_PROXY }),
      static_configs: endpoints.map((e) => ({
        targets: [`${local ? e.container : site.meshHost}:${e.port}`],
        labels: {
          site: site.name,
          role: site.role,
          service,
          container: e.container,
          ...(e.path === "/metrics" ? {} : { __metrics_path__: e.path }),
        },
      })),
    }));
  });
}

interface ProbeTarget {
  readonly url: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Every routed URL of the estate (private ones expect the allow-list's 403), and the internal health URLs. */
function probeTargets(estate: Estate, self: EstateSite | undefined): Record<ProbeKind, ProbeTarget[]> {
  // A route two sites serve is one URL, probed once, as its primary's (the public name points where it points).
  const routes = estate.sites.flatMap((s) =>
    s.routes
      .filter((r) => !r.standby)
      .map((r) => ({
        private: r.private,
        url: `https://${r.host}${r.probePath}`,
        labels: { site: s.name, service: r.service, route: r.name },
      })),
  );
  const strip = ({ url, labels }: ProbeTarget) => ({ url, labels });
  return {
    public: routes.filter((r) => !r.private).map(strip),
    private: routes.filter((r) => r.private).map(strip),
    internal: Object.entries(INTERNAL_HEALTH)
      .filter(([service]) => self?.services.includes(service))
      .map(([service, url]) => ({ url, labels: { site: self!.name, service } })),
  };
}

function probeConfig(kind: ProbeKind, targets: readonly ProbeTarget[]): object {
  return {
    job_name: probeJob(kind),
    metrics_path: "/probe",
    params: { module: [PROBE_MODULES[kind]] },
    static_configs: targets.map((t) => ({ targets: [t.url], labels: t.labels })),
    relabel_configs: [
      { source_labels: ["__address__"], target_label: "__param_target" },
      { source_labels: ["__param_target"], target_label: "instance" },
      { target_label: "__address__", replacement: BLACKBOX },
    ],
  };
}

export function renderPrometheusConfig(ctx: Pick<CatalogContext, "site" | "estate" | "monitoring">): string {
  const probes = probeTargets(
    ctx.estate,
    ctx.estate.sites.find((s) => s.name === ctx.site),
  );
  return toYaml({
    global: {
      scrape_interval: ctx.monitoring.interval,
      evaluation_interval: ctx.monitoring.interval,
      external_labels: { estate: "qui3tly" },
    },
    alerting: { alertmanagers: [{ static_configs: [{ targets: ["alertmanager:9093"] }] }] },
    rule_files: [`${RULES_DIR}/*.yml`],
    scrape_configs: [
      ...scrapeConfigs(ctx.estate, ctx.site),
      ...(Object.keys(PROBE_MODULES) as ProbeKind[])
        .filter((k) => probes[k].length > 0)
        .map((k) => probeConfig(k, probes[k])),
    ],
  });
}
