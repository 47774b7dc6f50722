import type { Estate } from "./estate";

/**
 * What a followed primary runs for its secondaries (render/sync.ts): `<service>-share`, which serves a snapshot of
 * the catalog's `secondary.files` on SYNC_PORT (render/policy.ts) and its own metrics on SYNC_METRICS_PORT. Apart
 * from render/sync.ts, which the catalog and the node's serve config need without the job's script.
 */

/** The share's container key: `<service>-share`. */
export const SHARE_KEY = "share";
/** Where the share serves its metrics and health (scraped like an exporter; not the secondaries' port). */
export const SYNC_METRICS_PORT = 8054;

/** The sites of the estate that run `service` as a secondary of `site`'s, and how (render/estate.ts). */
export const followersOf = (estate: Estate, site: string, service: string) =>
  estate.sites.flatMap((s) =>
    s.follows
      .filter((f) => f.primary === site && f.service === service)
      .map((f) => ({ site: s.name, pulls: f.pulls })),
  );

/** The services other sites of the estate run as secondaries of `site`'s, sorted. */
export function followedServices(estate: Estate, site: string): string[] {
  return [
    ...new Set(
      estate.sites.flatMap((s) =>
        s.name === site ? [] : s.follows.filter((f) => f.primary === site && f.pulls).map((f) => f.service),
      ),
    ),
  ].sort();
}
