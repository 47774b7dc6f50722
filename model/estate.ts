import * as fs from "node:fs";
import { BlockList, isIPv4 } from "node:net";
import * as path from "node:path";
import type { ServiceName } from "../catalog";
import { ConfigError, joinPath, type ConfigIssue } from "../config/errors";
import { SITE_KEY } from "../config/schema";
import { fileSource, type ConfigSource } from "../config/source";
import type { Estate, EstateSite, Route } from "../render/estate";
import { resolverAddress, secondaryResolver } from "../render/dns";
import { flowSources } from "../render/policy";
import { TAILNET_RANGES } from "../render/traefik";
import { wireguardEndpoint } from "../render/wireguard";
import type { SiteModel } from "../render/siteModel";
import { backupTarget, estateSite, hostedRepositories, meshHost } from "./estateSite";
import { TAILNET_SERVICES, loadSite } from "./site";

/**
 * The estate: every site of the project, as the control plane needs to know it (what to scrape, probe and admit
 * to the tailnet). Read from the stack files next to the program, so adding `Pulumi.<site>.yaml` is all it
 * takes; the control plane derives the rest from names (MagicDNS), never from the other stacks' state.
 */

export const EMPTY_ESTATE: Estate = { sites: [] };

/**
 * Loads every site, then checks what only the whole estate can show. Throws ConfigError naming every problem. Not
 * the capacity of each site: that is checked where a site is loaded within the estate (check, `pulumi up`, cost).
 */
