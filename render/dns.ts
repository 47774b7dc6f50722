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
