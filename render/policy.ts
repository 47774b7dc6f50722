import { DNS_PORT, resolverAddress, tailnetResolvers } from "./dns";
import type { Estate, EstateSite } from "./estate";
import { PEER_PORT, peerSites } from "./traefik";

/**
 * The tailnet policy (Headscale's ACL file, Tailscale's syntax), rendered from the estate: default deny, one tag
 * per site and per role, and only the flows the model implies or the control plane's stack file declares.
 */

export const siteTag = (site: string) => `tag:site-${site}`;
export const roleTag = (role: string) => `tag:role-${role}`;
export const extraTag = (tag: string) => `tag:${tag}`;
export const ADMINS = "group:admins";

/** The tags a site's node advertises (and its pre-auth key forces). */
export function nodeTags(site: Pick<EstateSite, "name" | "role" | "mesh">): string[] {
  return [siteTag(site.name), roleTag(site.role), ...site.mesh.tags.map(extraTag)];
}

/**
 * A flow's consumer: the one service on the source site that may use it (the host's backup job is `backup`). It
 * reaches the tailnet through an egress node of its own, whose key carries one tag, its identity: a flow granted
 * to that tag opens nothing to the rest of the site.
 */
export interface Consumer {
  readonly site: string;
  readonly service: string;
}

/** The host's backup job, as a flow's consumer (it is no service of the catalog). */
export const BACKUP_CONSUMER = "backup";
/** The tag of a consumer's egress node, and nothing else: not the site's tag, whose flows it must not inherit. */
export const identityTag = (c: Consumer) => `tag:${c.site}-${c.service}`;
/** Where a consumer's egress node proxies out (HTTP, CONNECT for other TCP), on its own network. */
export const MESH_PROXY_PORT = 1055;
/** A consumer's egress node: a container of the `tailscale` service. */
export const egressNode = (service: string) => `tailscale-egress-${service}`;
/** The network a consumer shares with its egress node, and only with it (and the site's node: its metrics). */
export const egressNetwork = (service: string): `egress-${string}` => `egress-${service}`;
/** The proxy a consumer sets to reach other sites by MagicDNS name. */
export const egressProxy = (service: string) => `http://${egressNode(service)}:${MESH_PROXY_PORT}`;

/** A flow the policy admits: from a tag or group to a site's ports. */
export interface Flow {
  readonly from: string;
  /** Who on the source site may use it; none for the admins (people, not a service). */
  readonly consumer?: Consumer;
  readonly to: string;
  readonly ports: readonly number[];
  readonly why: string;
}

/** Headscale's policy file. */
export interface Policy {
  readonly groups: Readonly<Record<string, readonly string[]>>;
  readonly tagOwners: Readonly<Record<string, readonly string[]>>;
  readonly acls: readonly { readonly action: "accept"; readonly src: string[]; readonly dst: string[] }[];
  readonly autoApprovers: { readonly routes: Readonly<Record<string, readonly string[]>> };
}

/** The port the control plane's Loki takes logs on (through its tailnet node). */
export const LOKI_PORT = 3100;
/** Where a site's backup repository (restic's REST server) listens: its node forwards it like a metrics port. */
export const REPOSITORY_PORT = 8000;
/** Where a primary offers its secondaries its state (render/sync.ts): its node forwards it like a metrics port. */
export const SYNC_PORT = 8053;
/** The host's SSH, and Traefik's routes, as each site's node offers them to the tailnet (render/headscale.ts). */
export const SSH_PORT = 22;
export const HTTPS_PORT = 443;
/** What admins reach on every site: SSH and the private (admin) routes through Traefik. */
export const ADMIN_PORTS = [SSH_PORT, HTTPS_PORT] as const;

const endTags = (end: string): string[] => {
  if (end === "admins") return [ADMINS];
  if (end.startsWith("role:")) return [roleTag(end.slice(5))];
  if (end.startsWith("site:")) return [siteTag(end.slice(5))];
  throw new Error(`unknown flow end \`${end}\``);
};

