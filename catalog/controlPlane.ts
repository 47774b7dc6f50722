import { alertmanagerSecretFiles, renderAlertmanagerConfig } from "../render/alertmanager";
import { POLICY_PATH, renderHeadscaleConfig, renderHeadscalePolicy } from "../render/headscale";
import {
  DASHBOARDS_DIR,
  GRAFANA_PROVISIONING,
  renderDashboardProvider,
  renderDashboards,
  renderGrafanaDatasources,
} from "../render/grafana";
import { renderBlackboxConfig, renderLokiConfig } from "../render/monitoring";
import { PROMETHEUS_DIR, RULES_DIR, renderPrometheusConfig } from "../render/prometheus";
import { RUNBOOKS_PATH, renderAlertRules, ruleFiles } from "../render/rules";
import { renderCrowdsecAcquisition } from "../render/traefik";
import { resolverAddress } from "../render/dns";
import { DOCKER_API_KEY, DOCKER_API_NETWORK, dockerApiHost } from "../render/dockerApi";
import { STATIC_BINARY, dockerApiProxy, files, httpHealth, image, kept, notKept } from "./helpers";
import type { ServiceDef } from "./types";

/** Services of the control plane: the mesh, DNS, management and the monitoring stack. */

/** Portainer's first admin password (user `admin`), generated: a file it reads at its first start. */
export const PORTAINER_ADMIN_PASSWORD_FILE = "/run/secrets/portainer-admin";

export const headscale: ServiceDef = {
  description: "Tailnet control server (Tailscale-compatible) with its embedded DERP relay",
  part: "tailnet",
  routes: {
    // Its root is a 404: the probe asks the health endpoint.
    api: { subdomain: "headscale", port: 8080, probePath: "/health" },
    // The UI is served under the API's host name at /web, as upstream documents.
    ui: { subdomain: "headscale", pathPrefix: "/web", container: "ui", port: 8080, private: true },
  },
  containers: (ctx) => ({
    main: {
      image: image("docker.io/headscale/headscale", "0.29.3"),
      command: ["serve"],
      ports: [
        // STUN for the embedded DERP server: UDP straight to the host, Traefik only carries HTTP.
        { internal: 3478, external: 3478, protocol: "udp" },
        ...(ctx.mesh.headscalePort === undefined
          ? []
          : [{ internal: 8080, external: ctx.mesh.headscalePort }]),
      ],
      // The node registry and keys: every site's node keeps its identity only while this survives.
      volumes: { data: kept("/var/lib/headscale", { method: "sqlite", databases: ["db.sqlite"] }) },
      files: {
        "/etc/headscale/config.yaml": renderHeadscaleConfig(ctx),
        [POLICY_PATH]: renderHeadscalePolicy(ctx),
      },
      // Distroless: the binary itself is the only program inside, and it can ask the server.
      healthcheck: { test: ["CMD", "headscale", "health"] },
      metrics: { port: 9091 },
      memoryMb: 256,
      cpus: 0.5,
      networks: ["edge", "metrics"],
    },
    ui: {
      image: image("ghcr.io/gurucomputing/headscale-ui", "2024.02.24-beta1"),
      healthcheck: httpHealth("http://127.0.0.1:8080/web/"),
      memoryMb: 64,
      cpus: 0.25,
      networks: ["edge"],
    },
  }),
};

