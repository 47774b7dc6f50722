import { LOKI_PASSWORD_FILE, logShippers, renderPromtailConfig } from "../render/monitoring";
import { TEXTFILE_DIR } from "../render/textfile";
import {
  LOGS_USERS_FILE,
  acmeDnsEnv,
  ingressAddresses,
  peerForwarderKey,
  peerSites,
  renderTraefikDynamic,
  renderTraefikStatic,
} from "../render/traefik";
import { DOCKER_API_KEY, DOCKER_API_NETWORK, dockerApiHost } from "../render/dockerApi";
import { dockerApiProxy, files, httpHealth, image, notKept, peerForwarder } from "./helpers";
import type { ServiceDef } from "./types";

/** The per-site agents: every site runs these, whatever its role. */

/** node-exporter's own uid: no other image of the catalog runs as it (see its container). */
export const NODE_EXPORTER_UID = 9100;

export const traefik: ServiceDef = {
  description: "Edge router: TLS (Let's Encrypt) and the routes of every service on the site",
  containers: (ctx) => {
    // On the control plane: other sites' log pushes, each site with its own password (render/traefik.ts).
    const logs = ctx.siteServices.includes("loki") && logShippers(ctx.estate, ctx.site).length > 0;
    const acme = acmeDnsEnv(ctx.acmeDnsChallenge);
    return {
      main: {
        image: image("docker.io/library/traefik", "v3.2.3"),
        ports: [
          { internal: 80, external: 80 },
          { internal: 443, external: 443 },
        ],
        volumes: { acme: files("/letsencrypt") },
        files: {
          "/etc/traefik/traefik.yml": renderTraefikStatic(ctx, { logs }),
          "/etc/traefik/dynamic/routes.yml": renderTraefikDynamic(ctx.siteRoutes, {
            crowdsec: ctx.siteServices.includes("crowdsec"),
            tailnet: ctx.siteServices.includes("tailscale"),
            logs,
          }),
        },
        env: acme.env,
        secretFiles: {
          // The shippers' `site:bcrypt` lines: made on the control plane (components/monitoring/logKeys.ts).
          ...(logs ? { [LOGS_USERS_FILE]: { input: "logsUsers" } } : {}),
          ...acme.secretFiles,
        },
        healthcheck: { test: ["CMD", "traefik", "healthcheck", "--ping"] },
        metrics: { port: 8082 },
        memoryMb: 256,
        cpus: 1,
        // `ingress`: where the tailnet node forwards admins' HTTPS (render/traefik.ts TAILNET_ENTRYPOINT_PORT).
        ...(ctx.siteServices.includes("tailscale")
          ? {
              networks: ["edge", "metrics", "ingress"],
              addresses: { ingress: ingressAddresses(ctx.mesh.ingressSubnet).traefik },
            }
          : { networks: ["edge", "metrics"] }),
      },
      // The routes it shares with other sites reach their Traefik, each through a forwarder (render/traefik.ts);
      // once the estate knows them (model/estate.ts loads it in passes).
      ...(ctx.siteServices.includes("tailscale")
        ? Object.fromEntries(
            ctx.estate.sites
              .filter((s) => peerSites(ctx.siteRoutes).includes(s.name))
              .map((peer) => [peerForwarderKey(peer.name), peerForwarder(peer.meshHost)]),
          )
        : {}),
    };
  },
};