export function loadEstate(sources: readonly ConfigSource[]): Estate {
  const issues: ConfigIssue[] = [];
  const sites: EstateSite[] = [];
  for (const source of sources) {
    try {
      sites.push(estateSite(loadSite(source, EMPTY_ESTATE, { capacity: false })));
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      issues.push(...e.issues);
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  const alone = named(sites);
  const problems = checkEstate(alone);
  if (problems.length > 0) throw new ConfigError(problems);
  // What a site runs can depend on the others (the repositories it keeps for them): load each again within the
  // estate. The placement depends on stack files only, so a second pass settles it; the egress nodes follow the
  // flows, which follow the placement (a repository's site), so a third settles them.
  const within = (estate: Estate): Estate =>
    named(sources.map((s) => estateSite(loadSite(s, estate, { capacity: false }))));
  return within(within(alone));
}

/**
 * These sites as an estate, sorted by name, each named on its control plane's tailnet: a site loaded alone does not
 * know its control plane's domain; the estate does.
 */
function named(sites: readonly EstateSite[]): Estate {
  const estate = { sites: [...sites].sort((a, b) => a.name.localeCompare(b.name)) };
  return { sites: estate.sites.map((s) => ({ ...s, meshHost: meshHost(estate, s, s.name) })) };
}

/** The stack files in a directory (the project's). */
export function stackFilesIn(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /^Pulumi\.[^.]+\.ya?ml$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

/**
 * The stack files that `files` are checked within: every stack file of their directory, and each named file that
 * is not among them (a new site's file being written, whatever its name), as absolute paths. A directory is one
 * estate: files from two directories are refused, naming both.
 */
export function estateFilesFor(files: readonly string[]): string[] {
  const named = [...new Set(files.map((f) => path.resolve(f)))];
  const dirs = [...new Set(named.map((f) => path.dirname(f)))];
  if (dirs.length > 1) {
    const [a, b] = dirs.map((d) => named.find((f) => path.dirname(f) === d)!);
    throw new ConfigError([
      {
        file: path.basename(b!),
        path: "(file)",
        message: `expected the stack files of one estate, in one directory: this one is in ${path.dirname(b!)}, ${path.basename(a!)} in ${path.dirname(a!)}; check one directory at a time`,
      },
    ]);
  }
  const inDir = dirs.length === 1 ? stackFilesIn(dirs[0]!) : [];
  return [...inDir, ...named.filter((f) => !inDir.includes(f))];
}

/** The estate of the stack files in a directory (the project's). */
export function projectEstate(dir: string): Estate {
  return loadEstate(stackFilesIn(dir).map(fileSource));
}

/** One site of a project directory, resolved against its whole estate. */
export function loadProjectSite(dir: string, stack: string, source?: ConfigSource): SiteModel {
  const estate = projectEstate(dir);
  siteOf(estate, stack);
  return loadSite(source ?? fileSource(path.join(dir, `Pulumi.${stack}.yaml`)), estate);
}

/** The site of this name, or a clear error naming the file that should hold it. */
export function siteOf(estate: Estate, name: string): EstateSite {
  const s = estate.sites.find((x) => x.name === name);
  if (!s) {
    throw new ConfigError([
      {
        file: `Pulumi.${name}.yaml`,
        path: "(file)",
        message: `expected the stack file of site \`${name}\` next to the others (known: ${estate.sites.map((x) => x.name).join(", ") || "none"})`,
      },
    ]);
  }
  return s;
}

const MESH = (...rest: PropertyKey[]) => joinPath([SITE_KEY, "mesh", ...rest]);
const SERVICES = (...rest: PropertyKey[]) => joinPath([SITE_KEY, "services", ...rest]);

/** What no single stack file can check: references between sites, unique tunnel addresses, flows, what others need. */
export function checkEstate(estate: Estate): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const byName = new Map(estate.sites.map((s) => [s.name, s]));
  const wg = new Map<string, string>();
  for (const s of estate.sites) {
    const cp = byName.get(s.controlPlane);
    if (!cp) {
      issues.push({
        file: s.file,
        path: joinPath([SITE_KEY, "controlPlane"]),
        message: `expected a site of the estate; there is no \`Pulumi.${s.controlPlane}.yaml\``,
      });
    } else if (cp.role !== "control-plane") {
      issues.push({
        file: s.file,
        path: joinPath([SITE_KEY, "controlPlane"]),
        message: `expected a site with role \`control-plane\`; \`${cp.name}\` has role \`${cp.role}\``,
      });
    }
    if (s.role !== "control-plane") {
      for (const field of ["admins", "flows", "headscalePort"] as const) {
        const v = s.mesh[field];
        if (Array.isArray(v) ? v.length > 0 : v !== undefined) {
          issues.push({
            file: s.file,
            path: MESH(field),
            message: `expected it on the control plane only (\`${s.controlPlane}\`): it owns the tailnet policy`,
          });
        }
      }
    }
    // A node's extra tags must not be another identity's: `site-*`, `role-*` and `<site>-*` (a flow consumer's
    // egress node) are the program's, or a stack file could give its node another's flows.
    s.mesh.tags.forEach((t, i) => {
      const owner = [...byName.keys()].find((n) => t.startsWith(`${n}-`));
      if (/^(site|role)-/.test(t) || owner !== undefined) {
        issues.push({
          file: s.file,
          path: MESH("tags", i),
          message: `\`${t}\` is reserved (${owner !== undefined ? `\`${owner}-*\`: site \`${owner}\`'s flow consumers' identities` : "`site-*` and `role-*`: the sites' and roles' tags"}); expected a tag of your own`,
        });
      }
    });
    s.mesh.flows.forEach((f, i) => {
      // Only the named service may use the flow: it must run where the flow starts, on every such site.
      if (f.service !== undefined) {
        const missing = flowSources(estate, s.name, f.from).filter((x) => !x.services.includes(f.service!));
        if (missing.length > 0) {
          issues.push({
            file: s.file,
            path: MESH("flows", i, "service"),
            message: `expected a service that runs on the \`from\` site(s): \`${f.service}\` does not run on ${missing.map((x) => `\`${x.name}\``).join(", ")}`,
          });
        }
      }
      for (const end of ["from", "to"] as const) {
        const v = f[end];
        if (v.startsWith("site:") && !byName.has(v.slice(5))) {
          issues.push({
            file: s.file,
            path: MESH("flows", i, end),
            message: `expected a site of the estate (${[...byName.keys()].map((n) => `site:${n}`).join(", ")})`,
          });
        }
      }
    });
    for (const f of s.follows) {
      const p = byName.get(f.primary);
      const chain = p?.follows.find((x) => x.service === f.service);
      const why = !p
        ? `expected a site of the estate (${[...byName.keys()].join(", ")})`
        : p.controlPlane !== s.controlPlane
          ? `expected a site of the same tailnet (control plane \`${s.controlPlane}\`); \`${p.name}\`'s is \`${p.controlPlane}\``
          : !p.services.includes(f.service)
            ? `expected a site that runs \`${f.service}\`: \`${p.name}\` does not`
            : chain
              ? `\`${p.name}\` runs \`${f.service}\` as a secondary itself (${at(p.file, SERVICES(f.service, "follows"))}); expected its primary, \`${chain.primary}\``
              : undefined;
      if (why) issues.push({ file: s.file, path: SERVICES(f.service, "follows"), message: why });
    }
    const target = s.backup.target;
    if (target !== undefined) {
      const t = byName.get(target);
      const why =
        target === s.name
          ? "expected another site: a backup on the site it protects is lost with it"
          : !t
            ? `expected a site of the estate (${[...byName.keys()].join(", ")})`
            : t.controlPlane !== s.controlPlane
              ? `expected a site of the same tailnet (control plane \`${s.controlPlane}\`); \`${target}\`'s is \`${t.controlPlane}\``
              : undefined;
      if (why) issues.push({ file: s.file, path: joinPath([SITE_KEY, "backup", "target"]), message: why });
    }
    const w = s.mesh.wireguard;
    if (w) {
      const other = wg.get(w.address);
      if (other) {
        issues.push({
          file: s.file,
          path: MESH("wireguard", "address"),
          message: `\`${w.address}\` is already site \`${other}\`'s tunnel address; expected one address per site`,
        });
      }
      wg.set(w.address, s.name);
    }
  }
  return [...issues, ...checkClashes(estate), ...checkSharedRoutes(estate), ...checkRequired(estate)];
}

const ROUTE_HOST = (r: Route) => joinPath([SITE_KEY, "services", r.service, "routes", r.name, "host"]);
/** `file` at `field`, as a message names another site's setting. */
const at = (file: string, field: string) => `${file} at \`${field}\``;

/** An address range, parsed once: whether two ranges overlap, or one holds an address. */
class Range {
  private readonly list = new BlockList();
  readonly family: "ipv4" | "ipv6";
  readonly address: string;
  constructor(readonly cidr: string) {
    const [address, bits] = cidr.split("/");
    this.address = address!;
    this.family = isIPv4(this.address) ? "ipv4" : "ipv6";
    this.list.addSubnet(this.address, Number(bits ?? (this.family === "ipv4" ? 32 : 128)), this.family);
  }
  has(address: string): boolean {
    return (isIPv4(address) ? "ipv4" : "ipv6") === this.family && this.list.check(address, this.family);
  }
  /** Two CIDR ranges overlap exactly when one holds the other's address. */
  overlaps(o: Range): boolean {
    return this.has(o.address) || o.has(this.address);
  }
}

/**
 * What two sites may not share, each refusal naming both files and fields: a host name routed on two sites (which
 * site would its DNS point at?), one server under two stacks (each would remove the other's containers), private
 * ranges that two sites route (the tailnet's subnet routes, the tunnels' subnets: a packet would have two ways),
 * a tunnel address inside such a range or the tailnet's own, and a tunnel that no side can start.
 */
/**
 * Routes that sites serve together (a standby's and its primary's, Route.peers): each such site is found through its
 * own Pi-hole at its own tailnet node (render/dns.ts), and any other Pi-hole of the tailnet would answer their names
 * from elsewhere, sending the clients whose first answer it was to no site that serves them.
 */
function checkSharedRoutes(estate: Estate): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const byName = new Map(estate.sites.map((s) => [s.name, s]));
  const serving = new Map<string, { service: string; primary: string; sites: Set<string> }>();
  for (const s of estate.sites)
    for (const r of s.routes.filter((x) => x.standby)) {
      const e = serving.get(r.host) ?? {
        service: r.service,
        primary: r.peers![0]!,
        sites: new Set<string>(),
      };
      for (const n of [s.name, ...r.peers!]) e.sites.add(n);
      serving.set(r.host, e);
    }
  const shares = new Map<string, Set<string>>();
  for (const { service, sites } of serving.values())
    for (const n of sites) shares.set(n, (shares.get(n) ?? new Set<string>()).add(service));
  for (const [n, services] of shares) {
    const s = byName.get(n);
    const names = [...services]
      .sort()
      .map((x) => `\`${x}\``)
      .join(", ");
    for (const needed of ["pihole", "tailscale"])
      if (s && !s.services.includes(needed))
        issues.push({
          file: s.file,
          path: SERVICES(needed),
          message: `expected \`${needed}\` on this site: it serves ${names} with other sites, and tailnet clients reach the site that is up through its Pi-hole's answer, its node's address`,
        });
  }
  for (const s of estate.sites) {
    if (resolverAddress(s) === undefined || shares.has(s.name)) continue;
    for (const [host, e] of serving) {
      if (byName.get(e.primary)?.controlPlane !== s.controlPlane) continue;
      issues.push({
        file: s.file,
        path: SERVICES("pihole"),
        message: `this site's Pi-hole answers the tailnet's clients, but the site does not serve \`${host}\`, which ${[
          ...e.sites,
        ]
          .sort()
          .map((x) => `\`${x}\``)
          .join(
            " and ",
          )} serve together: a client that took this Pi-hole's answer would reach neither; expected \`${e.service}: { follows: ${e.primary} }\` here too, or \`pihole: false\``,
      });
    }
  }
  return issues;
}