/** The sites of a control plane's tailnet a declared flow's `from` names (a site, or every site of a role). */
export function flowSources(estate: Estate, controlPlane: string, from: string): EstateSite[] {
  const members = estate.sites.filter((s) => s.controlPlane === controlPlane);
  if (from.startsWith("site:")) return members.filter((s) => s.name === from.slice(5));
  if (from.startsWith("role:")) return members.filter((s) => s.role === from.slice(5));
  return [];
}

/** Every flow the estate admits, each with why and who may use it: the policy is exactly these. */
export function estateFlows(estate: Estate): Flow[] {
  const flows: Flow[] = [];
  const byName = new Map(estate.sites.map((s) => [s.name, s]));
  const from = (site: string, service: string) => {
    const consumer = { site, service };
    return { from: identityTag(consumer), consumer };
  };
  for (const s of estate.sites) {
    const cp = byName.get(s.controlPlane);
    if (!cp) continue;
    if (cp.services.includes("prometheus")) {
      // Every exporter of another site; on the control plane itself, the egress nodes (on no network Prometheus
      // shares: scraped through the site's node, like another site's).
      const ports =
        s.name === cp.name
          ? s.metrics.filter((m) => m.throughNode).map((m) => m.port)
          : s.metrics.map((m) => m.port);
      if (ports.length > 0) {
        flows.push({
          ...from(cp.name, "prometheus"),
          to: siteTag(s.name),
          ports,
          why: `monitoring: ${cp.name}'s Prometheus scrapes ${s.name}'s ${s.name === cp.name ? "egress nodes" : "exporters"}`,
        });
      }
    }
    const keeper = s.backupTarget === undefined ? undefined : byName.get(s.backupTarget);
    if (keeper?.services.includes("backup-repository")) {
      flows.push({
        ...from(s.name, BACKUP_CONSUMER),
        to: siteTag(keeper.name),
        ports: [REPOSITORY_PORT],
        why: `backups: ${s.name}'s restic to its repository on ${keeper.name} (append-only)`,
      });
    }
    for (const f of s.follows) {
      if (!f.pulls || !byName.get(f.primary)?.services.includes(f.service)) continue;
      flows.push({
        ...from(s.name, f.service),
        to: siteTag(f.primary),
        ports: [SYNC_PORT],
        why: `sync: ${s.name}'s ${f.service} pulls its primary's state from ${f.primary}`,
      });
    }
    if (s.services.includes("tailscale")) {
      for (const peer of peerSites(s.routes)) {
        if (!byName.get(peer)) continue;
        flows.push({
          ...from(s.name, "traefik"),
          to: siteTag(peer),
          ports: [PEER_PORT],
          why: `failover: ${s.name}'s Traefik falls back to ${peer}'s for the routes both serve`,
        });
      }
    }
    if (s.name !== cp.name && s.services.includes("promtail") && cp.services.includes("loki")) {
      flows.push({
        ...from(s.name, "promtail"),
        to: siteTag(cp.name),
        ports: [LOKI_PORT],
        why: `logs: ${s.name}'s shipper pushes to ${cp.name}'s Loki (through its Traefik: the push path, its own password)`,
      });
    }
  }
  for (const cp of estate.sites.filter((s) => s.role === "control-plane")) {
    if (cp.mesh.admins.length > 0) {
      for (const s of estate.sites.filter((x) => x.controlPlane === cp.name)) {
        flows.push({
          from: ADMINS,
          to: siteTag(s.name),
          ports: [...ADMIN_PORTS],
          why: `admins: SSH and admin UIs on ${s.name}`,
        });
      }
      for (const r of tailnetResolvers(estate, cp.name)) {
        flows.push({
          from: ADMINS,
          to: `${r.address}/32`,
          ports: [DNS_PORT],
          why: `DNS: admins' devices resolve through ${r.site}'s Pi-hole (its node routes ${r.address})`,
        });
      }
    }
    for (const f of cp.mesh.flows) {
      // The stack file's flows: from the named service of each source site, or from the admins.
      const sources =
        f.from === "admins" || f.service === undefined
          ? [{ from: ADMINS }]
          : flowSources(estate, cp.name, f.from).map((s) => from(s.name, f.service!));
      for (const src of sources) {
        for (const to of endTags(f.to)) flows.push({ ...src, to, ports: f.ports, why: f.why });
      }
    }
  }
  return flows;
}

