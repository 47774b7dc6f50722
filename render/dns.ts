import type { Estate, EstateSite } from "./estate";
import { ingressAddresses } from "./traefik";

/**
 * The tailnet's DNS: every site that runs Pi-hole on the tailnet answers it at a fixed address of its own, its
 * `ingress` network's resolver address, which its node advertises as a route (`<address>/32`, approved for the
 * site's tag alone) and forwards into that network; Headscale hands clients every such address, primaries first
 * (render/headscale.ts). A tailnet client's resolver asks them all and takes the first answer: with one site down,
 * the others answer. Sites' ingress ranges must therefore differ (model/estate.ts refuses two resolvers at one
 * address).
 */

/** The DNS port. */
export const DNS_PORT = 53;
const PIHOLE = "pihole";

/** Where a site's Pi-hole answers the tailnet; none where it runs no Pi-hole or no tailnet node. */
export function resolverAddress(site: Pick<EstateSite, "services" | "mesh">): string | undefined {
  return site.services.includes(PIHOLE) && site.services.includes("tailscale")
    ? ingressAddresses(site.mesh.ingressSubnet).resolver
    : undefined;
}

/** Whether a site's Pi-hole is a secondary (of another site's). */
export const secondaryResolver = (s: Pick<EstateSite, "follows">): boolean =>
  s.follows.some((f) => f.service === PIHOLE);

/** The resolvers of a control plane's tailnet, primaries (sites whose Pi-hole follows none) first, then by name. */
export function tailnetResolvers(estate: Estate, controlPlane: string): { site: string; address: string }[] {
  const primaryFirst = (s: EstateSite) => (secondaryResolver(s) ? 1 : 0);
  return estate.sites
    .filter((s) => s.controlPlane === controlPlane && resolverAddress(s) !== undefined)
    .sort((a, b) => primaryFirst(a) - primaryFirst(b) || a.name.localeCompare(b.name))
    .map((s) => ({ site: s.name, address: resolverAddress(s)! }));
}

/**
 * Routes served on more than one site (Route.peers): each site's Pi-hole answers their names with its own site's
 * tailnet address, where its node forwards 443 to its Traefik. A client asks every resolver at once and takes the
 * first answer: with both sites up either site's Traefik (which sends it to the primary's instance); with one down,
 * the other's. A file of the site's own (never synced: each Pi-hole's answer differs), read as extra hosts.
 */
export const FAILOVER_HOSTS_FILE = "/etc/pihole/qcloud-failover.list";
/** The dnsmasq config line that makes Pi-hole read it (dnsmasq reads its config at start: `pihole restartdns`). */
export const FAILOVER_CONF_FILE = "/etc/dnsmasq.d/06-qcloud-failover.conf";

/** The names a site's Pi-hole answers with its own address: its routes that other sites serve too, sorted. */
export const failoverHosts = (routes: readonly { host: string; peers?: readonly string[] }[]): string[] =>
  [...new Set(routes.filter((r) => (r.peers ?? []).length > 0).map((r) => r.host))].sort();

/** Writes the failover records into the site's Pi-hole (`container`), then restarts its DNS (run on the host). */
export function renderFailoverRecordsInstall(
  container: string,
  address: string,
  hosts: readonly string[],
): string {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address))
    throw new Error(`expected the site node's tailnet IPv4 address, got \`${address}\``);
  return [
    "set -eu",
    `docker exec -i ${container} sh -c '`,
    "set -eu",
    `cat > ${FAILOVER_HOSTS_FILE}.new`,
    `mv ${FAILOVER_HOSTS_FILE}.new ${FAILOVER_HOSTS_FILE}`,
    `echo addn-hosts=${FAILOVER_HOSTS_FILE} > ${FAILOVER_CONF_FILE}`,
    "pihole restartdns",
    "' <<'RECORDS'",
    ...hosts.map((h) => `${address} ${h}`),
    "RECORDS",
    "",
  ].join("\n");
}

/** Takes them out again; a Pi-hole already gone has nothing to take out. */
export function renderFailoverRecordsUninstall(container: string): string {
  return [
    `docker inspect ${container} >/dev/null 2>&1 || exit 0`,
    `docker exec ${container} sh -c 'rm -f ${FAILOVER_CONF_FILE} ${FAILOVER_HOSTS_FILE} && pihole restartdns'`,
    "",
  ].join("\n");
}
