import type { Estate, EstateSite } from "../render/estate";
import { tailnetDomain } from "../render/headscale";
import { type SiteModel, pulls } from "../render/siteModel";

/**
 * A site as the rest of the estate sees it: its name on the tailnet, its EstateSite, where its backups go. What
 * model/site.ts and model/estate.ts both need, so neither imports the other's.
 */

/**
 * The name `node` has on `site`'s tailnet (MagicDNS): `<node>.mesh.<the control plane's domain>`, as Headscale
 * names it (render/headscale.ts tailnetDomain), whatever the site's own domain.
 */
export const meshHost = (
  estate: Estate,
  site: Pick<SiteModel, "controlPlane" | "domain">,
  node: string,
): string => `${node}.${tailnetDomain(estate, site)}`;

/** What the rest of the estate needs to know of a site. */
export function estateSite(model: SiteModel): EstateSite {
  const metrics = model.services
    .flatMap((s) =>
      s.containers.flatMap((c) =>
        c.metrics
          ? [
              {
                service: s.name,
                container: c.name,
                port: c.metrics.port,
                path: c.metrics.path,
                throughNode: !c.networks.includes("metrics"),
              },
            ]
          : [],
      ),
    )
    .sort((a, b) => a.port - b.port);
  return {
    name: model.name,
    file: model.file,
    role: model.role,
    domain: model.domain,
    controlPlane: model.controlPlane,
    meshHost: meshHost(model.estate, model, model.name),
    ...(model.host.kind === "existing"
      ? { address: model.host.address, server: `${model.host.address}:${model.host.port}` }
      : {}),
    services: model.services.map((s) => s.name),
    containers: model.services.flatMap((s) => s.containers.map((c) => c.name)).sort(),
    routes: model.routes,
    metrics,
    mesh: model.mesh,
    backup: {
      ...(model.backup.configuredTarget ? { target: model.backup.configuredTarget } : {}),
      retention: model.backup.retention,
    },
    follows: model.follows.map((f) => ({ service: f.service, primary: f.primary, pulls: pulls(f) })),
    ...(model.backup.target ? { backupTarget: model.backup.target } : {}),
  };
}

/**
 * The site that keeps a site's backup repository: the one its stack file names; else its control plane; for the
 * control plane, its first services site. None while that site is not in the estate (a site loaded alone).
 */
export function backupTarget(
  estate: Estate,
  site: Pick<EstateSite, "name" | "role" | "controlPlane" | "backup">,
): string | undefined {
  const named = site.backup.target ?? (site.role === "control-plane" ? undefined : site.controlPlane);
  if (named !== undefined) return estate.sites.some((s) => s.name === named) ? named : undefined;
  return estate.sites.find((s) => s.controlPlane === site.name && s.name !== site.name)?.name;
}

/** The sites whose repositories `site` keeps, sorted by name. */
export function hostedRepositories(estate: Estate, site: string): EstateSite[] {
  return estate.sites.filter((s) => s.name !== site && backupTarget(estate, s) === site);
}
