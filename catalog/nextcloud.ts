import { STATIC_BINARY, files, httpHealth, image, kept, notKept } from "./helpers";
import type { ServiceDef } from "./types";

const APP = image("docker.io/library/nextcloud", "30.0.4-apache");

export const nextcloud: ServiceDef = {
  description:
    "Files, calendars and contacts: Nextcloud with PostgreSQL, Redis, cron, Collabora Online and exporters",
  routes: {
    web: { subdomain: "cloud", port: 80 },
    office: { subdomain: "office", container: "office", port: 9980 },
  },
  generatedSecrets: ["admin", "db", "redis"],
  containers: (ctx) => {
    const db = {
      POSTGRES_HOST: "nextcloud-db",
      POSTGRES_DB: "nextcloud",
      POSTGRES_USER: "nextcloud",
      POSTGRES_PASSWORD: { generated: "db" },
    } as const;
    const app = {
      ...db,
      REDIS_HOST: "nextcloud-redis",
      REDIS_HOST_PASSWORD: { generated: "redis" },
      // The exporter calls the app by its container name.
      NEXTCLOUD_TRUSTED_DOMAINS: `${ctx.hosts.web} nextcloud`,
      TRUSTED_PROXIES: "172.16.0.0/12",
      OVERWRITEPROTOCOL: "https",
    } as const;
    return {
      main: {
        image: APP,
        env: {
          ...app,
          NEXTCLOUD_ADMIN_USER: "admin",
          NEXTCLOUD_ADMIN_PASSWORD: { generated: "admin" },
          PHP_MEMORY_LIMIT: "1G",
        },
        volumes: { html: files("/var/www/html") },
        healthcheck: {
          test: ["CMD-SHELL", "curl -fsS http://127.0.0.1/status.php | grep -q '\"installed\":true'"],
          startPeriod: "300s",
        },
        memoryMb: 2048,
        cpus: 2,
        networks: ["edge"],
        dependsOn: ["db", "redis"],
      },
      cron: {
        // Same image and files as the app: background jobs every 5 minutes.
        image: APP,
        entrypoint: ["/cron.sh"],
        env: app,
        sharedVolumes: [{ container: "main", volume: "html", path: "/var/www/html" }],
        // Debian's busybox-static (the image's crond) has no pgrep applet, and procps is not installed.
        healthcheck: { none: "crond is PID 1: the container runs exactly as long as cron does" },
        memoryMb: 512,
        cpus: 0.5,
        dependsOn: ["main"],
      },
      db: {
        image: image("docker.io/library/postgres", "16.6-alpine"),
        env: {
          POSTGRES_DB: db.POSTGRES_DB,
          POSTGRES_USER: db.POSTGRES_USER,
          POSTGRES_PASSWORD: db.POSTGRES_PASSWORD,
        },
        volumes: {
          data: kept("/var/lib/postgresql/data", {
            method: "postgres",
            database: "nextcloud",
            user: "nextcloud",
          }),
        },
        healthcheck: { test: ["CMD-SHELL", "pg_isready -U nextcloud -d nextcloud"] },
        memoryMb: 1024,
        cpus: 1,
      },
      redis: {
        image: image("docker.io/library/redis", "7.4.1-alpine"),
        command: ["sh", "-c", 'exec redis-server --requirepass "$REDIS_PASSWORD" --appendonly yes'],
        env: { REDIS_PASSWORD: { generated: "redis" } },
        volumes: { data: notKept("/data", "cache, sessions and file locks: Nextcloud rebuilds them") },
        healthcheck: {
          test: ["CMD-SHELL", 'redis-cli -a "$REDIS_PASSWORD" --no-auth-warning ping | grep -q PONG'],
        },
        memoryMb: 256,
        cpus: 0.5,
      },
      office: {
        // Collabora Online: documents edited in the browser; TLS ends at Traefik.
        image: image("docker.io/collabora/code", "24.04.10.2.1"),
        env: {
          aliasgroup1: `https://${ctx.hosts.web}:443`,
          extra_params: "--o:ssl.enable=false --o:ssl.termination=true",
          dictionaries: "en_US de_DE",
        },
        capabilities: ["MKNOD"],
        healthcheck: {
          test: ["CMD-SHELL", "curl -fsS http://127.0.0.1:9980/hosting/discovery >/dev/null"],
          startPeriod: "120s",
        },
        memoryMb: 1024,
        cpus: 1,
        networks: ["edge"],
      },
      "db-exporter": {
        image: image("quay.io/prometheuscommunity/postgres-exporter", "v0.16.0"),
        env: {
          DATA_SOURCE_URI: "nextcloud-db:5432/nextcloud?sslmode=disable",
          DATA_SOURCE_USER: db.POSTGRES_USER,
          DATA_SOURCE_PASS: db.POSTGRES_PASSWORD,
        },
        healthcheck: httpHealth("http://127.0.0.1:9187/metrics"),
        metrics: { port: 9187 },
        memoryMb: 64,
        cpus: 0.1,
        networks: ["metrics"],
        dependsOn: ["db"],
      },
      "redis-exporter": {
        image: image("docker.io/oliver006/redis_exporter", "v1.66.0"),
        env: { REDIS_ADDR: "redis://nextcloud-redis:6379", REDIS_PASSWORD: { generated: "redis" } },
        healthcheck: STATIC_BINARY,
        metrics: { port: 9121 },
        memoryMb: 32,
        cpus: 0.1,
        networks: ["metrics"],
        dependsOn: ["redis"],
      },
      exporter: {
        image: image("ghcr.io/xperimental/nextcloud-exporter", "0.8.0"),
        env: {
          NEXTCLOUD_SERVER: "http://nextcloud",
          NEXTCLOUD_USERNAME: "admin",
          NEXTCLOUD_PASSWORD: { generated: "admin" },
          NEXTCLOUD_LISTEN_ADDRESS: ":9205",
        },
        healthcheck: STATIC_BINARY,
        metrics: { port: 9205 },
        memoryMb: 32,
        cpus: 0.1,
        networks: ["metrics"],
        dependsOn: ["main"],
      },
    };
  },
};
