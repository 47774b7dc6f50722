import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { testSecrets, withTestSealKey } from "./fixtures";
import { recordResources, valueOf } from "./mocks";
import { Site } from "../components";
import { loadProjectSite } from "../model/estate";
import type { SiteModel } from "../render/siteModel";
import { SITES } from "../scripts/sandbox/sandbox";
import { writeSandboxProject } from "../scripts/sandbox/stackConfig";
import { deploySite } from "../stacks/site";

recordResources();
const ROOT = path.resolve(__dirname, "..");

/** A registered resource: its place in the tree and the aliases it was given. */
interface Node {
  readonly type: string;
  readonly name: string;
  readonly parent?: pulumi.Resource;
  readonly aliases: readonly pulumi.Input<string | pulumi.Alias>[];
  readonly dependsOn: readonly pulumi.Resource[];
  readonly custom: boolean;
}
// Every resource of the Site, itself included: a transformation on it sees each one. (The StackReference a services
// site reads its control plane with is the stack's own, outside the Site, as it always was.)
const nodes = new Map<pulumi.Resource, Node>();
const record: pulumi.ResourceTransformation = (a) => {
  nodes.set(a.resource, {
    type: a.type,
    name: a.name,
    ...(a.opts.parent ? { parent: a.opts.parent } : {}),
    aliases: a.opts.aliases ?? [],
    // The program passes resources, never outputs of them.
    dependsOn: [a.opts.dependsOn ?? []].flat() as pulumi.Resource[],
    // Ours are the components; every other type is a provider's.
    custom: !a.type.startsWith("qcloud:"),
  });
  return undefined;
};

/** Deploys a site under mocks; its resources once every one has registered. */
async function deploy(model: SiteModel): Promise<Node[]> {
  nodes.clear();
  const site = deploySite(withTestSealKey(model), testSecrets(model.name), { transformations: [record] });
  await valueOf(pulumi.all([site.urn, ...[...nodes.keys()].map((r) => r.urn)]));
  return [...nodes.values()];
}

/** `type name` of a node, and of its ancestors down to it. */
const label = (n: Node) => `${n.type.split(":").pop()} ${n.name}`;
function path_(n: Node): string {
  const parent = n.parent && nodes.get(n.parent);
  return parent ? `${path_(parent)} > ${label(n)}` : label(n);
}

