import { HCLOUD_PRICES_READ, HCLOUD_PRICES_SOURCE } from "../config/hcloudTypes";
import { CPU_OVERCOMMIT, MEMORY_OVERCOMMIT } from "../model/capacity";
import { siteCost, totalCost, type SiteCost } from "../model/cost";
import type { SiteModel } from "../render/siteModel";
import { code, table } from "./markdown";

/**
 * The cost table, as Markdown: what `npm run cost` prints and docs/estate.md's "Cost" section holds, from the same
 * models (scripts/estateDoc.ts estateModels). No time in it: the same files give the same text.
 */

const eur = (n: number) => n.toFixed(2);
const gb = (mb: number) => `${Number((mb / 1024).toFixed(2))} GB`;
const num = (n: number) => `${Number(n.toFixed(2))}`;

function host(c: SiteCost): string {
  return c.host.kind === "hcloud" ? `${code(c.host.serverType)} in ${code(c.host.location)}` : "existing";
}

function price(c: SiteCost): string {
  if (c.price !== undefined) return eur(c.price);
  return c.host.kind === "hcloud" ? "not in the table" : "not declared";
}

function saving(c: SiteCost): string {
  if (!c.cheapest) return "none priced fits";
  if (c.saving === undefined) return "unknown (no current price)";
  if (c.saving === 0) return "0.00";
  return c.saving > 0 ? `saves ${eur(c.saving)}` : `costs ${eur(-c.saving)} more`;
}

/** The section's body: the table, its total, and what it does not count. */
export function costSection(sites: readonly Pick<SiteModel, "name" | "host" | "services">[]): string {
  const costs = sites.map(siteCost);
  const { total, unpriced } = totalCost(costs);
  const rows = costs.map((c) => [
    c.site,
    host(c),
    c.size ? `${num(c.size.cpus)} / ${gb(c.size.memoryMb)}` : "not declared",
    c.diskGb === undefined ? "" : `${c.diskGb} GB / ${c.trafficTb === undefined ? "?" : `${c.trafficTb} TB`}`,
    price(c),
    `${num(c.limits.cpus)} / ${gb(c.limits.memoryMb)}`,
    c.cheapest ? `${code(c.cheapest.type)} in ${code(c.cheapest.location)} at ${eur(c.cheapest.price)}` : "",
    saving(c),
  ]);
  const totalRow = [
    "**total**",
    "",
    "",
    "",
    `**${eur(total)}**${unpriced.length ? ` + ${unpriced.join(", ")}` : ""}`,
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
      `EUR a month without VAT: an hcloud server's from the price table (config/hcloudTypes.ts, read ${HCLOUD_PRICES_READ} from ${HCLOUD_PRICES_SOURCE}), an existing host's as its stack file declares (\`host.monthlyPrice\`). A type the table has no current price for is "not in the table", and left out of the total.`,
      `Cheapest fit: the cheapest priced shared x86 type (Arm for a site on Arm; an existing host is taken as x86, its location as anywhere) whose cores and memory hold the site's limits within the check's overcommit factors (${MEMORY_OVERCOMMIT}x memory, ${CPU_OVERCOMMIT}x CPU): the check would not refuse it, it may still warn. Switching is a rescale, billed at the new-order prices Hetzner set from 15 June 2026, which the table does not have: the saving may be smaller.`,
      "Backups: each site's repository is on another site's disk (restic's REST server over the tailnet), not a separate bill: it takes space from the disk above. Traffic: the included allowance is shown where the table has it; overage is estimated at 0, since no site declares its traffic.",
    ].join("\n\n"),
  ].join("\n\n");
}
