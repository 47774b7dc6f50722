import YAML from "yaml";
import { SITE_KEY } from "../config/schema";

/**
 * A stack file's text with `mesh.sealPublicKey` set: only that value changes; comments, order and what Pulumi wrote
 * (salt, secure values) are kept.
 */
export function withSealPublicKey(text: string, publicKey: string): string {
  const doc = YAML.parseDocument(text);
  if (!doc.hasIn(["config", SITE_KEY])) throw new Error(`expected a \`config.${SITE_KEY}\` object`);
  doc.setIn(["config", SITE_KEY, "mesh", "sealPublicKey"], publicKey);
  return doc.toString();
}

/** Where a site's host moves to: a new server's address, and its SSH port and host key. */
export interface NewHost {
  readonly address: string;
  readonly port?: number;
  readonly hostKey?: string;
  /** The WireGuard endpoint peers reach it at, when not its address. */
  readonly endpoint?: string;
}

/**
 * A stack file's text with its existing host moved to another server: `host.address`, and the port and host key
 * given; a WireGuard endpoint set to the old address follows the address (else `endpoint` when given). Only those
 * values change.
 */
export function withHost(text: string, to: NewHost): string {
  const doc = YAML.parseDocument(text);
  const site = ["config", SITE_KEY];
  if (doc.getIn([...site, "host", "kind"]) !== "existing")
    throw new Error(`expected \`config.${SITE_KEY}.host\` with \`kind: existing\``);
  const old = doc.getIn([...site, "host", "address"]);
  doc.setIn([...site, "host", "address"], to.address);
  if (to.port !== undefined) doc.setIn([...site, "host", "port"], to.port);
  if (to.hostKey !== undefined) doc.setIn([...site, "host", "hostKey"], to.hostKey);
  const endpoint = [...site, "mesh", "wireguard", "endpoint"];
  if (to.endpoint !== undefined) doc.setIn(endpoint, to.endpoint);
  else if (doc.getIn(endpoint) === old) doc.setIn(endpoint, to.address);
  return doc.toString();
}

/** One resource limit of a container in a stack file's overrides; `value` undefined: the override goes. */
export interface ResourceSetting {
  readonly service: string;
  /** The container's catalog key: `main` is set on the service itself. */
  readonly key: string;
  readonly field: "memory" | "cpus";
  /** `512m` / `2g` for memory, a number for CPUs; undefined: the catalog's default applies again. */
  readonly value?: string | number;
}

/** Where a container's overrides are: `services.<svc>` for its main one, `services.<svc>.containers.<key>` else. */
const overridePath = (service: string, key: string) => [
  "config",
  SITE_KEY,
  "services",
  service,
  ...(key === "main" ? [] : ["containers", key]),
];

/**
 * A stack file's text with these resource limits set or removed: only they change, comments and layout kept. A
 * service set to `true` (or absent: the role's) becomes a map to hold them; maps emptied by a removal go, a service
 * left with no override at all becomes `true` again (still on the site, whatever its role).
 */
export function withResources(text: string, settings: readonly ResourceSetting[]): string {
  const doc = YAML.parseDocument(text);
  if (!doc.hasIn(["config", SITE_KEY])) throw new Error(`expected a \`config.${SITE_KEY}\` object`);
  for (const s of settings) {
    const service = overridePath(s.service, "main");
    const at = [...overridePath(s.service, s.key), "resources", s.field];
    if (s.value !== undefined) {
      if (!YAML.isMap(doc.getIn(service))) doc.setIn(service, doc.createNode({}));
      doc.setIn(at, s.value);
      continue;
    }
    doc.deleteIn(at);
    // Emptied maps go, innermost first: `resources`, `containers.<key>`, `containers`.
    for (let n = at.length - 1; n > service.length; n--) {
      const node = doc.getIn(at.slice(0, n));
      if (YAML.isMap(node) && node.items.length === 0) doc.deleteIn(at.slice(0, n));
    }
    const left = doc.getIn(service);
    if (YAML.isMap(left) && left.items.length === 0) doc.setIn(service, true);
  }
  // No reflowing of long lines: the files are committed as they are written.
  return doc.toString({ lineWidth: 0 });
}

/** A stack file's text without any `resources` override: the model of it has the catalog's limits. */
export function withoutResources(text: string): string {
  const doc = YAML.parseDocument(text);
  const services = doc.getIn(["config", SITE_KEY, "services"]);
  if (!YAML.isMap(services)) return text;
  for (const item of services.items) {
    if (!YAML.isMap(item.value)) continue;
    item.value.delete("resources");
    const containers = item.value.get("containers");
    if (YAML.isMap(containers))
      for (const c of containers.items) if (YAML.isMap(c.value)) c.value.delete("resources");
  }
  return doc.toString({ lineWidth: 0 });
}
