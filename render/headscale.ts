import { tailnetResolvers } from "./dns";
import type { Estate, EstateSite } from "./estate";
import { SHARE_KEY, followedServices } from "./share";
import { logShippers } from "./monitoring";
import {
  HTTPS_PORT,
  LOKI_PORT,
  SSH_PORT,
  SYNC_PORT,
  egressConsumers,
  egressNode,
  identityTag,
  nodeTags,
  renderPolicyFile,
} from "./policy";
import type { CatalogContext } from "./siteModel";
import {
  LOGS_ENTRYPOINT_PORT,
  PEER_PORT,
  TAILNET_ENTRYPOINT_PORT,
  TAILNET_RANGES,
  ingressAddresses,
  peerSites,
} from "./traefik";
import { toYaml } from "./yaml";

/**
 * A tailnet's MagicDNS base domain (Headscale's `base_domain`): every site of it is `<site>.<this>`. It is its
 * control plane's domain, whatever a site's own (a site's `domain` names its routes, not the tailnet): the one place
 * that decides it. A site's own only while its control plane is not known (a site loaded alone).
 */
export function tailnetDomain(estate: Estate, site: Pick<EstateSite, "controlPlane" | "domain">): string {
  const cp = estate.sites.find((s) => s.name === site.controlPlane);
  return `mesh.${cp?.domain ?? site.domain}`;
}

/** Where Headscale's policy file is mounted. */
export const POLICY_PATH = "/etc/headscale/policy.hujson";

/**
 * The URL nodes log in to: the control plane's `mesh.loginServer`, else its Headscale route through Traefik.
 * Without the estate (a site loaded alone), Headscale's default host on this site's domain.
 */
export function loginServer(estate: Estate, controlPlane: string, domain: string): string {
  const cp = estate.sites.find((s) => s.name === controlPlane);
  if (cp?.mesh.loginServer) return cp.mesh.loginServer.replace(/\/$/, "");
  const api = cp?.routes.find((r) => r.service === "headscale" && r.name === "api");
  return `https://${api?.host ?? `headscale.${cp?.domain ?? domain}`}`;
}

/** Where a tailnet without a Pi-hole resolves. */
const PUBLIC_RESOLVERS = ["1.1.1.1", "9.9.9.9"];
const resolversOrPublic = (estate: Estate, controlPlane: string): string[] => {
  const own = tailnetResolvers(estate, controlPlane).map((r) => r.address);
  return own.length > 0 ? own : PUBLIC_RESOLVERS;
};

/** Headscale's config: the embedded DERP relay and MagicDNS, no dependence on Tailscale's servers. */
export function renderHeadscaleConfig(
  ctx: Pick<CatalogContext, "domain" | "estate" | "site" | "mesh" | "hosts" | "controlPlane">,
): string {
  return toYaml({
    server_url: ctx.mesh.loginServer?.replace(/\/$/, "") ?? `https://${ctx.hosts.api}`,
    listen_addr: "0.0.0.0:8080",
    metrics_listen_addr: "0.0.0.0:9091",
    grpc_listen_addr: "127.0.0.1:50443",
    grpc_allow_insecure: false,
    noise: { private_key_path: "/var/lib/headscale/noise_private.key" },
    prefixes: { v4: TAILNET_RANGES[0], v6: TAILNET_RANGES[1], allocation: "sequential" },
    derp: {
      server: {
        enabled: true,
        region_id: 999,
        region_code: "qcloud",
        region_name: "qui3tly.cloud embedded DERP",
        stun_listen_addr: "0.0.0.0:3478",
        private_key_path: "/var/lib/headscale/derp_server_private.key",
        automatically_add_embedded_derp_region: true,
      },
      urls: [],
      paths: [],
      auto_update_enabled: false,
    },
    disable_check_updates: true,
    node: { ephemeral: { inactivity_timeout: "30m" } },
    database: { type: "sqlite", sqlite: { path: "/var/lib/headscale/db.sqlite", write_ahead_log: true } },
    log: { level: "info", format: "text" },
    dns: {
      magic_dns: true,
      base_domain: tailnetDomain(ctx.estate, { controlPlane: ctx.controlPlane, domain: ctx.domain }),
      // The estate's Pi-holes, each at its site's resolver address (render/dns.ts); public resolvers only where
      // the tailnet has none. Never both: a client asks every one, and a public answer would skip the blocking.
      nameservers: { global: resolversOrPublic(ctx.estate, ctx.controlPlane) },
    },
    // /var/run/headscale does not exist in the image; the data volume does.
    unix_socket: "/var/lib/headscale/headscale.sock",
    unix_socket_permission: "0770",
    // Default deny: only the flows of render/policy.ts.
    policy: { mode: "file", path: POLICY_PATH },
  });
}

