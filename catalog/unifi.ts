import { STATIC_BINARY, image, kept, notKept } from "./helpers";
import type { ServiceDef } from "./types";

export const unifi: ServiceDef = {
  description: "UniFi Network Application with its MongoDB and exporter",
  routes: { ui: { subdomain: "unifi", port: 8443, scheme: "https", private: true } },
  generatedSecrets: ["db", "dbRoot"],
  containers: (ctx) => ({
    main: {
      image: image("lscr.io/linuxserver/unifi-network-application", "8.6.9"),
      env: {
        TZ: ctx.timezone,
        PUID: "1000",
        PGID: "1000",
        MONGO_HOST: "unifi-db",
        MONGO_PORT: "27017",
        MONGO_DBNAME: "unifi",
        MONGO_USER: "unifi",
        MONGO_PASS: { generated: "db" },
        MEM_LIMIT: "1024",
      },
      // Devices reach the controller directly: inform and STUN.
      ports: [
        { internal: 8080, external: 8080 },
        { internal: 3478, external: 3478, protocol: "udp" },
        { internal: 10001, external: 10001, protocol: "udp" },
      ],
      volumes: {
        config: kept("/config", {
          method: "export",
          paths: ["data/backup"],
          why: "UniFi's own .unf autobackups (settings, devices, statistics) are its supported restore; the rest is rebuilt",
        }),
      },
      healthcheck: {
        test: ["CMD-SHELL", "curl -kfsS https://127.0.0.1:8443/status >/dev/null"],
        startPeriod: "180s",
      },
      memoryMb: 1536,
      cpus: 1,
      networks: ["edge"],
      dependsOn: ["db"],
    },
    db: {
      image: image("docker.io/library/mongo", "7.0.16"),
      env: {
        MONGO_INITDB_ROOT_USERNAME: "root",
        MONGO_INITDB_ROOT_PASSWORD: { generated: "dbRoot" },
        MONGO_USER: "unifi",
        MONGO_PASS: { generated: "db" },
      },
      volumes: {
        data: notKept(
          "/data/db",
          "MongoDB: its content is in UniFi's .unf autobackups (unifi-config); no mongodump here, and a running MongoDB's files are no backup",
        ),
      },
      // The init script reads the passwords from env: the file itself holds no secret.
      files: {
        "/docker-entrypoint-initdb.d/unifi.sh": [
          "#!/bin/sh",
          "set -e",
          'mongosh -u "$MONGO_INITDB_ROOT_USERNAME" -p "$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin <<JS',
          'db.getSiblingDB("unifi").createUser({user: "$MONGO_USER", pwd: "$MONGO_PASS", roles: [{role: "dbOwner", db: "unifi"}]});',
          'db.getSiblingDB("unifi_stat").createUser({user: "$MONGO_USER", pwd: "$MONGO_PASS", roles: [{role: "dbOwner", db: "unifi_stat"}]});',
          "JS",
          "",
        ].join("\n"),
      },
      healthcheck: { test: ["CMD", "mongosh", "--quiet", "--eval", "db.adminCommand('ping').ok"] },
      memoryMb: 1024,
      cpus: 1,
    },
    exporter: {
      image: image("docker.io/percona/mongodb_exporter", "0.43.1"),
      command: ["--collect-all", "--web.listen-address=:9216"],
      env: {
        MONGODB_USER: "root",
        MONGODB_PASSWORD: { generated: "dbRoot" },
        MONGODB_URI: "mongodb://unifi-db:27017/admin",
      },
      healthcheck: STATIC_BINARY,
      metrics: { port: 9216 },
      memoryMb: 64,
      cpus: 0.1,
      networks: ["metrics"],
      dependsOn: ["db"],
    },
  }),
};
