import {
  HCLOUD_PRICES_CHECKED,
  HCLOUD_PRICES_NEWEST_SOURCE,
  HCLOUD_PRICES_SOURCE,
  HCLOUD_SERVER_TYPES,
} from "../config/hcloudTypes";
import type { HostConfig } from "../config/schema";
import { cheapestFit, siteCost, totalCost, type FitFor } from "../model/cost";
import type { ServiceModel } from "../render/siteModel";
import { costSection } from "../scripts/costReport";

/** How old the price table may get before this suite fails: Hetzner repriced twice in 2026. */
const MAX_PRICE_AGE_DAYS = 180;

const services = (memoryMb: number, cpus: number): ServiceModel[] =>
  [{ name: "x", containers: [{ name: "x", memoryMb, cpus }] }] as unknown as ServiceModel[];
const existing = (extra: Partial<Extract<HostConfig, { kind: "existing" }>> = {}): HostConfig => ({
  kind: "existing",
  address: "203.0.113.20",
  user: "root",
  port: 22,
  ...extra,
});
const hcloud = (serverType: string, location: "fsn1" | "ash" = "fsn1"): HostConfig => ({
  kind: "hcloud",
  serverType,
  location,
  image: "debian-12",
  sshKeys: ["ssh-ed25519 AAAA"],
  sshSources: ["0.0.0.0/0"],
});

describe("the price table", () => {
  test(`was checked at most ${MAX_PRICE_AGE_DAYS} days ago`, () => {
    const age = (Date.now() - Date.parse(`${HCLOUD_PRICES_CHECKED}T00:00:00Z`)) / 86_400_000;
    if (!(age <= MAX_PRICE_AGE_DAYS))
      throw new Error(
        `config/hcloudTypes.ts: HCLOUD_PRICES_CHECKED is ${HCLOUD_PRICES_CHECKED}, ${Math.floor(age)} days ago (at most ${MAX_PRICE_AGE_DAYS}): check the prices again against ${HCLOUD_PRICES_SOURCE}, update the table and its dates`,
      );
    expect(age).toBeGreaterThanOrEqual(0);
  });

  test("every type is sold somewhere, every price is positive, every size whole", () => {
    for (const [name, t] of Object.entries(HCLOUD_SERVER_TYPES)) {
      expect([name, Object.keys(t.prices).length > 0]).toEqual([name, true]);
      for (const p of Object.values(t.prices)) if (p !== undefined) expect(p).toBeGreaterThan(0);
      expect([t.cores, t.memoryGb, t.diskGb].every(Number.isInteger)).toBe(true);
    }
  });
});

describe("the cheapest fit", () => {
  // Memory at most 1x the type's (no memory warning), CPU within the check's factor, at least the current disk.
  test.each<[string, string | undefined, number, number, FitFor]>([
    ["madam's agents (1280 MiB, 4 CPUs)", "cx23", 1280, 4, { location: "fsn1" }],
    ["master's (5312 MiB: past a cx23's 4 GiB)", "cx33", 5312, 10.65, {}],
    ["lady's (15936 MiB: past 8 GiB)", "cx43", 15936, 17.65, {}],
    ["exactly a cx23's memory", "cx23", 4096, 1, { location: "fsn1" }],
    ["1 MiB past it (the check would warn: not suggested)", "cx33", 4097, 1, { location: "fsn1" }],
    ["exactly 4x a cx23's CPUs (throttled, no warning about memory)", "cx23", 1024, 8, { location: "fsn1" }],
    ["past 4x a cx23's CPUs", "cx33", 1024, 8.01, { location: "fsn1" }],
    [
      "on a cx33 (80 GB): no rescale down to a cx23's 40 GB",
      "cx33",
      1024,
      1,
      { location: "fsn1", diskGb: 80 },
    ],
    ["on a 40 GB disk: the cx23 again", "cx23", 1024, 1, { location: "fsn1", diskGb: 40 }],
    ["a disk larger than any priced type's", undefined, 1024, 1, { location: "fsn1", diskGb: 400 }],
    ["more than the largest priced type holds", undefined, 32 * 1024 + 1, 1, { location: "fsn1" }],
    ["in the US: no cx, and no cpx price in the table", undefined, 1024, 1, { location: "ash" }],
    ["on Arm: no cax price in the table", undefined, 1024, 1, { arch: "arm", location: "fsn1" }],
  ])("%s -> %s", (_name, type, memoryMb, cpus, fitFor) => {
    expect(cheapestFit({ memoryMb, cpus }, fitFor)?.type).toBe(type);
  });
});

