import type { Role } from "../config/schema";
import { backupRepository } from "./backup";
import { cadvisor, nodeExporter, portainerAgent, promtail, traefik } from "./agents";
import {
  alertmanager,
  blackbox,
  crowdsec,
  grafana,
  headscale,
  homepage,
  loki,
  ntfy,
  pihole,
  portainer,
  prometheus,
  uptimeKuma,
} from "./controlPlane";
import { tailscale, wireguard } from "./mesh";
import { nextcloud } from "./nextcloud";
import type { ServiceDef } from "./types";
import { uisp } from "./uisp";
import { unifi } from "./unifi";

export * from "./types";

/** Every service the estate knows, by the name a stack file uses. */
export const CATALOG = {
  traefik,
  "node-exporter": nodeExporter,
  cadvisor,
  promtail,
  "portainer-agent": portainerAgent,
  tailscale,
  wireguard,
  headscale,
  pihole,
  portainer,
  prometheus,
  alertmanager,
  grafana,
  loki,
  blackbox,
  ntfy,
  "uptime-kuma": uptimeKuma,
  crowdsec,
  homepage,
  nextcloud,
  unifi,
  uisp,
  "backup-repository": backupRepository,
} satisfies Record<string, ServiceDef>;

export type ServiceName = keyof typeof CATALOG;
export const SERVICE_NAMES = Object.keys(CATALOG) as ServiceName[];

export function isServiceName(name: string): name is ServiceName {
  return Object.prototype.hasOwnProperty.call(CATALOG, name);
}

const AGENTS: readonly ServiceName[] = ["traefik", "node-exporter", "cadvisor", "promtail", "tailscale"];

/** What a role runs before the stack file adds or removes anything. */
export const ROLE_SERVICES: Readonly<Record<Role, readonly ServiceName[]>> = {
  "control-plane": [
    ...AGENTS,
    "headscale",
    "pihole",
    "portainer",
    "prometheus",
    "alertmanager",
    "grafana",
    "loki",
    "blackbox",
    "ntfy",
    "uptime-kuma",
    "crowdsec",
    "homepage",
  ],
  // The control plane's Portainer manages these sites through the agent.
  services: [...AGENTS, "portainer-agent"],
};