export const pihole: ServiceDef = {
  description: "DNS for the tailnet: ad blocking in front of a local recursive resolver",
  routes: { admin: { subdomain: "pihole", port: 80, private: true } },
  // A secondary answers as the primary does: the local DNS records and CNAMEs (what the admin UI writes), and the
  // gravity database (adlists, allow/deny lists, groups, clients). FTL re-reads the records and gravity on SIGHUP
  // (`reload`); a CNAME file is dnsmasq config, read at its start only: a full restart. Not setupVars.conf: it holds
  // the admin password's hash, each site's own. These are Pi-hole v5's files (the image's 2024.07.0): v6 keeps its
  // records and settings in pihole.toml, and this list changes with the tag.
  secondary: {
    files: {
      "/etc/pihole/custom.list": ["pihole", "restartdns", "reload"],
      "/etc/pihole/gravity.db": ["pihole", "restartdns", "reload"],
      "/etc/dnsmasq.d/05-pihole-custom-cname.conf": ["pihole", "restartdns"],
    },
  },
  generatedSecrets: ["admin"],
  containers: (ctx) => {
    // Where the site has a tailnet node, Pi-hole answers the tailnet at the site's resolver address.
    const resolver = resolverAddress({ services: ctx.siteServices, mesh: ctx.mesh });
    return {
      main: {
        image: image("docker.io/pihole/pihole", "2024.07.0"),
        env: {
          TZ: ctx.timezone,
          WEBPASSWORD: { generated: "admin" },
          PIHOLE_DNS_: "pihole-unbound#53",
          DNSMASQ_LISTENING: "all",
        },
        // The host's own on loopback; the tailnet's through the site's node, which routes the resolver address on
        // the ingress network here (render/dns.ts): never on a public address, never an open resolver.
        ports: [
          { internal: 53, external: 53, protocol: "tcp", ip: "127.0.0.1" },
          { internal: 53, external: 53, protocol: "udp", ip: "127.0.0.1" },
        ],
        volumes: {
          config: kept("/etc/pihole", { method: "sqlite", databases: ["gravity.db", "pihole-FTL.db"] }),
          dnsmasq: files("/etc/dnsmasq.d"),
        },
        healthcheck: { test: ["CMD-SHELL", "dig +short +norecurse +retry=0 @127.0.0.1 pi.hole || exit 1"] },
        memoryMb: 256,
        cpus: 0.5,
        ...(resolver
          ? { networks: ["edge", "ingress"] as const, addresses: { ingress: resolver } }
          : { networks: ["edge"] as const }),
        dependsOn: ["unbound"],
      },
      unbound: {
        image: image("docker.io/mvance/unbound", "1.21.1"),
        healthcheck: { test: ["CMD-SHELL", "drill @127.0.0.1 localhost >/dev/null || exit 1"] },
        memoryMb: 128,
        cpus: 0.25,
      },
      exporter: {
        image: image("docker.io/ekofr/pihole-exporter", "v0.4.0"),
        env: {
          PIHOLE_HOSTNAME: "pihole",
          PIHOLE_PORT: "80",
          PIHOLE_PASSWORD: { generated: "admin" },
          PORT: "9617",
        },
        metrics: { port: 9617 },
        healthcheck: STATIC_BINARY,
        memoryMb: 64,
        cpus: 0.1,
        networks: ["metrics"],
        dependsOn: ["main"],
      },
    };
  },
};

export const portainer: ServiceDef = {
  description: "Docker management UI for every site (agents on the others)",
  routes: { ui: { subdomain: "portainer", port: 9000, private: true } },
  generatedSecrets: ["admin"],
  containers: () => ({
    main: {
      image: image("docker.io/portainer/portainer-ce", "2.21.5"),
      // The admin exists from the first start: otherwise the first visitor of a fresh Portainer creates it, and
      // every container on `edge` can visit (it holds the Docker API read-write). Ignored once an admin exists.
      command: ["--admin-password-file", PORTAINER_ADMIN_PASSWORD_FILE],
      secretFiles: { [PORTAINER_ADMIN_PASSWORD_FILE]: { generated: "admin" } },
      binds: [{ hostPath: "/var/run/docker.sock", path: "/var/run/docker.sock", readOnly: false }],
      volumes: { data: files("/data") },
      healthcheck: { none: "the portainer image is a single static binary with no probe" },
      memoryMb: 256,
      cpus: 0.5,
      networks: ["edge"],
    },
  }),
};

export const prometheus: ServiceDef = {
  description: "Metrics: scrapes every site's exporters and evaluates the alert rules",
  part: "monitoring",
  requires: ["alertmanager"],
  routes: { ui: { subdomain: "prometheus", port: 9090, private: true } },
  containers: (ctx) => ({
    main: {
      image: image("quay.io/prometheus/prometheus", "v2.55.1"),
      command: [
        `--config.file=${PROMETHEUS_DIR}/prometheus.yml`,
        "--storage.tsdb.path=/prometheus",
        `--storage.tsdb.retention.time=${ctx.monitoring.retention.time}`,
        `--storage.tsdb.retention.size=${ctx.monitoring.retention.size}`,
        "--web.enable-lifecycle",
      ],
      volumes: {
        data: notKept(
          "/prometheus",
          "metrics history: weeks of TSDB blocks, not worth their size offsite; lost with the site (README)",
        ),
      },
      files: {
        [`${PROMETHEUS_DIR}/prometheus.yml`]: renderPrometheusConfig(ctx),
        ...Object.fromEntries(
          Object.entries(ruleFiles(ctx.estate, ctx.monitoring.interval)).map(([f, defs]) => [
            `${PROMETHEUS_DIR}/${RULES_DIR}/${f}`,
            renderAlertRules(defs, ctx.monitoring.runbookUrl ?? RUNBOOKS_PATH),
          ]),
        ),
      },
      healthcheck: httpHealth("http://127.0.0.1:9090/-/healthy"),
      metrics: { port: 9090 },
      memoryMb: 1024,
      cpus: 1,
      networks: ["edge", "metrics"],
    },
  }),
};