describe("a site's cost", () => {
  test("an existing host: its declared price, the fit anywhere, and what switching saves", () => {
    const c = siteCost({
      name: "lady",
      host: existing({ memory: 32768, cpus: 16, monthlyPrice: 22.56 }),
      services: services(15936, 17.65),
    });
    expect(c).toEqual({
      site: "lady",
      host: expect.objectContaining({ kind: "existing" }),
      size: { memoryMb: 32768, cpus: 16, from: "declared" },
      price: 22.56,
      limits: { memoryMb: 15936, cpus: 17.65 },
      cheapest: { type: "cx43", location: "fsn1", price: 12 },
      saving: 10.56,
    });
  });

  test("a cheaper host than the fit: switching costs more (a negative saving)", () => {
    const c = siteCost({ name: "m", host: existing({ monthlyPrice: 3 }), services: services(1024, 1) });
    expect([c.cheapest?.type, c.saving]).toEqual(["cx23", -1]);
  });

  test("an hcloud server: size, disk and traffic from the table; no price in it: no saving, left out of the total", () => {
    const madam = siteCost({ name: "madam", host: hcloud("cx22"), services: services(1280, 4) });
    expect(madam).toEqual({
      site: "madam",
      host: expect.objectContaining({ serverType: "cx22" }),
      size: { memoryMb: 4096, cpus: 2, from: "cx22" },
      diskGb: 40,
      trafficTb: 20,
      limits: { memoryMb: 1280, cpus: 4 },
      cheapest: { type: "cx23", location: "fsn1", price: 4 },
    });
    // The same limits on a cx33: a cx23 would hold them, but a rescale cannot shrink its 80 GB disk to 40.
    const priced = siteCost({ name: "x", host: hcloud("cx33"), services: services(1280, 4) });
    expect([priced.price, priced.cheapest?.type, priced.saving]).toEqual([6.49, "cx33", 0]);
    // A cx23 past its memory: the fit is larger, and costs more.
    const tight = siteCost({ name: "t", host: hcloud("cx23"), services: services(4097, 1) });
    expect([tight.price, tight.cheapest?.type, tight.saving]).toEqual([4, "cx33", -2.49]);
    expect(
      totalCost([
        madam,
        priced,
        siteCost({ name: "y", host: existing({ monthlyPrice: 0.1 }), services: services(1, 0.2) }),
      ]),
    ).toEqual({
      total: 6.59,
      unpriced: ["madam"],
    });
  });

  test("the table: an undeclared price says so, the total names what it leaves out and why", () => {
    const text = costSection([
      { name: "master", host: existing(), services: services(5312, 10.65) },
      { name: "lady", host: existing(), services: services(15936, 17.65) },
      { name: "madam", host: hcloud("cx22"), services: services(1280, 4) },
      { name: "x", host: hcloud("cx33"), services: services(1280, 4) },
    ]);
    const rows = text.split("\n").filter((l) => l.startsWith("| "));
    expect(rows.slice(2)).toEqual([
      expect.stringMatching(
        /^\| master +\| existing +\| not declared +\| +\| not declared +\| 10\.65 \/ 5\.19 GiB +\| `cx33` in `fsn1` at 6\.49 \(a move; disk not compared\) +\| unknown: price not declared +\|$/,
      ),
      expect.stringMatching(
        /^\| lady +\| existing +\| not declared +\| +\| not declared +\| 17\.65 \/ 15\.56 GiB +\| `cx43` in `fsn1` at 12\.00 \(a move; disk not compared\) \| unknown: price not declared +\|$/,
      ),
      expect.stringMatching(
        /^\| madam +\| `cx22` in `fsn1` \| 2 \/ 4 GiB +\| 40 GB \/ 20 TB +\| not in the table +\| 4 \/ 1\.25 GiB +\| `cx23` in `fsn1` at 4\.00 +\| unknown: price not in the table \|$/,
      ),
      expect.stringMatching(
        /^\| x +\| `cx33` in `fsn1` \| 4 \/ 8 GiB +\| 80 GB \/ 20 TB +\| 6\.49 +\| 4 \/ 1\.25 GiB +\| `cx33` in `fsn1` at 6\.49 +\| 0\.00 +\|$/,
      ),
      expect.stringMatching(
        /^\| \*\*total\*\* +\| +\| +\| +\| \*\*6\.49\*\* \+ master, lady not declared \+ madam not in the table \|/,
      ),
    ]);
    expect(text).toContain(
      `checked ${HCLOUD_PRICES_CHECKED} against its sources, the newest of ${HCLOUD_PRICES_NEWEST_SOURCE}`,
    );
    expect(text).toContain("the total covers the priced sites only");
    expect(text).toContain("its disk is not known, so not compared: switching is a move to a new server");
    expect(text).toContain("overage is estimated at 0, since no site declares its traffic");
  });
});