/** The services on a site that consume a flow (each gets an egress node of its own), sorted. */
export function egressConsumers(estate: Estate, site: string): string[] {
  return [
    ...new Set(
      estateFlows(estate)
        .filter((f) => f.consumer?.site === site)
        .map((f) => f.consumer!.service),
    ),
  ].sort();
}

/** The policy of the tailnet a control plane runs: its sites only. */
export function renderPolicy(estate: Estate, controlPlane: string): Policy {
  return policyWithReasons(estate, controlPlane).policy;
}

/** The policy, and why each of its rules exists (in the rules' order). */
function policyWithReasons(estate: Estate, controlPlane: string): { policy: Policy; reasons: string[] } {
  const sites = estate.sites.filter((s) => s.controlPlane === controlPlane);
  const admins = estate.sites.find((s) => s.name === controlPlane)?.mesh.admins ?? [];
  const local: Estate = { sites };
  // Only the admins may apply these tags by hand; sites get theirs from their pre-auth keys.
  const owners = admins.length > 0 ? [ADMINS] : [];
  const flows = estateFlows(local);
  const identities = flows.flatMap((f) => (f.consumer ? [identityTag(f.consumer)] : []));
  const tags = [...new Set([...sites.flatMap(nodeTags), ...identities])].sort();
  const routes: Record<string, string[]> = {};
  for (const s of sites) {
    const resolver = resolverAddress(s);
    for (const r of [...s.mesh.routes, ...(resolver ? [`${resolver}/32`] : [])])
      routes[r] = [...(routes[r] ?? []), siteTag(s.name)];
  }
  const policy: Policy = {
    groups: { [ADMINS]: admins.map((a) => (a.includes("@") ? a : `${a}@`)) },
    tagOwners: Object.fromEntries(tags.map((t) => [t, owners])),
    acls: flows.map((f) => ({
      action: "accept",
      src: [f.from],
      dst: [`${f.to}:${[...f.ports].sort((a, b) => a - b).join(",")}`],
    })),
    autoApprovers: { routes },
  };
  return { policy, reasons: flows.map((f) => f.why) };
}

/** The policy file: HuJSON (JSON with comments), each rule preceded by why it exists, for review in PRs. */
export function renderPolicyFile(estate: Estate, controlPlane: string): string {
  const { policy, reasons } = policyWithReasons(estate, controlPlane);
  const json = (v: unknown) => JSON.stringify(v, null, 2).replace(/\n/g, "\n  ");
  const acls = policy.acls.map((rule, i) => `    // ${reasons[i]}\n    ${JSON.stringify(rule)}`);
  return [
    "// Generated by qui3tly-cloud from the estate's stack files: do not edit. Default deny: only these flows.",
    "{",
    `  "groups": ${json(policy.groups)},`,
    `  "tagOwners": ${json(policy.tagOwners)},`,
    `  "acls": [\n${acls.join(",\n")}\n  ],`,
    `  "autoApprovers": ${json(policy.autoApprovers)}`,
    "}",
    "",
  ].join("\n");
}

/**
 * Does the policy let `src` (a node's tags, or a user's groups) reach `dst`'s `port`? Tailscale's semantics for
 * what this policy uses: accept rules only, tag and group sources, `tag:x:p1,p2` destinations.
 */
export function policyAllows(
  policy: Policy,
  src: readonly string[],
  dstTags: readonly string[],
  port: number,
): boolean {
  return policy.acls.some(
    (rule) =>
      rule.src.some((s) => src.includes(s)) &&
      rule.dst.some((d) => {
        const i = d.lastIndexOf(":");
        const target = d.slice(0, i);
        const ports = d.slice(i + 1);
        return dstTags.includes(target) && (ports === "*" || ports.split(",").map(Number).includes(port));
      }),
  );
}
