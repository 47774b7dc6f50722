import { files, image, kept, notKept } from "./helpers";
import type { ServiceDef } from "./types";

/** UISP (Ubiquiti ISP management) as its upstream multi-container install lays it out; its images share a version. */
export const uisp: ServiceDef = {
  description: "UISP: Ubiquiti device management, with its PostgreSQL, RabbitMQ, SiriDB, NetFlow and CRM",
  // Devices connect over WSS on 443, which Traefik passes through as HTTP.
  routes: { web: { subdomain: "uisp", container: "nginx", port: 443, scheme: "https" } },
  generatedSecrets: ["db", "secret"],
  containers: (ctx) => {
    const shared = {
      UNMS_POSTGRES_HOST: "uisp-postgres",
      UNMS_POSTGRES_PASSWORD: { generated: "db" },
      UNMS_RABBITMQ_HOST: "uisp-rabbitmq",
      UNMS_SIRIDB_HOST: "uisp-siridb",
      UNMS_TOKEN: { generated: "secret" },
      PUBLIC_HTTPS_PORT: "443",
      UNMS_PUBLIC_HOST: ctx.hosts.web,
    } as const;
    return {
      main: {
        image: image("docker.io/ubnt/unms", "2.4.155"),
        env: { ...shared, NODE_ENV: "production" },
        volumes: {
          data: kept("/home/app/unms/data", {
            method: "export",
            paths: ["unms-backups"],
            why: "UISP's own daily backups (settings and devices) are what it restores from; the rest is caches and logs",
          }),
        },
        healthcheck: {
          test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8081/v2.1/nms/heartbeat"],
          startPeriod: "300s",
        },
        memoryMb: 2048,
        cpus: 1.5,
        dependsOn: ["postgres", "rabbitmq", "siridb"],
      },
      crm: {
        image: image("docker.io/ubnt/unms-crm", "2.4.155"),
        env: shared,
        volumes: { data: files("/data") },
        healthcheck: {
          test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:80/ || exit 1"],
          startPeriod: "300s",
        },
        memoryMb: 1024,
        cpus: 1,
        dependsOn: ["postgres", "main"],
      },
      nginx: {
        image: image("docker.io/ubnt/unms-nginx", "2.4.155"),
        env: {
          ...shared,
          HTTP_PORT: "80",
          HTTPS_PORT: "443",
          WS_PORT: "443",
          UNMS_HOST: "uisp",
          UCRM_HOST: "uisp-crm",
        },
        volumes: { cert: files("/cert") },
        healthcheck: {
          test: ["CMD-SHELL", "wget -q -O /dev/null --no-check-certificate https://127.0.0.1:443/ || exit 1"],
        },
        memoryMb: 256,
        cpus: 0.5,
        networks: ["edge"],
        dependsOn: ["main", "crm"],
      },
      netflow: {
        image: image("docker.io/ubnt/unms-netflow", "2.4.155"),
        env: shared,
        ports: [{ internal: 2055, external: 2055, protocol: "udp" }],
        healthcheck: { none: "the netflow collector exposes no probe upstream" },
        memoryMb: 256,
        cpus: 0.5,
        dependsOn: ["postgres"],
      },
      postgres: {
        image: image("docker.io/ubnt/unms-postgres", "2.4.155"),
        env: { POSTGRES_DB: "unms", POSTGRES_USER: "unms", POSTGRES_PASSWORD: { generated: "db" } },
        volumes: {
          data: kept("/var/lib/postgresql/data", { method: "postgres", database: "unms", user: "unms" }),
        },
        healthcheck: { test: ["CMD-SHELL", "pg_isready -U unms -d unms"] },
        memoryMb: 1024,
        cpus: 1,
      },
      rabbitmq: {
        image: image("docker.io/library/rabbitmq", "3.13.7-alpine"),
        volumes: { data: notKept("/var/lib/rabbitmq", "a queue between UISP's parts: transient") },
        healthcheck: { test: ["CMD", "rabbitmq-diagnostics", "-q", "ping"], startPeriod: "60s" },
        memoryMb: 512,
        cpus: 0.5,
      },
      siridb: {
        image: image("docker.io/ubnt/unms-siridb", "2.4.155"),
        volumes: {
          data: notKept(
            "/var/lib/siridb",
            "device statistics: history that devices report again, lost with the site",
          ),
        },
        healthcheck: { none: "SiriDB's image has no client to probe with" },
        memoryMb: 512,
        cpus: 0.5,
      },
      fluentd: {
        image: image("docker.io/ubnt/unms-fluentd", "2.4.155"),
        volumes: {
          logs: notKept("/fluentd/log", "UISP's own log files: written anew as it runs, not worth restoring"),
        },
        healthcheck: { none: "fluentd's image has no probe upstream" },
        memoryMb: 128,
        cpus: 0.25,
      },
    };
  },
};
