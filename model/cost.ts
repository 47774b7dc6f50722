import {
  HCLOUD_LOCATIONS,
  HCLOUD_SERVER_TYPES,
  HCLOUD_TYPE_NAMES,
  type HcloudLocation,
} from "../config/hcloudTypes";
import type { HostConfig } from "../config/schema";
import type { ServiceModel } from "../render/siteModel";
import { hostSize, levels, siteLimits, type HostSize } from "./capacity";

/**
 * What a site costs a month, and the cheapest server type of the price table (config/hcloudTypes.ts) that holds its
 * limits: `npm run cost` and docs/estate.md print it. Net EUR, without VAT. Pure: the table and the models in,
 * numbers out.
 */

/** A server type that would do, where, and at what price. */
export interface Fit {
  readonly type: string;
  readonly location: HcloudLocation;
  readonly price: number;
}

export interface SiteCost {
  readonly site: string;
  readonly host: HostConfig;
  readonly size?: HostSize;
  /** Monthly, EUR: from the table (hcloud) or declared (existing); undefined: neither. */
  readonly price?: number;
  /** Disk and included traffic, where the table knows them (hcloud). */
  readonly diskGb?: number;
  readonly trafficTb?: number;
  readonly limits: { readonly memoryMb: number; readonly cpus: number };
  readonly cheapest?: Fit;
  /** What switching to `cheapest` saves a month (negative: costs more); undefined without both prices. */
  readonly saving?: number;
}

/** Where a fit may be: the site's architecture, location and disk, where known. */
export interface FitFor {
  /** Defaults to "x86" (an existing host is taken as x86). */
  readonly arch?: "x86" | "arm";
  /** Defaults to anywhere: an existing host's location is not known. */
  readonly location?: HcloudLocation;
  /** The current disk, GB: a Hetzner rescale cannot shrink it. Defaults to not compared (an existing host's). */
  readonly diskGb?: number;
}

/**
 * The cheapest priced shared type of the site's architecture that holds `limits` as the check would pass them
 * without a memory warning: memory limits within the type's memory (1x: past it the host's OOM killer picks),
 * CPU limits within the check's CPU factor (a CPU limit only throttles); at least the current disk, where it is
 * known (a rescale cannot shrink a disk); at `location` if given, else anywhere. Ties go to the smaller type name,
 * then location, for a stable answer.
 */
export function cheapestFit(
  limits: { readonly memoryMb: number; readonly cpus: number },
  { arch = "x86", location, diskGb = 0 }: FitFor = {},
): Fit | undefined {
  const fits: Fit[] = [];
  for (const type of HCLOUD_TYPE_NAMES) {
    const t = HCLOUD_SERVER_TYPES[type]!;
    if (t.arch !== arch || t.cpu !== "shared" || t.diskGb < diskGb) continue;
    const l = levels(limits, { memoryMb: t.memoryGb * 1024, cpus: t.cores });
    if (l.memory !== "ok" || l.cpu === "fail") continue;
    for (const at of location ? [location] : HCLOUD_LOCATIONS) {
      const price = t.prices[at];
      if (price !== undefined) fits.push({ type, location: at, price });
    }
  }
  return fits.sort(
    (a, b) => a.price - b.price || a.type.localeCompare(b.type) || a.location.localeCompare(b.location),
  )[0];
}

/** Cents, exactly: prices are added and subtracted in whole cents. */
const cents = (eur: number) => Math.round(eur * 100);

export function siteCost(site: {
  readonly name: string;
  readonly host: HostConfig;
  readonly services: readonly ServiceModel[];
}): SiteCost {
  const { memoryMb, cpus } = siteLimits(site.services);
  const limits = { memoryMb, cpus };
  const size = hostSize(site.host);
  const h = site.host;
  const t = h.kind === "hcloud" ? HCLOUD_SERVER_TYPES[h.serverType] : undefined;
  const price = h.kind === "hcloud" ? t?.prices[h.location] : h.monthlyPrice;
  const cheapest = cheapestFit(
    limits,
    h.kind === "hcloud" && t ? { arch: t.arch, location: h.location, diskGb: t.diskGb } : {},
  );
  return {
    site: site.name,
    host: h,
    ...(size ? { size } : {}),
    ...(price === undefined ? {} : { price }),
    ...(t ? { diskGb: t.diskGb } : {}),
    ...(t && h.kind === "hcloud" && t.trafficTb[h.location] !== undefined
      ? { trafficTb: t.trafficTb[h.location] }
      : {}),
    limits,
    ...(cheapest ? { cheapest } : {}),
    ...(cheapest && price !== undefined ? { saving: (cents(price) - cents(cheapest.price)) / 100 } : {}),
  };
}

/** The estate's monthly total over the sites with a price, and the sites without one. */
export function totalCost(costs: readonly SiteCost[]): {
  readonly total: number;
  readonly unpriced: string[];
} {
  return {
    total: costs.reduce((n, c) => n + cents(c.price ?? 0), 0) / 100,
    unpriced: costs.filter((c) => c.price === undefined).map((c) => c.site),
  };
}