/** Headscale's policy: see render/policy.ts. */
export function renderHeadscalePolicy(ctx: Pick<CatalogContext, "estate" | "site">): string {
  return renderPolicyFile(ctx.estate, ctx.site);
}

/**
 * The node's serve config: what the site offers the tailnet, each port forwarded from the node:
 * - the site's exporters to their containers;
 * - on the control plane, Loki's port to Traefik's logs entrypoint (the push path only, each site with its own
 *   password), never to Loki itself, which serves queries on the same port;
 * - 22 to the host's SSH server (at the `ingress` network's gateway, the host);
 * - 443 to Traefik's tailnet entrypoint, with a PROXY header carrying the client's tailnet address, which
 *   `private` routes admit.
 * The policy decides who may connect to which; nothing here is published on the host.
 */
export function renderServeConfig(
  ctx: Pick<CatalogContext, "estate" | "site" | "siteServices" | "mesh" | "sshdPort">,
): string {
  const me = ctx.estate.sites.find((s) => s.name === ctx.site);
  const forwards: [number, { TCPForward: string; ProxyProtocol?: 2 }][] = (me?.metrics ?? [])
    // The node serves its own metrics on the tailnet; everything else, the egress node's too, is forwarded.
    // Loki's own port is Traefik's (below): the control plane scrapes Loki by name, not through the node.
    .filter((m) => m.container !== "tailscale" && !(m.container === "loki" && m.port === LOKI_PORT))
    .map((m) => [m.port, { TCPForward: `${m.container}:${m.port}` }]);
  if (ctx.siteServices.includes("traefik") && logShippers(ctx.estate, ctx.site).length > 0)
    forwards.push([LOKI_PORT, { TCPForward: `traefik:${LOGS_ENTRYPOINT_PORT}` }]);
  // A followed primary's share (render/sync.ts), which the policy gives its secondaries alone: one port, for the one
  // service the catalog lets follow (test/secondary.test.ts); a second would need a port of its own.
  const followed = followedServices(ctx.estate, ctx.site);
  if (followed.length > 1)
    throw new Error(`${ctx.site} is followed for ${followed.join(", ")}: one sync port serves one service`);
  for (const service of followed)
    forwards.push([SYNC_PORT, { TCPForward: `${service}-${SHARE_KEY}:${SYNC_PORT}` }]);
  const ingress = ingressAddresses(ctx.mesh.ingressSubnet);
  forwards.push([SSH_PORT, { TCPForward: `${ingress.gateway}:${ctx.sshdPort}` }]);
  // By address, not by name: Traefik is on `metrics` too, where it would not believe the node.
  if (ctx.siteServices.includes("traefik")) {
    forwards.push([
      HTTPS_PORT,
      { TCPForward: `${ingress.traefik}:${TAILNET_ENTRYPOINT_PORT}`, ProxyProtocol: 2 },
    ]);
    // Its peers' fallback requests for the routes they share with it, to Traefik's `peer` entrypoint.
    if (peerSites(me?.routes ?? []).length > 0)
      forwards.push([PEER_PORT, { TCPForward: `${ingress.traefik}:${PEER_PORT}`, ProxyProtocol: 2 }]);
  }
  forwards.sort((a, b) => a[0] - b[0]);
  return `${JSON.stringify({ TCP: Object.fromEntries(forwards.map(([port, h]) => [String(port), h])) }, null, 2)}\n`;
}

/**
 * How long a node's pre-auth key lasts: a year. A node needs it only to join, and again to rejoin after losing its
 * state volume (a restore without it, a new server): within the year that works from the stacks alone. Rotate it
 * before then (README: `pulumi up --replace` of the key); the old key is expired as the new one replaces it.
 */
export const PRE_AUTH_KEY_EXPIRY = "8760h";

/** Runs the headscale CLI in its container, once it answers (90 s at most). */
const HEADSCALE_CLI = [
  "set -eu",
  'hs() { docker exec headscale headscale "$@"; }',
  "i=0",
  "until hs health >/dev/null 2>&1; do",
  '  i=$((i + 1)); [ "$i" -lt 90 ] || { echo "headscale does not answer after 90 s" >&2; exit 1; }; sleep 1',
  "done",
];

