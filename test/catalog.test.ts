import * as fs from "node:fs";
import * as path from "node:path";
import { CATALOG, ROLE_SERVICES, SERVICE_NAMES } from "../catalog";
import { RESTIC_IMAGE, SQLITE_IMAGE } from "../catalog/backup";
import { loadProjectSite } from "../model/estate";
import { loadSite } from "../model/site";
import { mapSource } from "../config/source";
import { servicesSite } from "./fixtures";

const ROOT = path.resolve(__dirname, "..");

/** Every service placed on one site, so every catalog entry resolves once. */
function everything() {
  // The tunnel comes from `mesh.wireguard`, not from the services list.
  // The backup repository is placed by the estate (lady keeps master's), not by a stack file.
  const placed = ["wireguard", "backup-repository"];
  const services = Object.fromEntries(SERVICE_NAMES.filter((n) => !placed.includes(n)).map((n) => [n, true]));
  // headscale and unifi both publish 3478/udp: one site cannot run both, so resolve them apart.
  const sites = [
    { ...services, unifi: false },
    {
      ...Object.fromEntries(SERVICE_NAMES.filter((n) => n !== "backup-repository").map((n) => [n, false])),
      traefik: true,
      unifi: true,
    },
  ];
  const mesh = { wireguard: { address: "10.90.0.9" } };
  const keeper = loadProjectSite(ROOT, "lady").services.filter((x) => x.name === "backup-repository");
  return [
    ...sites.flatMap(
      (s) =>
        loadSite(
          mapSource("Pulumi.all.yaml", "all", servicesSite({ domain: "example.org", services: s, mesh })),
        ).services,
    ),
    ...keeper,
  ].flatMap((x) => x.containers);
}

const NO_PROBE = [
  "alertmanager-ntfy",
  "nextcloud-cron",
  "nextcloud-exporter",
  "nextcloud-redis-exporter",
  "pihole-exporter",
  "portainer",
  "portainer-agent",
  "promtail",
  "uisp-fluentd",
  "uisp-netflow",
  "uisp-siridb",
  "unifi-exporter",
];

describe("the catalog", () => {
  const containers = everything();

  test("every service resolves; every role lists only known services", () => {
    expect(new Set(containers.map((c) => c.service))).toEqual(new Set(SERVICE_NAMES));
    for (const names of Object.values(ROLE_SERVICES))
      for (const n of names) expect(CATALOG).toHaveProperty([n]);
  });

  test("every service a service requires is in the catalog", () => {
    for (const def of Object.values(CATALOG) as { requires?: readonly string[] }[]) {
      for (const r of def.requires ?? []) expect(SERVICE_NAMES).toContain(r);
    }
  });

  test("every image has an exact version tag; digests, where given, are sha256", () => {
    for (const c of containers) {
      expect([c.name, c.image]).toEqual([
        c.name,
        expect.stringMatching(/^[a-z0-9.-]+\/[a-z0-9._/-]+:[A-Za-z0-9._-]+(@sha256:[a-f0-9]{64})?$/),
      ]);
      expect(c.image).not.toMatch(/:(latest|stable|main)(@|$)/);
    }
  });

  test("every container has a memory and CPU limit, and a healthcheck or the reason it has none", () => {
    for (const c of containers) {
      expect(c.memoryMb).toBeGreaterThanOrEqual(32);
      expect(c.cpus).toBeGreaterThan(0);
    }
    // An image that cannot run a probe is named here on purpose (the catalog says why in `healthcheck.none`).
    expect(
      containers
        .filter((c) => !c.healthcheck)
        .map((c) => c.name)
        .sort(),
    ).toEqual(NO_PROBE);
  });

  test("Renovate's regex sees every image the catalog uses, so every tag and digest can be bumped", () => {
    const renovate = JSON.parse(fs.readFileSync(path.join(ROOT, "renovate.json"), "utf8"));
    const re = new RegExp(renovate.customManagers[0].matchStrings[0], "g");
    const seen = new Set<string>();
    for (const f of fs.readdirSync(path.join(ROOT, "catalog"))) {
      if (!new RegExp(renovate.customManagers[0].fileMatch[0]).test(`catalog/${f}`)) continue;
      for (const m of fs.readFileSync(path.join(ROOT, "catalog", f), "utf8").matchAll(re)) {
        seen.add(`${m.groups!.depName}:${m.groups!.currentValue}`);
      }
    }
    // The backup job's images are not containers': the catalog names them all the same.
    const jobImages = [RESTIC_IMAGE, SQLITE_IMAGE].map((i) => `${i.repository}:${i.tag}`);
    expect([...seen].sort()).toEqual([...new Set([...containers.map((c) => c.image), ...jobImages])].sort());
  });
});
