import {
  DOCKER_API_NETWORK,
  DOCKER_API_PORT,
  DOCKER_API_PROXY_SCRIPT,
  DOCKER_API_RULES_PATH,
  DOCKER_API_SCRIPT_PATH,
  renderDockerApiRules,
  type DockerApiConsumer,
} from "../render/dockerApi";
import type { BackupDef, HealthcheckDef } from "../render/siteModel";
import type { ContainerDef, ImageRef, VolumeDef } from "./types";

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

/**
 * The Docker API proxy of one consumer (render/dockerApi.ts): the key `docker-api` of the consumer's service, on
 * a network it shares with the consumer alone (the consumer names it in `privateNetworks`), never on `metrics`.
 */
export function dockerApiProxy(consumer: DockerApiConsumer): ContainerDef {
  return {
    // Alpine's busybox wget serves the healthcheck; the script needs Python's standard library only.
    image: image("docker.io/library/python", "3.13.1-alpine3.21"),
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
