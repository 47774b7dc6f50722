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
