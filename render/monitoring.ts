import { dockerApiHost } from "./dockerApi";
import type { Estate } from "./estate";
import { egressProxy } from "./policy";
import { PROBE_MODULES } from "./prometheus";
import type { CatalogContext } from "./siteModel";
import { toYaml } from "./yaml";

/** The monitoring stack's smaller config files: Loki, the blackbox exporter and every site's log shipper. */

/** Where a site's shipper reads its own push password (the control plane's Traefik checks it). */
export const LOKI_PASSWORD_FILE = "/etc/promtail/secrets/loki-password";

/**
 * The sites whose shippers push to a control plane's Loki through its Traefik, each with a password of its own:
 * every other site of its tailnet that runs promtail, while the control plane runs Loki. Sorted.
 */
export function logShippers(estate: Estate, controlPlane: string): string[] {
  const cp = estate.sites.find((s) => s.name === controlPlane);
  if (!cp?.services.includes("loki")) return [];
  return estate.sites
    .filter(
      (s) => s.controlPlane === controlPlane && s.name !== controlPlane && s.services.includes("promtail"),
    )
    .map((s) => s.name)
    .sort();
}

/** Loki's tenants, one per site: every shipper and the control plane itself. Sorted. */
export function logTenants(estate: Estate, controlPlane: string): string[] {
  return [...logShippers(estate, controlPlane), controlPlane].sort();
}

/**
 * Multi-tenant: each site's logs are its own tenant, named by who pushed them (Traefik's basic auth, or the control
 * plane's own shipper), so no site can write into another's logs; Grafana reads them all at once.
 */
export function renderLokiConfig(): string {
  return toYaml({
    auth_enabled: true,
    server: { http_listen_port: 3100 },
    querier: { multi_tenant_queries_enabled: true },
    common: {
      path_prefix: "/loki",
      replication_factor: 1,
      ring: { kvstore: { store: "inmemory" } },
      storage: { filesystem: { chunks_directory: "/loki/chunks", rules_directory: "/loki/rules" } },
    },
    schema_config: {
      configs: [
        {
          from: "2024-01-01",
          store: "tsdb",
          object_store: "filesystem",
          schema: "v13",
          index: { prefix: "index_", period: "24h" },
        },
      ],
    },
    limits_config: { retention_period: "744h" },
    compactor: {
      working_directory: "/loki/compactor",
      retention_enabled: true,
      delete_request_store: "filesystem",
    },
  });
}

export function renderBlackboxConfig(): string {
  return toYaml({
    modules: {
      [PROBE_MODULES.public]: {
        prober: "http",
        timeout: "10s",
        http: { preferred_ip_protocol: "ip4", fail_if_not_ssl: true },
      },
      // From here a private route is outside the tailnet: Traefik's allow-list must refuse it, over valid TLS.
      [PROBE_MODULES.private]: {
        prober: "http",
        timeout: "10s",
        http: { preferred_ip_protocol: "ip4", fail_if_not_ssl: true, valid_status_codes: [403] },
      },
      [PROBE_MODULES.internal]: { prober: "http", timeout: "5s", http: { preferred_ip_protocol: "ip4" } },
    },
  });
}

/**
 * Sites other than the control plane push through their egress node's proxy to Loki's MagicDNS name, where the
 * control plane's Traefik takes the push with the site's own password and names the tenant after it. The control
 * plane's own shipper pushes to Loki directly, as its own tenant.
 */
export function renderPromtailConfig(
  ctx: Pick<CatalogContext, "site" | "role" | "lokiPushUrl" | "estate" | "controlPlane">,
): string {
  const ships = logShippers(ctx.estate, ctx.controlPlane).includes(ctx.site);
  return toYaml({
    server: { http_listen_port: 9080, grpc_listen_port: 0 },
    positions: { filename: "/var/lib/promtail/positions.yaml" },
    clients: [
      {
        url: ctx.lokiPushUrl,
        ...(ctx.role === "control-plane"
          ? { tenant_id: ctx.site }
          : {
              // Its own egress node: the logs flow is promtail's alone.
              proxy_url: egressProxy("promtail"),
              ...(ships ? { basic_auth: { username: ctx.site, password_file: LOKI_PASSWORD_FILE } } : {}),
            }),
        external_labels: { site: ctx.site },
      },
    ],
    scrape_configs: [
      {
        job_name: "containers",
        docker_sd_configs: [{ host: dockerApiHost("promtail"), refresh_interval: "30s" }],
        relabel_configs: [
          { source_labels: ["__meta_docker_container_name"], regex: "/(.*)", target_label: "container" },
          { source_labels: ["__meta_docker_container_label_cloud_qui3tly_service"], target_label: "service" },
        ],
      },
    ],
  });
}
