import { execFileSync } from "node:child_process";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { fileSource } from "../config/source";
import { loadSite } from "../model/site";
import type { SiteBundle } from "../components";
import { logShippers } from "../render/monitoring";
import { canonicalJson, seal, sealKeyPair } from "../render/seal";
import type { ServiceModel, SiteModel } from "../render/siteModel";
import { deploySite } from "../stacks/site";
import { computedOutputs } from "../test/mocks";
import { ROOT } from "./cli";

/**
 * `npm run bench`: program evaluation under mocks (no engine, no network) for the real stacks and synthetic
 * estates. Each scenario runs in its own process so its peak memory is its own. Prints wall time, peak RSS,
 * resources registered, and the cost per resource, so growth shows as a ratio.
 */

interface Result {
  scenario: string;
  sites: number;
  containers: number;
  resources: number;
  ms: number;
  peakMb: number;
}

const lady = () => loadSite(fileSource(path.join(ROOT, "Pulumi.lady.yaml")));
const master = () => loadSite(fileSource(path.join(ROOT, "Pulumi.master.yaml")));

/** A site of `n` one-container services, cycling through the real catalog's containers under new names. */
function synthetic(site: string, n: number): SiteModel {
  const pool = [...master().services, ...lady().services].flatMap((s) => s.containers);
  const services: ServiceModel[] = Array.from({ length: n }, (_, i) => {
    const c = pool[i % pool.length]!;
    const name = `svc${i}`;
    return {
      name: name as ServiceModel["name"],
      description: `synthetic ${c.name}`,
      part: "site",
      generatedSecrets: [],
      containers: [
        {
          ...c,
          service: name as ServiceModel["name"],
          key: "main",
          name,
          env: Object.fromEntries(Object.entries(c.env).filter(([, v]) => typeof v === "string")),
          secretFiles: {},
          mounts: c.ownedVolumes.map((_v, j) => ({ volume: `${name}-v${j}`, path: `/data${j}` })),
          ownedVolumes: c.ownedVolumes.map((_v, j) => `${name}-v${j}`),
          dependsOn: [],
          networks: c.networks.filter((x) => x === "edge" || x === "metrics"),
        },
      ],
    };
  });
  // No tailnet node among them: the model says so (a MeshNode refuses a node it does not run).
  return { ...lady(), name: site, services, routes: [], networks: ["edge", "metrics"], tailnet: {} };
}

const SCENARIOS: Record<string, () => SiteModel[]> = {
  master: () => [master()],
  lady: () => [lady()],
  "10 sites x 50 services": () => Array.from({ length: 10 }, (_, i) => synthetic(`site${i}`, 50)),
  "50 sites x 50 services": () => Array.from({ length: 50 }, (_, i) => synthetic(`site${i}`, 50)),
};

async function runScenario(scenario: string): Promise<Result> {
  let resources = 0;
  pulumi.runtime.setMocks(
    {
      newResource: (a) => {
        resources++;
        return { id: `${a.name}-id`, state: { ...a.inputs, ...computedOutputs(a.type, a.name) } };
      },
      call: (a) => a.inputs,
    },
    "qui3tly-cloud",
    "bench",
    false,
    "organization",
  );
  let peak = 0;
  const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const t0 = process.hrtime.bigint();
  // Every services site with a sealing key of its own, as `npm run seal-key` makes.
  const pairs = new Map<string, { privateKey: string; publicKey: string }>();
  const models = SCENARIOS[scenario]!().map((m) => {
    if (m.controlPlane === m.name) return m;
    const pair = sealKeyPair();
    pairs.set(m.name, pair);
    return { ...m, mesh: { ...m.mesh, sealPublicKey: pair.publicKey } };
  });
  // What the control plane's stack would hand every other site: its bundle, sealed to it.
  const key = Buffer.alloc(32, 1).toString("base64");
  const secret = Buffer.alloc(32, 9);
  // Tailnet keys by node (the site's node and its egress nodes).
  const nodeKeys = (m: SiteModel) =>
    Object.fromEntries(
      (m.services.find((s) => s.name === "tailscale")?.containers ?? []).map((c) => [
        c.name,
        `key-${c.name}`,
      ]),
    );
  const shippers = new Set(models.flatMap((m) => logShippers(m.estate, m.controlPlane)));
  const bundle = (m: SiteModel): SiteBundle => ({
    meshAuthKeys: nodeKeys(m),
    wireguardPrivateKey: key,
    backup: { repository: `repo-${m.name}`, rest: `rest-${m.name}` },
    hosted: Object.fromEntries(
      m.backup.hosted.map((x) => [x.site, { repository: `repo-${x.site}`, htpasswd: `${x.site}:hash` }]),
    ),
    ...(shippers.has(m.name) ? { logPassword: `logs-${m.name}` } : {}),
  });
  const exported: Record<string, unknown> = {
    sealed: Object.fromEntries(
      models
        .filter((m) => pairs.has(m.name))
        .map((m) => [m.name, seal(canonicalJson(bundle(m)), m.name, pairs.get(m.name)!.publicKey, secret)]),
    ),
    wireguardPublicKeys: Object.fromEntries(models.map((m) => [m.name, key])),
  };
  const fromControlPlane = (k: string) => pulumi.secret(exported[k]);
  const sites = models.map((m) =>
    deploySite(m, {
      configSecret: (k) => pulumi.secret(k),
      controlPlaneOutput: fromControlPlane,
      ...(pairs.has(m.name) ? { sealKey: pairs.get(m.name)!.privateKey } : {}),
    }),
  );
  // A container registers once everything it uses has: all URNs in means the program is evaluated.
  const urns = sites.flatMap((s) => [s.host.ready.urn, ...Object.values(s.containers).map((c) => c.urn)]);
  await new Promise((r) => pulumi.all(urns).apply(r));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  clearInterval(sample);
  peak = Math.max(peak, process.memoryUsage().rss);
  return {
    scenario,
    sites: models.length,
    containers: models.reduce((n, m) => n + m.services.reduce((k, s) => k + s.containers.length, 0), 0),
    resources,
    ms,
    peakMb: peak / 2 ** 20,
  };
}

async function main(): Promise<void> {
  const i = process.argv.indexOf("--scenario");
  if (i >= 0) {
    console.log(JSON.stringify(await runScenario(process.argv[i + 1]!)));
    return;
  }
  const results: Result[] = Object.keys(SCENARIOS).map((s) =>
    JSON.parse(
      execFileSync(process.execPath, [...process.execArgv, __filename, "--scenario", s], {
        encoding: "utf8",
        cwd: ROOT,
      })
        .trim()
        .split("\n")
        .pop()!,
    ),
  );
  const base = results[0]!;
  const perRes = (r: Result) => r.ms / r.resources;
  console.log(
    "scenario                  sites  containers  resources   wall ms  peak MiB  ms/resource  x master/resource",
  );
  for (const r of results) {
    console.log(
      `${r.scenario.padEnd(24)} ${String(r.sites).padStart(6)} ${String(r.containers).padStart(11)} ${String(
        r.resources,
      ).padStart(10)} ${r.ms.toFixed(0).padStart(9)} ${r.peakMb.toFixed(0).padStart(9)} ${perRes(r)
        .toFixed(2)
        .padStart(12)} ${(perRes(r) / perRes(base)).toFixed(2).padStart(18)}`,
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
