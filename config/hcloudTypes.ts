/**
 * Hetzner Cloud server types: size, included traffic and monthly net price (EUR, without VAT, without a primary
 * IPv4), by location. Plain data: the schema refuses a type or a location not in it (config/schema.ts), the capacity
 * check reads a server's size from it (model/capacity.ts), `npm run cost` its price (model/cost.ts).
 *
 * Where the numbers come from. Two dates: {@link HCLOUD_PRICES_CHECKED}, the day the table was last checked against
 * the sources below (test/cost.test.ts fails once that is older than its set age, to have it checked again), and
 * {@link HCLOUD_PRICES_NEWEST_SOURCE}, the date of the newest of those sources: no price here is newer than it.
 * - Sizes, architecture and where a type is offered: https://docs.cnap.tech/compute/providers/hetzner (cx23,
 *   cx33, cx43, cax11..cax31, cpx32; cost-optimized cx and cax in fsn1, nbg1 and hel1 only, as
 *   https://github.com/avalonreset/legends-hetzner/releases/tag/v0.1.3 also lists them) and the benchmarks of
 *   https://gist.github.com/derhuerst/4ef9a832e031bf82d6e640e2dd6b2d24 (cx22, cx32, cx52, cpx22, cpx32, measured;
 *   where cnap says 3 vCPUs for a cpx22, the measured 2 win). cx42, cax41, cpx42 and the ccx types follow their
 *   line's steps; they were not read anew.
 * - cx33: 6.49, from Hetzner's pricing API (`GET /v1/pricing`, fsn1), quoted in
 *   https://github.com/devantler-tech/platform/commit/cb791c6f of 2026-05-27: after the 1 April 2026 increase,
 *   which also repriced existing servers. The newest source found: where older pages disagree (docs.cnap.tech's
 *   hourly rates put a cx23 at ~4.11), this one wins.
 * - cx23, cx43, cx53: derived, not read: the per-vCPU prices of the same operator
 *   (https://github.com/devantler-tech/platform/issues/1784, after 2026-05-27: 2.00, 1.50 and 1.41 EUR per vCPU and
 *   month) times the cores. Those are rounded to the cent, so these are ± a few cents off the price list (up to
 *   ±0.5 cent per vCPU: ±8 cents for a cx53's 16).
 * - Every other type: no price after 1 April 2026 was found (the last ones seen, e.g. cx22 at 3.29 in July 2024,
 *   cpx22 at 5.99 in October 2025, predate two increases): `undefined`, shown as "not in the table", never guessed.
 *   cx22/cx32/cx42/cx52 are the previous generation, replaced by cx23..cx53 in October 2025; kept for servers
 *   that run them.
 * - Hetzner reprices new orders and rescales from 15 June 2026 (existing servers keep their rate); its new numbers
 *   were not found in the sources above. Switching an hcloud server is a rescale: what `npm run cost` says it would
 *   save is at the rates above, and may be less.
 * - Included traffic: 20 TB a month in the EU locations for every type (overage 1 EUR/TB, same source as cx33);
 *   the US and Singapore allowances were cut in December 2024 and are not in the table.
 */

/** The day the table was last checked against its sources. A test fails when it is older than its set age. */
export const HCLOUD_PRICES_CHECKED = "2026-12-01";
/** The date of the newest dated source (the cx33's, above; the per-vCPU prices behind cx23/cx43/cx53 are undated, later). */
export const HCLOUD_PRICES_NEWEST_SOURCE = "2026-05-27";
/** Where to check them again (or `GET https://api.hetzner.cloud/v1/pricing` with a token). */
export const HCLOUD_PRICES_SOURCE =
  "https://www.hetzner.com/cloud (or `GET https://api.hetzner.cloud/v1/pricing`)";

export const HCLOUD_LOCATIONS = ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"] as const;
export type HcloudLocation = (typeof HCLOUD_LOCATIONS)[number];
const EU = ["fsn1", "nbg1", "hel1"] as const satisfies readonly HcloudLocation[];

export interface HcloudServerType {
  /** `x86` or `arm` (cax: Ampere). */
  readonly arch: "x86" | "arm";
  /** Shared vCPUs, or dedicated ones (ccx). */
  readonly cpu: "shared" | "dedicated";
  readonly cores: number;
  readonly memoryGb: number;
  readonly diskGb: number;
  /** Where it can be ordered, with its monthly net price in EUR there; `undefined`: offered, price not sourced. */
  readonly prices: Readonly<Partial<Record<HcloudLocation, number | undefined>>>;
  /** Included outbound traffic per month, TB, where sourced (EU locations). */
  readonly trafficTb: Readonly<Partial<Record<HcloudLocation, number>>>;
}

const everywhere = (price?: number) => Object.fromEntries(HCLOUD_LOCATIONS.map((l) => [l, price]));
const inEu = (price?: number) => Object.fromEntries(EU.map((l) => [l, price]));
const euTraffic = Object.fromEntries(EU.map((l) => [l, 20]));

const type = (
  arch: HcloudServerType["arch"],
  cpu: HcloudServerType["cpu"],
  cores: number,
  memoryGb: number,
  diskGb: number,
  prices: HcloudServerType["prices"],
): HcloudServerType => ({ arch, cpu, cores, memoryGb, diskGb, prices, trafficTb: euTraffic });

export const HCLOUD_SERVER_TYPES: Readonly<Record<string, HcloudServerType>> = {
  // Cost-optimized, Intel/AMD shared, current generation (October 2025).
  cx23: type("x86", "shared", 2, 4, 40, inEu(4.0)),
  cx33: type("x86", "shared", 4, 8, 80, inEu(6.49)),
  cx43: type("x86", "shared", 8, 16, 160, inEu(12.0)),
  cx53: type("x86", "shared", 16, 32, 320, inEu(22.56)),
  // The previous generation: running servers keep it.
  cx22: type("x86", "shared", 2, 4, 40, inEu()),
  cx32: type("x86", "shared", 4, 8, 80, inEu()),
  cx42: type("x86", "shared", 8, 16, 160, inEu()),
  cx52: type("x86", "shared", 16, 32, 320, inEu()),
  // Arm (Ampere), shared.
  cax11: type("arm", "shared", 2, 4, 40, inEu()),
  cax21: type("arm", "shared", 4, 8, 80, inEu()),
  cax31: type("arm", "shared", 8, 16, 160, inEu()),
  cax41: type("arm", "shared", 16, 32, 320, inEu()),
  // Regular performance, AMD shared: every location.
  cpx22: type("x86", "shared", 2, 4, 80, everywhere()),
  cpx32: type("x86", "shared", 4, 8, 160, everywhere()),
  cpx42: type("x86", "shared", 8, 16, 320, everywhere()),
  // General purpose, AMD dedicated: every location.
  ccx13: type("x86", "dedicated", 2, 8, 80, everywhere()),
  ccx23: type("x86", "dedicated", 4, 16, 160, everywhere()),
  ccx33: type("x86", "dedicated", 8, 32, 240, everywhere()),
  ccx43: type("x86", "dedicated", 16, 64, 360, everywhere()),
};

export const HCLOUD_TYPE_NAMES = Object.keys(HCLOUD_SERVER_TYPES).sort();

/** Whether `serverType` can be ordered at `location` (the table's `prices` keys). */
export const offeredAt = (t: HcloudServerType, location: HcloudLocation): boolean => location in t.prices;