function checkClashes(estate: Estate): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const hosts = new Map<string, { site: EstateSite; route: Route }>();
  const servers = new Map<string, EstateSite>();
  const ranges: { site: EstateSite; field: string; range: Range }[] = [];
  for (const s of estate.sites) {
    for (const route of s.routes) {
      const other = hosts.get(route.host);
      // Unless the two sites serve it together: a standby and its primary, or two standbys of one primary
      // (checkSharedRoutes), which sites loaded alone know from the standbys' side.
      const circle = (site: EstateSite, r: Route) => [site.name, ...(r.peers ?? [])];
      const together =
        other !== undefined &&
        other.route.service === route.service &&
        circle(s, route).some((n) => circle(other.site, other.route).includes(n));
      if (other && other.site !== s && !together) {
        issues.push({
          file: s.file,
          path: ROUTE_HOST(route),
          message: `\`${route.host}\` is already routed by site \`${other.site.name}\` (${at(other.site.file, ROUTE_HOST(other.route))}); expected a host name of this site's own: set \`host\` here, or run the service on one site only`,
        });
      } else if (!other) hosts.set(route.host, { site: s, route });
    }
    if (s.server !== undefined) {
      const other = servers.get(s.server);
      if (other) {
        issues.push({
          file: s.file,
          path: joinPath([SITE_KEY, "host", "address"]),
          message: `\`${s.server}\` is site \`${other.name}\`'s server too (${at(other.file, joinPath([SITE_KEY, "host", "address"]))}); expected a server of each site's own: two stacks on one server remove each other's containers`,
        });
      } else servers.set(s.server, s);
    }
    s.mesh.routes.forEach((cidr, i) =>
      ranges.push({ site: s, field: MESH("routes", i), range: new Range(cidr) }),
    );
    s.mesh.wireguard?.subnets.forEach((cidr, i) =>
      ranges.push({ site: s, field: MESH("wireguard", "subnets", i), range: new Range(cidr) }),
    );
  }
  // Each Pi-hole's tailnet address is a route of its site's (render/dns.ts): one address, one site.
  const resolvers = new Map<string, EstateSite>();
  // Primaries first: a clash is the secondary's to resolve.
  const secondary = (s: EstateSite) => (secondaryResolver(s) ? 1 : 0);
  for (const s of [...estate.sites].sort((a, b) => secondary(a) - secondary(b))) {
    const address = resolverAddress(s);
    if (address === undefined) continue;
    const other = resolvers.get(address);
    if (other && other.controlPlane === s.controlPlane) {
      issues.push({
        file: s.file,
        path: MESH("ingressSubnet"),
        message: `its Pi-hole would answer the tailnet at \`${address}\`, as site \`${other.name}\`'s does (${at(other.file, MESH("ingressSubnet"))}, its default when unset); expected an ingress range of this site's own, such as \`10.255.255.240/29\``,
      });
      continue;
    }
    resolvers.set(address, s);
    // And no other site of its tailnet routes it.
    const inRange = ranges.find(
      (r) => r.site !== s && r.site.controlPlane === s.controlPlane && r.range.has(address),
    );
    if (inRange) {
      issues.push({
        file: s.file,
        path: MESH("ingressSubnet"),
        message: `its Pi-hole would answer the tailnet at \`${address}\`, inside \`${inRange.range.cidr}\`, routed by site \`${inRange.site.name}\` (${at(inRange.site.file, inRange.field)}); expected an ingress range outside every routed range`,
      });
    }
  }
  ranges.forEach((a, i) => {
    const b = ranges.slice(0, i).find((x) => x.site !== a.site && x.range.overlaps(a.range));
    if (b) {
      issues.push({
        file: a.site.file,
        path: a.field,
        message: `\`${a.range.cidr}\` overlaps \`${b.range.cidr}\`, routed by site \`${b.site.name}\` (${at(b.site.file, b.field)}); expected a range no other site routes`,
      });
    }
  });
  const tailnet = TAILNET_RANGES.map((r) => new Range(r));
  for (const s of estate.sites) {
    const w = s.mesh.wireguard;
    if (!w) continue;
    const inRange = ranges.find((r) => r.range.has(w.address));
    const inTailnet = tailnet.find((r) => r.has(w.address));
    if (inTailnet) {
      issues.push({
        file: s.file,
        path: MESH("wireguard", "address"),
        message: `\`${w.address}\` is in the tailnet's range (${inTailnet.cidr}); expected a tunnel address outside it, such as 10.90.0.0/24`,
      });
    } else if (inRange) {
      issues.push({
        file: s.file,
        path: MESH("wireguard", "address"),
        message: `\`${w.address}\` is in \`${inRange.range.cidr}\`, routed by site \`${inRange.site.name}\` (${at(inRange.site.file, inRange.field)}); expected a tunnel address outside every routed range`,
      });
    }
  }
  // A peer whose address is made with its server (hcloud) is found when it starts the tunnel itself: two such
  // peers never find each other.
  const unknown = estate.sites.filter((s) => s.mesh.wireguard && wireguardEndpoint(s) === undefined);
  unknown.forEach((s, i) => {
    const other = unknown.slice(0, i).find((x) => x.controlPlane === s.controlPlane);
    if (other) {
      issues.push({
        file: s.file,
        path: MESH("wireguard", "endpoint"),
        message: `expected the address peers reach this site on: neither its server's address nor \`${other.name}\`'s is known before they exist, so neither could start their tunnel; set it here or in ${at(other.file, MESH("wireguard", "endpoint"))}`,
      });
    }
  });
  return issues;
}

