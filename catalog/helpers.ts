import {
  DOCKER_API_NETWORK,
  DOCKER_API_PORT,
  DOCKER_API_PROXY_SCRIPT,
  DOCKER_API_RULES_PATH,
  DOCKER_API_SCRIPT_PATH,
  renderDockerApiRules,
  type DockerApiConsumer,
} from "../render/dockerApi";
import { MESH_PROXY_PORT, SYNC_PORT, egressNode } from "../render/policy";
import type { BackupDef, HealthcheckDef } from "../render/siteModel";
import { SYNC_METRICS_PORT } from "../render/share";
import { SYNC_SHARE_SCRIPT, SYNC_SHARE_SCRIPT_PATH } from "../render/sync";
import { PEER_FORWARD_SCRIPT, PEER_FORWARD_SCRIPT_PATH, PEER_PORT } from "../render/traefik";
import type { ContainerDef, ImageRef, SecondaryDef, VolumeDef } from "./types";

export function image(repository: string, tag: string, digest?: string): ImageRef {
  return digest === undefined ? { repository, tag } : { repository, tag, digest };
}

/** For images that are one static binary: nothing inside can run a probe; Prometheus scrapes them instead. */
export const STATIC_BINARY = {
  none: "a single static binary: nothing inside can probe; Prometheus scrapes it",
} as const;

/** An HTTP health probe with the `wget` most images ship (busybox or Debian). */
export function httpHealth(url: string, startPeriod?: string): HealthcheckDef {
  return {
    test: ["CMD", "wget", "-q", "-O", "/dev/null", url],
    ...(startPeriod === undefined ? {} : { startPeriod }),
  };
}

/** A volume kept as files (a restic snapshot while the service runs). */
export const files = (path: string): VolumeDef => ({ path, backup: { method: "files" } });
/** A volume that is not kept, and why. */
export const notKept = (path: string, why: string): VolumeDef => ({ path, backup: { method: "none", why } });
/** A volume kept some other way (a database dump, an online SQLite copy, the application's export). */
export const kept = (path: string, backup: BackupDef): VolumeDef => ({ path, backup });

// Alpine's busybox wget serves the healthchecks; the scripts need Python's standard library only.
const PYTHON = image("docker.io/library/python", "3.13.1-alpine3.21");

/**
 * The Docker API proxy of one consumer (render/dockerApi.ts): the key `docker-api` of the consumer's service, on
 * a network it shares with the consumer alone (the consumer names it in `privateNetworks`), never on `metrics`.
 */
export function dockerApiProxy(consumer: DockerApiConsumer): ContainerDef {
  return {
    image: PYTHON,
    command: ["python3", DOCKER_API_SCRIPT_PATH, "--rules", DOCKER_API_RULES_PATH],
    files: {
      [DOCKER_API_SCRIPT_PATH]: DOCKER_API_PROXY_SCRIPT,
      [DOCKER_API_RULES_PATH]: renderDockerApiRules(consumer),
    },
    // Read-only does not stop API calls through a socket: the proxy's rules are what does.
    binds: [{ hostPath: "/var/run/docker.sock", path: "/var/run/docker.sock" }],
    healthcheck: httpHealth(`http://127.0.0.1:${DOCKER_API_PORT}/_ping`),
    memoryMb: 64,
    cpus: 0.25,
    privateNetworks: [DOCKER_API_NETWORK],
    serviceNetwork: false,
  };
}

/**
 * Traefik's way to a peer site's Traefik (`traefik-peer-<site>`, render/traefik.ts peerSites): a TCP forwarder on
 * Traefik's own network, through the egress node of Traefik's flow to the peer's `peer` port.
 */
export function peerForwarder(target: string): ContainerDef {
  return {
    image: PYTHON,
    command: [
      "python3",
      PEER_FORWARD_SCRIPT_PATH,
      String(PEER_PORT),
      `${egressNode("traefik")}:${MESH_PROXY_PORT}`,
      `${target}:${PEER_PORT}`,
    ],
    files: { [PEER_FORWARD_SCRIPT_PATH]: PEER_FORWARD_SCRIPT },
    healthcheck: {
      test: [
        "CMD",
        "python3",
        "-c",
        `import socket; socket.create_connection(("127.0.0.1", ${PEER_PORT}), 2)`,
      ],
    },
    memoryMb: 32,
    cpus: 0.1,
  };
}

/**
 * What a followed primary runs beside its service (`<service>-share`, render/share.ts): the catalog's
 * `secondary.files`, snapshotted and served to the secondaries' jobs on SYNC_PORT, which the site's node forwards
 * (to them alone: the policy's sync flows). It mounts the `main` volumes that hold those files, read-only, and serves
 * nothing else of them; on the site's `metrics` network (where the node reaches it) its containers can read them too.
 */
export function secondaryShare(
  def: SecondaryDef,
  containers: Readonly<Record<string, ContainerDef>>,
): ContainerDef {
  const files = Object.keys(def.files);
  const volumes = Object.entries(containers.main?.volumes ?? {});
  const holding = (file: string) => volumes.find(([, v]) => file.startsWith(`${v.path}/`));
  const outside = files.filter((f) => !holding(f));
  if (outside.length > 0)
    throw new Error(`secondary files outside every volume of \`main\`: ${outside.join(", ")}`);
  const used = [...new Set(files.map((f) => holding(f)![0]))];
  return {
    image: PYTHON,
    command: ["python3", SYNC_SHARE_SCRIPT_PATH, String(SYNC_PORT), String(SYNC_METRICS_PORT), ...files],
    files: { [SYNC_SHARE_SCRIPT_PATH]: SYNC_SHARE_SCRIPT },
    sharedVolumes: used.map((k) => ({
      container: "main",
      volume: k,
      path: containers.main!.volumes![k]!.path,
      readOnly: true,
    })),
    healthcheck: httpHealth(`http://127.0.0.1:${SYNC_METRICS_PORT}/healthz`),
    // Scraped like an exporter; its files' port is forwarded by the node to the secondaries alone.
    metrics: { port: SYNC_METRICS_PORT },
    memoryMb: 64,
    cpus: 0.1,
    networks: ["metrics"],
    serviceNetwork: false,
    dependsOn: ["main"],
  };
}
