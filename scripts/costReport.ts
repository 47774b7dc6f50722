import {
  HCLOUD_PRICES_CHECKED,
  HCLOUD_PRICES_NEWEST_SOURCE,
  HCLOUD_PRICES_SOURCE,
} from "../config/hcloudTypes";
import { CPU_OVERCOMMIT } from "../model/capacity";
import { siteCost, totalCost, type SiteCost } from "../model/cost";
import type { SiteModel } from "../render/siteModel";
import { code, table } from "./markdown";

/**
 * The cost table, as Markdown: what `npm run cost` prints and docs/estate.md's "Cost" section holds, from the same
 * models (scripts/estateDoc.ts estateModels). No time in it: the same files give the same text.
 */

const eur = (n: number) => n.toFixed(2);
// Memory in GiB: what MiB / 1024 is (Hetzner's memory "GB" are GiB: a cx23's 4 GB is 4096 MiB).
const gib = (mb: number) => `${Number((mb / 1024).toFixed(2))} GiB`;
const num = (n: number) => `${Number(n.toFixed(2))}`;

function host(c: SiteCost): string {
  return c.host.kind === "hcloud" ? `${code(c.host.serverType)} in ${code(c.host.location)}` : "existing";
}

/** The price, or why there is none: "not declared" (an existing host), "not in the table" (an hcloud type). */
function price(c: SiteCost): string {
  if (c.price !== undefined) return eur(c.price);
  return c.host.kind === "hcloud" ? "not in the table" : "not declared";
}

function saving(c: SiteCost): string {
  if (!c.cheapest) return "none priced fits";
  if (c.saving === undefined) return `unknown: price ${price(c)}`;
  if (c.saving === 0) return "0.00";
  return c.saving > 0 ? `saves ${eur(c.saving)}` : `costs ${eur(-c.saving)} more`;
}

/** A site's cost in a line, for its facts in docs/estate.md. */
export function costFact(site: Pick<SiteModel, "name" | "host" | "services">): string {
  const c = siteCost(site);
  return `${c.price === undefined ? price(c) : `${eur(c.price)} EUR a month without VAT`} ([Cost](#cost))`;
}

/** The section's body: the table, its total, and what it does not count. */
export function costSection(sites: readonly Pick<SiteModel, "name" | "host" | "services">[]): string {
  const costs = sites.map(siteCost);
  const { total, unpriced } = totalCost(costs);
  // The unpriced sites by why ("master, lady not declared"): the total covers the priced ones only.
  const unpricedBy = new Map<string, string[]>();
  for (const c of costs.filter((c) => unpriced.includes(c.site)))
    unpricedBy.set(price(c), [...(unpricedBy.get(price(c)) ?? []), c.site]);
  const why = [...unpricedBy].map(([reason, names]) => `${names.join(", ")} ${reason}`);
  const rows = costs.map((c) => [
    c.site,
    host(c),
    c.size ? `${num(c.size.cpus)} / ${gib(c.size.memoryMb)}` : "not declared",
    c.diskGb === undefined ? "" : `${c.diskGb} GB / ${c.trafficTb === undefined ? "?" : `${c.trafficTb} TB`}`,
    price(c),
    `${num(c.limits.cpus)} / ${gib(c.limits.memoryMb)}`,
    c.cheapest
      ? `${code(c.cheapest.type)} in ${code(c.cheapest.location)} at ${eur(c.cheapest.price)}${c.host.kind === "existing" ? " (a move; disk not compared)" : ""}`
      : "",
    saving(c),
  ]);
  const totalRow = [
    "**total**",
    "",
    "",
    "",
    `**${eur(total)}**${why.length ? ` + ${why.join(" + ")}` : ""}`,
    "",
    "",
    "",
  ];
  return [
    table(
      [
        "site",
        "host",
        "vCPUs / memory",
        "disk / traffic included",
        "EUR a month",
        "limits: CPUs / memory",
        "cheapest fit",
        "switching",
      ],
      [...rows, totalRow],
    ),
    [
      `EUR a month without VAT: an hcloud server's from the price table (config/hcloudTypes.ts, checked ${HCLOUD_PRICES_CHECKED} against its sources, the newest of ${HCLOUD_PRICES_NEWEST_SOURCE}; to check again: ${HCLOUD_PRICES_SOURCE}), an existing host's as its stack file declares (\`host.monthlyPrice\`, from the provider's bill). A site without a price ("not declared", or a type "not in the table") is named beside the total and not in it: the total covers the priced sites only. Memory in GiB (Hetzner's memory "GB" are GiB); disk in GB, as Hetzner lists it.`,
      `Cheapest fit: the cheapest priced shared type of the site's architecture (an existing host is taken as x86) that the check would pass without a memory warning: the site's memory limits at most the type's memory (1x: past it, when they peak together, the host's OOM killer picks), its CPU limits within the check's CPU factor (${CPU_OVERCOMMIT}x: a CPU limit only throttles). For an hcloud server, in its location and with at least its disk: switching is a rescale, which cannot shrink a disk, billed at the new-order prices Hetzner set from 15 June 2026, which the table does not have (the saving may be smaller). For an existing host, anywhere, and its disk is not known, so not compared: switching is a move to a new server, not a rescale.`,
      "Backups: each site's repository is on another site's disk (restic's REST server over the tailnet), not a separate bill: it takes space from the disk above. Traffic: the included allowance is shown where the table has it; overage is estimated at 0, since no site declares its traffic.",
    ].join("\n\n"),
  ].join("\n\n");
}