export const nodeExporter: ServiceDef = {
  description: "Host metrics: CPU, memory, disk, network",
  part: "monitoring",
  containers: () => ({
    main: {
      image: image("quay.io/prometheus/node-exporter", "v1.8.2"),
      // A uid of its own, not the image's `nobody`: through the host's /proc (inside the `/` it reads) a process
      // can open another's environ and files (/proc/<pid>/root) when their uids match, and Prometheus,
      // Alertmanager (its receivers' secret files) and blackbox run as `nobody`. As uid 9100 it reads only what
      // the host leaves world-readable (/var/lib/docker is not).
      user: `${NODE_EXPORTER_UID}:${NODE_EXPORTER_UID}`,
      command: [
        "--path.rootfs=/host",
        "--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|run)($|/)",
        "--collector.textfile.directory=/textfile",
      ],
      binds: [
        { hostPath: "/", path: "/host" },
        // Backup and sync jobs write their gauges here (docs/metrics.md): on the host, so cron jobs and
        // containers alike can.
        { hostPath: TEXTFILE_DIR, path: "/textfile" },
      ],
      healthcheck: httpHealth("http://127.0.0.1:9100/metrics"),
      metrics: { port: 9100 },
      memoryMb: 64,
      cpus: 0.25,
      networks: ["metrics"],
    },
  }),
};

export const cadvisor: ServiceDef = {
  description: "Container metrics: CPU, memory, restarts of every container",
  part: "monitoring",
  containers: () => ({
    main: {
      image: image("gcr.io/cadvisor/cadvisor", "v0.49.1"),
      command: [
        `--docker=${dockerApiHost("cadvisor")}`,
        "--docker_only=true",
        "--housekeeping_interval=30s",
        // What the rules and dashboards read (CPU, memory; start time and last seen come with every container):
        // disk and network metrics would need the host's / and /proc, which hold every container's secrets.
        "--enable_metrics=cpu,memory",
      ],
      binds: [
        // Every container's cgroup: CPU and memory.
        { hostPath: "/sys", path: "/sys" },
        // Layer metadata and image configs: cAdvisor gives up on a container whose read-write layer it cannot
        // name (image/<driver>/layerdb/mounts/<id>/mount-id). No container's env or files are in there; those
        // are in /var/lib/docker/containers and the layers, which it does not get.
        { hostPath: "/var/lib/docker/image", path: "/var/lib/docker/image" },
      ],
      healthcheck: httpHealth("http://127.0.0.1:8080/healthz"),
      metrics: { port: 8080 },
      memoryMb: 256,
      cpus: 0.5,
      networks: ["metrics"],
      privateNetworks: [DOCKER_API_NETWORK],
    },
    [DOCKER_API_KEY]: dockerApiProxy("cadvisor"),
  }),
};

export const promtail: ServiceDef = {
  description: "Log shipper: every container's logs to Loki on the control plane",
  part: "monitoring",
  containers: (ctx) => ({
    main: {
      image: image("docker.io/grafana/promtail", "3.3.2"),
      command: ["-config.file=/etc/promtail/config.yml"],
      volumes: {
        positions: notKept(
          "/var/lib/promtail",
          "where the shipper stopped in each log: without it, it ships again what is still on disk",
        ),
      },
      files: { "/etc/promtail/config.yml": renderPromtailConfig(ctx) },
      // Its own push password, from the control plane's stack: the tenant its logs land in is its own.
      ...(logShippers(ctx.estate, ctx.controlPlane).includes(ctx.site)
        ? { secretFiles: { [LOKI_PASSWORD_FILE]: { input: "lokiPassword" } } }
        : {}),
      healthcheck: { none: "the promtail image has no HTTP client; Prometheus scrapes its /ready instead" },
      metrics: { port: 9080 },
      memoryMb: 128,
      cpus: 0.25,
      networks: ["metrics"],
      privateNetworks: [DOCKER_API_NETWORK],
    },
    [DOCKER_API_KEY]: dockerApiProxy("promtail"),
  }),
};

export const portainerAgent: ServiceDef = {
  description: "Lets the control plane's Portainer manage this site's Docker",
  containers: () => ({
    main: {
      image: image("docker.io/portainer/agent", "2.21.5"),
      binds: [
        { hostPath: "/var/run/docker.sock", path: "/var/run/docker.sock", readOnly: false },
        { hostPath: "/var/lib/docker/volumes", path: "/var/lib/docker/volumes" },
      ],
      healthcheck: { none: "the portainer agent image is a single static binary with no probe" },
      memoryMb: 64,
      cpus: 0.25,
    },
  }),
};