const LOKI: ServiceName = "loki";
const PROMETHEUS: ServiceName = "prometheus";
const PROMTAIL: ServiceName = "promtail";
const names = (sites: readonly EstateSite[]) => sites.map((s) => `\`${s.name}\``).join(", ");

/**
 * What a site's stack file may not remove because other sites use it: the control plane's Loki while its sites push
 * logs to it; the tailnet node (`tailscale`) of every site that reaches, or is reached by, another site (scrapes, log
 * pushes, backups: the egress node's proxy out, the node's forwards in). A site's own needs: model/site.ts.
 */
function checkRequired(estate: Estate): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const NODE = TAILNET_SERVICES.node;
  const runs = (s: EstateSite, service: ServiceName) => s.services.includes(service);
  for (const s of estate.sites) {
    const cp = estate.sites.find((x) => x.name === s.controlPlane);
    // A missing or wrong control plane is its own error (checkEstate).
    if (cp?.role !== "control-plane") continue;
    const others = estate.sites.filter((x) => x.controlPlane === cp.name && x.name !== cp.name);
    const shippers = others.filter((x) => runs(x, PROMTAIL));
    const scraped = others.filter((x) => x.metrics.length > 0);
    if (s === cp && shippers.length > 0 && !runs(cp, LOKI)) {
      issues.push({
        file: cp.file,
        path: SERVICES(LOKI),
        message: `expected \`${LOKI}\` on the control plane: the log shippers (\`${PROMTAIL}\`) of ${names(shippers)} push to it; do not set it to \`false\`, or set their \`${PROMTAIL}\` to \`false\` too`,
      });
    }
    const why: string[] = [];
    if (s === cp) {
      if (runs(cp, PROMETHEUS) && scraped.length > 0)
        why.push(`its Prometheus' scrapes of ${names(scraped)}`);
      if (runs(cp, LOKI) && shippers.length > 0) why.push(`the logs of ${names(shippers)} to its Loki`);
    } else {
      if (runs(cp, PROMETHEUS) && s.metrics.length > 0) why.push(`\`${cp.name}\`'s scrapes of its exporters`);
      if (runs(cp, LOKI) && runs(s, PROMTAIL)) why.push(`its logs to \`${cp.name}\`'s Loki`);
    }
    const target = backupTarget(estate, s);
    if (target !== undefined) why.push(`its backups to \`${target}\``);
    const hosted = hostedRepositories(estate, s.name);
    if (hosted.length > 0) why.push(`the backups of ${names(hosted)}`);
    if (why.length > 0 && !runs(s, NODE)) {
      issues.push({
        file: s.file,
        path: SERVICES(NODE),
        message: `expected the tailnet node (\`${NODE}\`): it carries ${why.join(", ")}; do not set it to \`false\``,
      });
    }
  }
  return issues;
}