describe.each(["master", "lady"])("%s's resource tree", (site) => {
  let all: Node[];
  beforeAll(async () => {
    all = await deploy(loadProjectSite(ROOT, site));
  });

  test("the Site is the root; its host, mesh node, monitoring and each service are its children", () => {
    expect(all.filter((n) => !n.parent).map(label)).toEqual([`Site ${site}`]);
    const children = all.filter((n) => n.parent && nodes.get(n.parent)!.type === "qcloud:site:Site");
    const components = children.filter((n) => !n.custom).map(label);
    expect(components).toEqual(
      expect.arrayContaining([`Host ${site}`, `MeshNode ${site}`, `Monitoring ${site}`, `Backups ${site}`]),
    );
    // Networks and images are shared by the services: the Site's own.
    expect([...new Set(children.filter((n) => n.custom).map((n) => n.type))].sort()).toEqual([
      "docker:index/network:Network",
      "docker:index/remoteImage:RemoteImage",
    ]);
  });

  test("every container sits in its service, which sits where the catalog puts it", () => {
    const paths = all.filter((n) => n.type === "docker:index/container:Container").map(path_);
    const expected = {
      master: [
        "Site master > Tailnet master > Service master-headscale > Container master-headscale",
        "Site master > Monitoring master > Service master-prometheus > Container master-prometheus",
        "Site master > Monitoring master > Service master-promtail > Container master-promtail",
        "Site master > MeshNode master > Service master-tailscale > Container master-tailscale",
        "Site master > MeshNode master > Service master-wireguard > Container master-wireguard",
        "Site master > Service master-traefik > Container master-traefik",
        "Site master > Service master-pihole > Container master-pihole",
      ],
      lady: [
        "Site lady > Service lady-nextcloud > Container lady-nextcloud-db",
        "Site lady > Service lady-nextcloud > Container lady-nextcloud",
        "Site lady > Monitoring lady > Service lady-node-exporter > Container lady-node-exporter",
        "Site lady > MeshNode lady > Service lady-tailscale > Container lady-tailscale",
        "Site lady > MeshNode lady > Service lady-tailscale > Container lady-tailscale-egress-backup",
        "Site lady > Service lady-backup-repository > Container lady-backup-repository",
      ],
    }[site]!;
    expect(paths).toEqual(expect.arrayContaining(expected));
    // Every container, volume and generated password is a service's: none is left at the Site.
    for (const n of all.filter((x) =>
      [
        "docker:index/container:Container",
        "docker:index/volume:Volume",
        "random:index/randomPassword:RandomPassword",
      ].includes(x.type),
    )) {
      const owner = nodes.get(n.parent!)!;
      // The key components' passwords (backups, logs) are theirs.
      expect([path_(n), owner.type]).toEqual([
        path_(n),
        expect.stringMatching(/^qcloud:(service:Service|backup:BackupKeys|monitoring:LogKeys)$/),
      ]);
    }
  });

  test("each service sits where the catalog's part puts it", () => {
    const model = loadProjectSite(ROOT, site);
    const where = { tailnet: "Tailnet", "mesh-node": "MeshNode", monitoring: "Monitoring", site: "Site" };
    const placed = all
      .filter((n) => n.type === "qcloud:service:Service")
      .map((n) => `${n.name} ${label(nodes.get(n.parent!)!).split(" ")[0]}`)
      .sort();
    expect(placed).toEqual(model.services.map((s) => `${site}-${s.name} ${where[s.part]}`).sort());
  });

  test("what must wait does: the backup job for every container, Headscale's keys for Headscale, the address for the node, the UDP flows for the containers publishing UDP", () => {
    const named = (type: string) => new Map(all.filter((n) => n.type === type).map((n) => [n.name, n]));
    const containers = named("docker:index/container:Container");
    const on = (n: Node) => n.dependsOn.map((r) => label(nodes.get(r)!)).sort();
    const backups = named("qcloud:backup:Backups").get(site)!;
    expect(on(backups)).toEqual(
      [`Command ${site}-docker`, ...[...containers.keys()].map((c) => `Container ${c}`)].sort(),
    );
    const commands = named("command:remote:Command");
    expect(on(commands.get(`${site}-tailnet-address`)!)).toEqual([`Container ${site}-tailscale`]);
    // Peers' stale UDP flows are dropped once the containers that publish UDP ports are (re)created.
    const udp = {
      master: ["headscale", "tailscale"],
      lady: ["tailscale", "uisp-netflow", "unifi"],
    }[site]!;
    expect(on(commands.get(`${site}-udp-flows`)!)).toEqual(
      [`Command ${site}-docker`, ...udp.map((c) => `Container ${site}-${c}`)].sort(),
    );
    const keys = [...commands.values()].filter((n) => /-key-/.test(n.name));
    // Master's pre-auth keys: each site's node and each of its egress nodes (three a site, for master, lady, madam).
    expect(keys.length).toBe(site === "master" ? 9 : 0);
    for (const k of keys) expect([k.name, on(k)]).toEqual([k.name, ["Container master-headscale"]]);
  });

  test("every child's name is its parent's, or its parent's and a key", () => {
    const misnamed = all
      .filter((n) => n.parent)
      .filter((n) => {
        const parent = nodes.get(n.parent!)!.name;
        return n.name !== parent && !n.name.startsWith(`${parent}-`);
      })
      .map(path_);
    expect(misnamed).toEqual([]);
  });

  test("the control plane's keys are in its tailnet and its monitoring", () => {
    const types = all.filter((n) => !n.custom).map(path_);
    if (site === "master") {
      expect(types).toEqual(
        expect.arrayContaining([
          "Site master > Tailnet master > Headscale master",
          "Site master > Tailnet master > WireguardKeys master",
          "Site master > Monitoring master > LogKeys master",
          "Site master > BackupKeys master",
          "Site master > SealedBundles master",
        ]),
      );
    } else {
      expect(types.filter((t) => /Tailnet|Headscale|Keys|Sealed/.test(t))).toEqual([]);
    }
  });
});

test("a Site's outputs are typed and resolve", async () => {
  const model = withTestSealKey(loadProjectSite(ROOT, "lady"));
  const site = deploySite(model, testSecrets("lady"));
  expect(site).toBeInstanceOf(Site);
  const [containers, address] = await valueOf(
    pulumi.all([site.outputs.containers, site.outputs.mesh.address]),
  );
  expect(containers.nextcloud).toEqual(
    expect.arrayContaining(["nextcloud", "nextcloud-db", "nextcloud-redis"]),
  );
  expect(address).toBe("100.64.0.9");
  expect(site.outputs.counts).toEqual({
    services: model.services.length,
    containers: Object.values(containers).flat().length,
  });
});

/** A URN without its stack and project: `<type chain>::<name>`. */
const local = (urn: string) => urn.split("::").slice(2).join("::");
/** The local URN of a resource of `type` and `name` under the resource of local URN `parent`. */
const under = (parent: string | undefined, type: string, name: string) =>
  `${parent === undefined ? "" : `${parent.split("::")[0]!}$`}${type}::${name}`;

