import { HCLOUD_PRICES_READ, HCLOUD_PRICES_SOURCE, HCLOUD_SERVER_TYPES } from "../config/hcloudTypes";
import type { HostConfig } from "../config/schema";
import { cheapestFit, siteCost, totalCost } from "../model/cost";
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
  test(`was read at most ${MAX_PRICE_AGE_DAYS} days ago`, () => {
    const age = (Date.now() - Date.parse(`${HCLOUD_PRICES_READ}T00:00:00Z`)) / 86_400_000;
    if (!(age <= MAX_PRICE_AGE_DAYS))
      throw new Error(
        `config/hcloudTypes.ts: HCLOUD_PRICES_READ is ${HCLOUD_PRICES_READ}, ${Math.floor(age)} days ago (at most ${MAX_PRICE_AGE_DAYS}): read the prices again from ${HCLOUD_PRICES_SOURCE}, update the table and its date`,
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
  test.each<[string, number, number, "x86" | "arm", "fsn1" | "ash" | undefined, string | undefined]>([
    ["madam's agents (1280 MiB, 4 CPUs)", 1280, 4, "x86", "fsn1", "cx23"],
    ["master's (10.65 CPUs: past 4x of a cx23's 2)", 5312, 10.65, "x86", undefined, "cx33"],
    ["lady's (15936 MiB: past 1.25x of 8 GB)", 15936, 17.65, "x86", undefined, "cx43"],
    ["exactly 1.25x of 4 GB", 5120, 1, "x86", "fsn1", "cx23"],
    ["just past it", 5121, 1, "x86", "fsn1", "cx33"],
    ["more than the largest priced type holds", 50_000, 1, "x86", "fsn1", undefined],
    ["in the US: no cx, and no cpx price in the table", 1024, 1, "x86", "ash", undefined],
    ["on Arm: no cax price in the table", 1024, 1, "arm", "fsn1", undefined],
  ])("%s -> %s", (_name, memoryMb, cpus, arch, location, type) => {
    expect(cheapestFit({ memoryMb, cpus }, arch, location)?.type).toBe(type);
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
    const priced = siteCost({ name: "x", host: hcloud("cx33"), services: services(1280, 4) });
    expect([priced.price, priced.saving]).toEqual([6.49, 2.49]);
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

  test("the table: an undeclared price says so, the total names what it leaves out", () => {
    const text = costSection([
      { name: "master", host: existing(), services: services(5312, 10.65) },
      { name: "madam", host: hcloud("cx22"), services: services(1280, 4) },
    ]);
    const rows = text.split("\n").filter((l) => l.startsWith("| "));
    expect(rows.slice(2)).toEqual([
      expect.stringMatching(
        /^\| master +\| existing +\| not declared +\| +\| not declared +\| 10\.65 \/ 5\.19 GB +\| `cx33` in `fsn1` at 6\.49 \| unknown \(no current price\) +\|$/,
      ),
      expect.stringMatching(
        /^\| madam +\| `cx22` in `fsn1` \| 2 \/ 4 GB +\| 40 GB \/ 20 TB +\| not in the table +\| 4 \/ 1\.25 GB +\| `cx23` in `fsn1` at 4\.00 +\| unknown \(no current price\) \|$/,
      ),
      expect.stringMatching(/^\| \*\*total\*\* +\| +\| +\| +\| \*\*0\.00\*\* \+ master, madam \|/),
    ]);
    expect(text).toContain("overage is estimated at 0, since no site declares its traffic");
  });
});