/** A node of a site and the tags its pre-auth key forces: its identity on the tailnet. */
export interface MeshIdentity {
  /** The node's container: `tailscale`, or `tailscale-egress-<service>`. */
  readonly node: string;
  readonly tags: readonly string[];
}

/**
 * A site's nodes: its own (the site's tags) and one egress node per flow consumer, whose one tag is the consumer's
 * identity: not the site's tag, so it inherits none of the site's other flows.
 */
export function meshIdentities(
  estate: Estate,
  site: Pick<EstateSite, "name" | "role" | "mesh">,
): MeshIdentity[] {
  return [
    { node: "tailscale", tags: nodeTags(site) },
    ...egressConsumers(estate, site.name).map((service) => ({
      node: egressNode(service),
      tags: [identityTag({ site: site.name, service })],
    })),
  ];
}

/**
 * Where the control-plane host records the id of each key command's key, for its delete: the command provider
 * hands the delete the create's output only as an SSH environment variable, which sshd refuses unless AcceptEnv
 * lists it (Debian's accepts LANG and LC_* alone), so the delete cannot count on it.
 */
export const PRE_AUTH_KEY_IDS = "/var/lib/qcloud/preauthkeys";

/** The name of a key command's id file: its site and node. */
const keyIdFile = (site: string, identity: MeshIdentity) => `${PRE_AUTH_KEY_IDS}/${site}-${identity.node}.id`;

/**
 * The script (run on the control-plane host) that makes a node's reusable pre-auth key, tagged with its identity's
 * tags: the node it joins is owned by those tags, not by a user. It prints the key as JSON, and records its `id`
 * (not secret) for the delete.
 */
export function renderPreAuthKeyScript(site: string, identity: MeshIdentity): string {
  const tags = identity.tags.join(",");
  return [
    ...HEADSCALE_CLI,
    `out=$(hs preauthkeys create --reusable --expiration ${PRE_AUTH_KEY_EXPIRY} --tags ${tags} -o json)`,
    `id=$(printf '%s\\n' "$out" | sed -n 's/^[[:space:]]*"id":[[:space:]]*"\\{0,1\\}\\([0-9][0-9]*\\).*/\\1/p' | head -n 1)`,
    '[ -n "$id" ] || { echo "headscale printed no pre-auth key id" >&2; exit 1; }',
    `mkdir -p ${PRE_AUTH_KEY_IDS}`,
    `printf '%s\\n' "$id" > ${keyIdFile(site, identity)}`,
    `printf '%s\\n' "$out"`,
    "",
  ].join("\n");
}

/**
 * The key command's delete: expires the key its create made (by the id the create recorded; the command is
 * replaced delete-first, so the file holds the old key's id), so a replaced key or a removed site's key logs
 * nothing in any more. Nodes that joined with it keep their own node keys. Expiring an expired id succeeds; with
 * no id recorded (a key made before ids were, or a rebuilt control plane) it says what to do and goes on, so a
 * destroy is not blocked by a key it cannot name.
 */
export function renderPreAuthKeyExpireScript(site: string, identity: MeshIdentity): string {
  const file = keyIdFile(site, identity);
  return [
    ...HEADSCALE_CLI,
    `if [ ! -s ${file} ]; then`,
    `  echo "no pre-auth key id recorded in ${file}: expire ${site}'s ${identity.node} key by hand (headscale preauthkeys list; headscale preauthkeys expire --id N)" >&2`,
    "  exit 0",
    "fi",
    `hs preauthkeys expire --id "$(cat ${file})"`,
    `rm -f ${file}`,
    "",
  ].join("\n");
}

/** The key in `headscale preauthkeys create -o json`'s output. */
export function parsePreAuthKey(stdout: string): string {
  const key = (JSON.parse(stdout) as { key?: unknown }).key;
  if (typeof key !== "string" || key.length === 0) throw new Error("headscale printed no pre-auth key");
  return key;
}

/** Prints the site node's tailnet IPv4 address once it has joined (two minutes at most). */
export function renderTailnetAddressScript(): string {
  return [
    "set -eu",
    "i=0",
    'until ip=$(docker exec tailscale tailscale ip -4 2>/dev/null) && [ -n "$ip" ]; do',
    '  i=$((i + 1)); [ "$i" -lt 120 ] || { echo "the tailscale node has no tailnet address after 120 s" >&2; exit 1; }; sleep 1',
    "done",
    'echo "$ip"',
    "",
  ].join("\n");
}