export const alertmanager: ServiceDef = {
  description: "Routes alerts to the operator: critical ones page (ntfy), warnings as an email digest",
  part: "monitoring",
  requires: ["ntfy"],
  routes: { ui: { subdomain: "alertmanager", port: 9093, private: true } },
  containers: (ctx) => ({
    main: {
      image: image("quay.io/prometheus/alertmanager", "v0.27.0"),
      command: ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
      volumes: { data: files("/alertmanager") },
      files: { "/etc/alertmanager/alertmanager.yml": renderAlertmanagerConfig(ctx.monitoring) },
      secretFiles: alertmanagerSecretFiles(ctx.monitoring),
      healthcheck: httpHealth("http://127.0.0.1:9093/-/healthy"),
      metrics: { port: 9093 },
      memoryMb: 128,
      cpus: 0.25,
      networks: ["edge", "metrics"],
    },
    ntfy: {
      // Alertmanager's webhook format -> ntfy messages.
      image: image("docker.io/xenrox/ntfy-alertmanager", "0.4.0"),
      healthcheck: STATIC_BINARY,
      memoryMb: 32,
      cpus: 0.1,
      networks: ["metrics"],
    },
  }),
};

export const grafana: ServiceDef = {
  description: "Dashboards over Prometheus and Loki",
  part: "monitoring",
  requires: ["prometheus", "loki"],
  routes: { ui: { subdomain: "grafana", port: 3000, private: true } },
  generatedSecrets: ["admin"],
  containers: (ctx) => ({
    main: {
      image: image("docker.io/grafana/grafana", "11.4.0"),
      env: {
        GF_SECURITY_ADMIN_USER: "admin",
        GF_SECURITY_ADMIN_PASSWORD: { generated: "admin" },
        GF_SERVER_ROOT_URL: `https://${ctx.hosts.ui}`,
        GF_ANALYTICS_REPORTING_ENABLED: "false",
      },
      volumes: { data: kept("/var/lib/grafana", { method: "sqlite", databases: ["grafana.db"] }) },
      files: {
        [`${GRAFANA_PROVISIONING}/datasources/qcloud.yml`]: renderGrafanaDatasources(ctx.estate, ctx.site),
        [`${GRAFANA_PROVISIONING}/dashboards/qcloud.yml`]: renderDashboardProvider(),
        ...Object.fromEntries(
          Object.entries(renderDashboards(ctx.estate)).map(([f, json]) => [`${DASHBOARDS_DIR}/${f}`, json]),
        ),
      },
      healthcheck: httpHealth("http://127.0.0.1:3000/api/health"),
      metrics: { port: 3000 },
      memoryMb: 256,
      cpus: 0.5,
      networks: ["edge", "metrics"],
    },
  }),
};

export const loki: ServiceDef = {
  description: "Logs from every site's shipper",
  part: "monitoring",
  containers: () => ({
    main: {
      image: image("docker.io/grafana/loki", "3.3.2"),
      command: ["-config.file=/etc/loki/config.yaml"],
      volumes: {
        data: notKept("/loki", "logs: searched for days, not restored; lost with the site (README)"),
      },
      files: { "/etc/loki/config.yaml": renderLokiConfig() },
      healthcheck: httpHealth("http://127.0.0.1:3100/ready", "60s"),
      metrics: { port: 3100 },
      memoryMb: 512,
      cpus: 0.5,
      networks: ["metrics"],
    },
  }),
};

export const blackbox: ServiceDef = {
  description: "Probes every routed URL from the outside in",
  part: "monitoring",
  containers: () => ({
    main: {
      image: image("quay.io/prometheus/blackbox-exporter", "v0.25.0"),
      command: ["--config.file=/etc/blackbox/blackbox.yml"],
      files: { "/etc/blackbox/blackbox.yml": renderBlackboxConfig() },
      healthcheck: httpHealth("http://127.0.0.1:9115/-/healthy"),
      metrics: { port: 9115 },
      memoryMb: 64,
      cpus: 0.1,
      networks: ["metrics"],
    },
  }),
};

