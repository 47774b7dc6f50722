import * as pulumi from "@pulumi/pulumi";
import YAML from "yaml";
import { committed, testSecrets, withTestSealKey } from "./fixtures";
import { recordResources, valueOf } from "./mocks";
import { mapSource } from "../config/source";
import { loadEstate } from "../model/estate";
import { loadSite } from "../model/site";
import { repositoryUrl } from "../render/backup";
import type { Estate } from "../render/estate";
import { renderSiteFiles } from "../render/site";
import type { SiteModel } from "../render/siteModel";
import { renderWireguardConfig } from "../render/wireguard";
import type { SiteOutputs } from "../components";
import { deploySite } from "../stacks/site";

/**
 * A site's `domain` names its routes; its name on the tailnet is Headscale's, on the control plane's domain. An
 * estate of two domains: every mesh name the program renders or outputs must be the one MagicDNS answers.
 */

const { recorded, capture } = recordResources();

// master (the control plane) on qui3tly.cloud; lady on a domain of her own.
const SOURCES = [
  mapSource("Pulumi.master.yaml", "master", committed("master", {})),
  mapSource("Pulumi.lady.yaml", "lady", committed("lady", { domain: "lady.example.org" })),
];
const estate: Estate = loadEstate(SOURCES);
const master = loadSite(SOURCES[0]!, estate);
const lady = loadSite(SOURCES[1]!, estate);
const files = { master: renderSiteFiles(master), lady: renderSiteFiles(lady) };
const file = (site: keyof typeof files, p: string) => {
  const f = files[site][p];
  if (f === undefined) throw new Error(`${site} renders no \`${p}\``);
  return f;
};

describe("mesh names on a tailnet whose sites have different domains", () => {
  test("the sites keep their own domains for their routes", () => {
    expect(lady.routes.find((r) => r.service === "nextcloud" && r.name === "web")!.host).toBe(
      "cloud.lady.example.org",
    );
    expect(master.routes.find((r) => r.service === "headscale" && r.name === "api")!.host).toBe(
      "headscale.qui3tly.cloud",
    );
  });

  test("MagicDNS (Headscale's base_domain) is the control plane's domain", () => {
    expect(YAML.parse(file("master", "files/headscale/etc/headscale/config.yaml")).dns.base_domain).toBe(
      "mesh.qui3tly.cloud",
    );
  });

  test("the estate names every site under it", () => {
    expect(estate.sites.map((s) => [s.name, s.meshHost])).toEqual([
      ["lady", "lady.mesh.qui3tly.cloud"],
      ["master", "master.mesh.qui3tly.cloud"],
    ]);
  });

  test("Prometheus scrapes lady's exporters at lady.mesh.qui3tly.cloud", () => {
    const prometheus = YAML.parse(file("master", "files/prometheus/etc/prometheus/prometheus.yml"));
    const targets = (
      prometheus.scrape_configs as { job_name: string; static_configs: { targets: string[] }[] }[]
    )
      .filter((j) => j.job_name.startsWith("lady/"))
      .flatMap((j) => j.static_configs.flatMap((c) => c.targets))
      .sort();
    const ports = estate.sites.find((s) => s.name === "lady")!.metrics.map((m) => m.port);
    expect(targets).toEqual(ports.map((p) => `lady.mesh.qui3tly.cloud:${p}`).sort());
    expect(targets.length).toBeGreaterThan(5);
  });

  test("lady's log shipper pushes to master.mesh.qui3tly.cloud", () => {
    const promtail = YAML.parse(file("lady", "files/promtail/etc/promtail/config.yml"));
    expect(promtail.clients.map((c: { url: string }) => c.url)).toEqual([
      "http://master.mesh.qui3tly.cloud:3100/loki/api/v1/push",
    ]);
  });

  test("each site's backup repository is at its keeper's name on the control plane's domain", () => {
    expect([lady.backup.target, master.backup.target]).toEqual(["master", "lady"]);
    expect(repositoryUrl(estate, "lady", "master")).toBe(
      "rest:http://lady@master.mesh.qui3tly.cloud:8000/lady/",
    );
    expect(repositoryUrl(estate, "master", "lady", "pw")).toBe(
      "rest:http://master:pw@lady.mesh.qui3tly.cloud:8000/master/",
    );
  });

  test("no rendered file of either site names a host under `mesh.<lady's domain>`", () => {
    const names = new Set<string>();
    for (const site of Object.values(files)) {
      for (const content of Object.values(site)) {
        for (const m of content.matchAll(/[a-z0-9-]+\.mesh\.[a-z0-9.-]*[a-z0-9]/g)) names.add(m[0]);
      }
    }
    expect([...names].sort()).toEqual(["lady.mesh.qui3tly.cloud", "master.mesh.qui3tly.cloud"]);
  });

  test("the WireGuard tunnel's endpoints are the hosts' public addresses, never a tailnet name", () => {
    // The tunnel must work while the tailnet is down: its peers are reached outside it.
    const conf = renderWireguardConfig(estate, "lady", {
      privateKey: "<lady's key>",
      publicKeys: { master: "<master's key>" },
    });
    expect(conf.split("\n").filter((l) => l.startsWith("Endpoint = "))).toEqual([
      "Endpoint = master.qui3tly.cloud:51820",
    ]);
  });
});

/** Deploys a model under mocks and returns its outputs, once every input has resolved. */
async function outputsOf(model: SiteModel): Promise<SiteOutputs> {
  recorded.length = 0;
  // A services site opens its bundle from the mocked stack reference with its test key.
  const site = deploySite(withTestSealKey(model), testSecrets(model.name), { transformations: [capture] });
  await valueOf(pulumi.all([site.host.ready.urn, ...Object.values(site.containers).map((c) => c.urn)]));
  return site.outputs;
}

describe("a site's stack outputs on a tailnet whose sites have different domains", () => {
  test("lady's mesh name and backup repository are on the control plane's domain", async () => {
    const out = await outputsOf(lady);
    expect([out.mesh.name, out.mesh.loginServer, out.backup?.repository]).toEqual([
      "lady.mesh.qui3tly.cloud",
      "https://headscale.qui3tly.cloud",
      "rest:http://lady@master.mesh.qui3tly.cloud:8000/lady/",
    ]);
  });

  test("master's too", async () => {
    const out = await outputsOf(master);
    expect([out.mesh.name, out.backup?.repository]).toEqual([
      "master.mesh.qui3tly.cloud",
      "rest:http://master@lady.mesh.qui3tly.cloud:8000/master/",
    ]);
  });
});
