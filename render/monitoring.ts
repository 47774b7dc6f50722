import type { CatalogContext } from "../catalog/types";
import { dockerApiHost } from "./dockerApi";
import { MESH_PROXY, PROBE_MODULES } from "./prometheus";
import { toYaml } from "./yaml";

/** The monitoring stack's smaller config files: Loki, the blackbox exporter and every site's log shipper. */

export function renderLokiConfig(): string {
  return toYaml({
    auth_enabled: false,
    server: { http_listen_port: 3100 },
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

/** Sites other than the control plane push through their egress node's proxy to Loki's MagicDNS name. */
export function renderPromtailConfig(ctx: Pick<CatalogContext, "site" | "role" | "lokiPushUrl">): string {
  return toYaml({
    server: { http_listen_port: 9080, grpc_listen_port: 0 },
    positions: { filename: "/var/lib/promtail/positions.yaml" },
    clients: [
      {
        url: ctx.lokiPushUrl,
        ...(ctx.role === "control-plane" ? {} : { proxy_url: MESH_PROXY }),
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
