import type { CatalogContext } from "../catalog/types";
import { toYaml } from "./yaml";

/**
 * The monitoring stack's own config files. This is the site-local baseline; the monitoring issue extends it to
 * every site of the estate (targets by MagicDNS name), rules and dashboards.
 */

const LOCAL_TARGETS: Readonly<Record<string, string>> = {
  prometheus: "127.0.0.1:9090",
  node: "node-exporter:9100",
  cadvisor: "cadvisor:8080",
  traefik: "traefik:8082",
  loki: "loki:3100",
  alertmanager: "alertmanager:9093",
};

export function renderPrometheusConfig(ctx: Pick<CatalogContext, "site" | "role">): string {
  return toYaml({
    global: { scrape_interval: "30s", evaluation_interval: "30s", external_labels: { estate: "qui3tly" } },
    alerting: { alertmanagers: [{ static_configs: [{ targets: ["alertmanager:9093"] }] }] },
    scrape_configs: Object.entries(LOCAL_TARGETS).map(([job, target]) => ({
      job_name: job,
      static_configs: [{ targets: [target], labels: { site: ctx.site, role: ctx.role } }],
    })),
  });
}

export function renderAlertmanagerConfig(): string {
  return toYaml({
    route: { receiver: "ntfy", group_by: ["alertname", "site"], group_wait: "30s", repeat_interval: "4h" },
    receivers: [
      { name: "ntfy", webhook_configs: [{ url: "http://alertmanager-ntfy:8080", send_resolved: true }] },
    ],
  });
}

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

export function renderGrafanaDatasources(): string {
  return toYaml({
    apiVersion: 1,
    datasources: [
      {
        name: "Prometheus",
        uid: "prometheus",
        type: "prometheus",
        url: "http://prometheus:9090",
        isDefault: true,
      },
      { name: "Loki", uid: "loki", type: "loki", url: "http://loki:3100" },
    ],
  });
}

export function renderBlackboxConfig(): string {
  return toYaml({
    modules: {
      http_2xx: {
        prober: "http",
        timeout: "10s",
        http: { preferred_ip_protocol: "ip4", fail_if_not_ssl: true },
      },
      tcp_connect: { prober: "tcp", timeout: "5s" },
    },
  });
}

export function renderPromtailConfig(ctx: Pick<CatalogContext, "site" | "lokiPushUrl">): string {
  return toYaml({
    server: { http_listen_port: 9080, grpc_listen_port: 0 },
    positions: { filename: "/var/lib/promtail/positions.yaml" },
    clients: [{ url: ctx.lokiPushUrl, external_labels: { site: ctx.site } }],
    scrape_configs: [
      {
        job_name: "containers",
        docker_sd_configs: [{ host: "tcp://socket-proxy:2375", refresh_interval: "30s" }],
        relabel_configs: [
          { source_labels: ["__meta_docker_container_name"], regex: "/(.*)", target_label: "container" },
          { source_labels: ["__meta_docker_container_label_cloud_qui3tly_service"], target_label: "service" },
        ],
      },
    ],
  });
}