export const ntfy: ServiceDef = {
  description: "Push notifications to the operator's phone",
  routes: { web: { subdomain: "ntfy", port: 80 } },
  containers: (ctx) => ({
    main: {
      image: image("docker.io/binwiederhier/ntfy", "v2.11.0"),
      command: ["serve"],
      env: {
        NTFY_BASE_URL: `https://${ctx.hosts.web}`,
        NTFY_CACHE_FILE: "/var/cache/ntfy/cache.db",
        // Without an auth file ntfy ignores the default and lets anyone publish and read.
        NTFY_AUTH_FILE: "/var/cache/ntfy/user.db",
        NTFY_AUTH_DEFAULT_ACCESS: "deny-all",
        NTFY_BEHIND_PROXY: "true",
      },
      volumes: { cache: kept("/var/cache/ntfy", { method: "sqlite", databases: ["cache.db", "user.db"] }) },
      healthcheck: httpHealth("http://127.0.0.1:80/v1/health"),
      memoryMb: 64,
      cpus: 0.25,
      networks: ["edge", "metrics"],
    },
  }),
};

export const uptimeKuma: ServiceDef = {
  description: "Public status page and synthetic checks",
  routes: { web: { subdomain: "status", port: 3001 } },
  containers: () => ({
    main: {
      image: image("docker.io/louislam/uptime-kuma", "1.23.16"),
      volumes: { data: kept("/app/data", { method: "sqlite", databases: ["kuma.db"] }) },
      healthcheck: { test: ["CMD", "extra/healthcheck"] },
      memoryMb: 256,
      cpus: 0.5,
      networks: ["edge"],
    },
  }),
};

export const crowdsec: ServiceDef = {
  description: "Intrusion prevention: reads Traefik's logs, bans abusers at the edge",
  requires: ["traefik"],
  generatedSecrets: ["bouncerKey"],
  containers: () => ({
    main: {
      image: image("docker.io/crowdsecurity/crowdsec", "v1.6.4"),
      env: {
        COLLECTIONS: "crowdsecurity/traefik crowdsecurity/http-cve",
        BOUNCER_KEY_TRAEFIK: { generated: "bouncerKey" },
        DOCKER_HOST: dockerApiHost("crowdsec"),
      },
      volumes: {
        config: files("/etc/crowdsec"),
        data: notKept(
          "/var/lib/crowdsec/data",
          "ban decisions and hub downloads: rebuilt from new events and the hub; the bouncer's key comes from env",
        ),
      },
      // Traefik's access log (JSON on stdout), read through its own read-only Docker API.
      files: { "/etc/crowdsec/acquis.d/traefik.yaml": renderCrowdsecAcquisition() },
      healthcheck: { test: ["CMD", "cscli", "lapi", "status"], startPeriod: "60s" },
      memoryMb: 256,
      cpus: 0.5,
      networks: ["metrics"],
      privateNetworks: [DOCKER_API_NETWORK],
    },
    [DOCKER_API_KEY]: dockerApiProxy("crowdsec"),
    bouncer: {
      image: image("docker.io/fbonalair/traefik-crowdsec-bouncer", "0.5.0"),
      env: {
        CROWDSEC_BOUNCER_API_KEY: { generated: "bouncerKey" },
        CROWDSEC_AGENT_HOST: "crowdsec:8080",
      },
      healthcheck: { test: ["CMD", "/healthchecker"] },
      memoryMb: 32,
      cpus: 0.1,
      networks: ["edge"],
      dependsOn: ["main"],
    },
  }),
};

export const homepage: ServiceDef = {
  description: "Start page linking every routed service of the estate",
  // A standby on another site serves the page when this one cannot. Its config volume is its own: nothing syncs it.
  secondary: { files: {}, servesRoutes: true },
  routes: { web: { subdomain: "home", port: 3000, private: true, probePath: "/api/healthcheck" } },
  containers: (ctx) => ({
    main: {
      image: image("ghcr.io/gethomepage/homepage", "v0.10.9"),
      env: { HOMEPAGE_ALLOWED_HOSTS: ctx.hosts.web },
      volumes: { config: files("/app/config") },
      healthcheck: httpHealth("http://127.0.0.1:3000/api/healthcheck"),
      memoryMb: 128,
      cpus: 0.25,
      networks: ["edge"],
    },
  }),
};
