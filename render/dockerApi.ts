import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Each consumer of the Docker API gets a proxy of its own (render/docker-api-proxy.py), on a network it shares
 * with that proxy alone, allowing exactly the calls its program makes (read from the programs' sources, noted
 * below), and answering inspect, list and info with their secrets removed (the script's FILTERS).
 */

/** The services that read the Docker API, each through its own proxy. */
export type DockerApiConsumer = "promtail" | "cadvisor" | "crowdsec";

/** The proxy's container key in the consumer's service: the container is `<service>-docker-api`. */
export const DOCKER_API_KEY = "docker-api";
/** The network the consumer and its proxy share, and nothing else (model: `<service>-docker-api`). */
export const DOCKER_API_NETWORK = "docker-api";
export const DOCKER_API_PORT = 2375;
export const DOCKER_API_SCRIPT_PATH = "/usr/local/lib/docker-api/proxy.py";
export const DOCKER_API_RULES_PATH = "/etc/docker-api/rules.json";
/** The container whose log CrowdSec reads (Traefik's access log, JSON on stdout). */
export const CROWDSEC_LOG_CONTAINER = "traefik";

/** The consumer's Docker host: its own proxy, by name on their private network. */
export const dockerApiHost = (consumer: DockerApiConsumer) =>
  `tcp://${consumer}-${DOCKER_API_KEY}:${DOCKER_API_PORT}`;

export interface DockerApiRule {
  readonly methods: readonly ("GET" | "HEAD")[];
  /** A regular expression for the path, without the query and the `/v1.NN` prefix. */
  readonly path: string;
  /** The script's whitelist for the JSON answer (FILTERS); none streams the answer through. */
  readonly filter?: "inspect" | "list" | "info";
}

const ID = "[A-Za-z0-9][A-Za-z0-9_.-]*";
const PING: DockerApiRule = { methods: ["GET", "HEAD"], path: "^/_ping$" };
const VERSION: DockerApiRule = { methods: ["GET"], path: "^/version$" };
const INFO: DockerApiRule = { methods: ["GET"], path: "^/info$", filter: "info" };
const LIST: DockerApiRule = { methods: ["GET"], path: "^/containers/json$", filter: "list" };
const INSPECT: DockerApiRule = { methods: ["GET"], path: `^/containers/${ID}/json$`, filter: "inspect" };
const LOGS: DockerApiRule = { methods: ["GET"], path: `^/containers/${ID}/logs$` };

/**
 * What each consumer calls. Every Docker Go client pings first (API version negotiation: HEAD, then GET
 * `/_ping`).
 * - promtail 3.3 (`clients/pkg/promtail/targets/docker`, Prometheus' `discovery/moby`): ContainerList,
 *   NetworkList, then per container ContainerInspect (for `Config.Tty`) and ContainerLogs (follow).
 * - cAdvisor 0.49 (`container/docker`): Info and ServerVersion at start, ContainerInspect per container
 *   (labels, name, creation, PID). ImageList serves only its web UI: refused.
 * - CrowdSec 1.6 (`pkg/acquisition/modules/docker`): Info at start, ContainerList, ContainerInspect (`Tty`,
 *   labels), ContainerLogs (follow).
 */
export const DOCKER_API_RULES: Readonly<Record<DockerApiConsumer, readonly DockerApiRule[]>> = {
  promtail: [PING, VERSION, LIST, { methods: ["GET"], path: "^/networks$" }, INSPECT, LOGS],
  cadvisor: [PING, VERSION, INFO, INSPECT],
  crowdsec: [PING, VERSION, INFO, LIST, INSPECT, LOGS],
};

/** The containers a consumer may see, where not every one: CrowdSec reads Traefik's access log alone. */
export const DOCKER_API_CONTAINERS: Readonly<Partial<Record<DockerApiConsumer, readonly string[]>>> = {
  crowdsec: [CROWDSEC_LOG_CONTAINER],
};

export function renderDockerApiRules(consumer: DockerApiConsumer): string {
  const containers = DOCKER_API_CONTAINERS[consumer];
  return `${JSON.stringify(
    { consumer, allow: DOCKER_API_RULES[consumer], ...(containers ? { containers } : {}) },
    null,
    2,
  )}\n`;
}

/** The proxy itself, uploaded into the official python image (it needs the standard library only). */
export const DOCKER_API_PROXY_SCRIPT = fs.readFileSync(path.join(__dirname, "docker-api-proxy.py"), "utf8");