/**
 * The URNs (local) a node answers to, in the order the engine tries them against the old state: its own under its
 * parent's URN, then under each of its parent's aliases, then its aliases
 * (https://www.pulumi.com/docs/iac/concepts/options/aliases/). An alias that names its `parent` is taken under that
 * parent alone (`undefined` or the root stack: none; a URN: that one); one that does not is taken under every URN of
 * the node's parent. What this does not model: an explicitly parented alias multiplied by that parent's own aliases,
 * and aliases that rename a parent's prefix. The program uses neither (components/aliases.ts).
 */
async function identities(n: Node): Promise<string[]> {
  const parent = n.parent && nodes.get(n.parent);
  const parents = parent ? await identities(parent) : [undefined];
  const out = parents.map((p) => under(p, n.type, n.name));
  for (const input of n.aliases) {
    const a = await valueOf(pulumi.output(input));
    if (typeof a === "string") {
      out.push(local(a));
      continue;
    }
    const type = (a.type as string | undefined) ?? n.type;
    const name = (a.name as string | undefined) ?? n.name;
    if (!("parent" in a)) {
      out.push(...parents.map((q) => under(q, type, name)));
      continue;
    }
    const p: unknown =
      a.parent === undefined || a.parent === pulumi.rootStackResource
        ? undefined
        : await valueOf(pulumi.output(a.parent as never));
    if (p === undefined) out.push(under(undefined, type, name));
    else if (typeof p === "string") out.push(under(local(p), type, name));
    else throw new Error(`${path_(n)}: an alias parented to a resource is not modelled here`);
  }
  return [...new Set(out)];
}

describe("a stack the previous release converged upgrades with nothing real deleted or replaced, and one command created", () => {
  // The sandbox's twins of the stack files, as the e2e converges them: the fixtures are their states.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "upgrade-"));
  afterAll(() => fs.rmSync(dir, { recursive: true }));
  const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFIdRTPTw6X0umMmBZzdePQhA3OukWrBjACn5HI8HwQR";
  writeSandboxProject(
    dir,
    ROOT,
    Object.fromEntries(Object.entries(SITES).map(([site, port]) => [site, { port, hostKey: KEY }])),
  );

  test.each(Object.keys(SITES))(
    "%s: each resource of its state is matched by one of this program's, by URN or alias",
    async (site) => {
      // The states of the sandbox stacks the previous release converged (test/fixtures/upgrade/release.ts). When a
      // later change adds a real resource, the last check names it: the fixtures then move to that release.
      const fixture = JSON.parse(
        fs.readFileSync(path.join(__dirname, "fixtures", "upgrade", `${site}.json`), "utf8"),
      ) as { urn: string; custom: boolean }[];
      const old = fixture
        // The engine's own (the stack, default providers) and the StackReference stay where they were: the stack's.
        .filter(
          (r) => !/^pulumi:(pulumi:Stack|pulumi:StackReference|providers:[a-z]+::default)/.test(local(r.urn)),
        )
        .map((r) => ({ ...r, urn: local(r.urn) }));
      const all = await deploy(loadProjectSite(dir, site));
      const matches = new Map<string, string[]>();
      const created: string[] = [];
      const known = new Set(old.map((r) => r.urn));
      for (const n of all) {
        // The engine takes the first URN of the old state it finds, in this order; any other would be deleted.
        const hits = (await identities(n)).filter((u) => known.has(u));
        expect([path_(n), hits.length <= 1 ? "one at most" : hits]).toEqual([path_(n), "one at most"]);
        for (const u of hits) matches.set(u, [...(matches.get(u) ?? []), path_(n)]);
        if (hits.length === 0) created.push(n.custom ? path_(n) : n.type);
      }
      // Nothing of the old state is left without its resource (a delete) or claimed twice.
      expect(
        old.filter((r) => matches.get(r.urn)?.length !== 1).map((r) => [r.urn, matches.get(r.urn)]),
      ).toEqual([]);
      // The only new resources are the new components, and one real one since: the command that drops peers' stale
      // UDP flows (render/host.ts renderUdpFlowsFlush), which changes nothing the state held.
      const flows = `Site ${site} > Host ${site} > Command ${site}-udp-flows`;
      expect([...new Set(created)].sort()).toEqual([
        flows,
        "qcloud:mesh:MeshNode",
        ...(site === "master" ? ["qcloud:mesh:Tailnet"] : []),
        "qcloud:monitoring:Monitoring",
        "qcloud:service:Service",
      ]);
      expect(old.filter((r) => r.custom).length).toBe(
        all.filter((n) => n.custom && path_(n) !== flows).length,
      );
    },
  );
});
