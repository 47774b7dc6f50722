import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import YAML from "yaml";
import { controlPlaneSite, servicesSite } from "./fixtures";
import { recordResources, valueOf, type Recorded } from "./mocks";
import { ConfigError } from "../config/errors";
import { SITE_KEY } from "../config/schema";
import { mapSource } from "../config/source";
import { loadEstate, siteOf } from "../model/estate";
import { loadSite } from "../model/site";
import type { Estate } from "../render/estate";
import { deploySite } from "../stacks/site";

/** What only the whole estate shows: each refusal names the file and the field, with its exact message. */

const { recorded, capture } = recordResources();
const ROOT = path.resolve(__dirname, "..");
const SITE = SITE_KEY;

type Stacks = Record<string, Record<string, unknown>>;
const sourcesOf = (stacks: Stacks) =>
  Object.entries(stacks).map(([name, config]) => mapSource(`Pulumi.${name}.yaml`, name, config));
/** The estate of these stack configs (`master`, the control plane, and `lady` unless given). */
const estateOf = (stacks: Stacks): Estate =>
  loadEstate(sourcesOf({ master: controlPlaneSite(), lady: servicesSite(), ...stacks }));
/** The refusal's whole message: every problem, one a line. */
function refusal(stacks: Stacks): string {
  try {
    estateOf(stacks);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error("accepted");
}

const hcloud = {
  kind: "hcloud",
  serverType: "cx22",
  location: "fsn1",
  sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO9 ops@laptop"],
  sshSources: ["0.0.0.0/0", "::/0"],
};
const flow = (from: string) => ({ from, service: "postfix", to: "site:master", ports: [25], why: "mail" });

// model/estate.ts checkEstate: eleven checks, each with every message it can give.
const ESTATE_ERRORS: [string, Stacks, string][] = [
  [
    "1. a control plane that is no site of the estate",
    { lady: servicesSite({ controlPlane: "nowhere" }) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.controlPlane`: expected a site of the estate; there is no `Pulumi.nowhere.yaml`",
  ],
  [
    "2. a control plane that is a services site",
    { madam: servicesSite({ controlPlane: "lady", host: { kind: "existing", address: "203.0.113.30" } }) },
    "Pulumi.madam.yaml: `qui3tly-cloud:site.controlPlane`: expected a site with role `control-plane`; `lady` has role `services`",
  ],
  [
    "3. admins on a services site",
    { lady: servicesSite({ mesh: { admins: ["alice@example.org"] } }) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.mesh.admins`: expected it on the control plane only (`master`): it owns the tailnet policy",
  ],
  [
    "3. flows on a services site",
    { lady: servicesSite({ mesh: { flows: [flow("site:lady")] } }) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.mesh.flows`: expected it on the control plane only (`master`): it owns the tailnet policy",
  ],
  [
    "3. Headscale's port on a services site",
    { lady: servicesSite({ mesh: { headscalePort: 18080 } }) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.mesh.headscalePort`: expected it on the control plane only (`master`): it owns the tailnet policy",
  ],
  [
    "4. a flow from a site that is not in the estate",
    { master: controlPlaneSite({ mesh: { flows: [flow("site:nowhere")] } }) },
    "Pulumi.master.yaml: `qui3tly-cloud:site.mesh.flows[0].from`: expected a site of the estate (site:lady, site:master)",
  ],
  [
    "5. a backup target that is no site",
    { lady: servicesSite({ backup: { target: "nowhere" } }) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.backup.target`: expected a site of the estate (lady, master)",
  ],
  [
    "5. a backup target that is the site itself",
    { lady: servicesSite({ backup: { target: "lady" } }) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.backup.target`: expected another site: a backup on the site it protects is lost with it",
  ],
  [
    "5. a backup target on another tailnet",
    {
      other: controlPlaneSite({
        domain: "other.example",
        host: { kind: "existing", address: "203.0.113.90" },
      }),
      lady: servicesSite({ backup: { target: "other" } }),
    },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.backup.target`: expected a site of the same tailnet (control plane `master`); `other`'s is `other`",
  ],
  [
    "6. two sites on one tunnel address",
    {
      master: controlPlaneSite({ mesh: { wireguard: { address: "10.90.0.1" } } }),
      lady: servicesSite({ mesh: { wireguard: { address: "10.90.0.1" } } }),
    },
    "Pulumi.master.yaml: `qui3tly-cloud:site.mesh.wireguard.address`: `10.90.0.1` is already site `lady`'s tunnel address; expected one address per site",
  ],
  [
    "7. two tunnels on new servers, neither with an endpoint",
    {
      lady: servicesSite(
        { host: hcloud, mesh: { wireguard: { address: "10.90.0.2" } } },
        { "hcloud:token": { secure: "v1:abc" } },
      ),
      madam: servicesSite(
        { host: hcloud, mesh: { wireguard: { address: "10.90.0.3" } } },
        { "hcloud:token": { secure: "v1:abc" } },
      ),
    },
    "Pulumi.madam.yaml: `qui3tly-cloud:site.mesh.wireguard.endpoint`: expected the address peers reach this site on: neither its server's address nor `lady`'s is known before they exist, so neither could start their tunnel; set it here or in Pulumi.lady.yaml at `qui3tly-cloud:site.mesh.wireguard.endpoint`",
  ],
  [
    "8. one host name routed by two sites (nextcloud on lady and on madam)",
    {
      lady: servicesSite({ services: { nextcloud: true } }),
      madam: servicesSite({
        host: { kind: "existing", address: "203.0.113.30" },
        services: { nextcloud: true },
      }),
    },
    [
      "Pulumi.madam.yaml: `qui3tly-cloud:site.services.nextcloud.routes.web.host`: `cloud.qui3tly.cloud` is already routed by site `lady` (Pulumi.lady.yaml at `qui3tly-cloud:site.services.nextcloud.routes.web.host`); expected a host name of this site's own: set `host` here, or run the service on one site only",
      "Pulumi.madam.yaml: `qui3tly-cloud:site.services.nextcloud.routes.office.host`: `office.qui3tly.cloud` is already routed by site `lady` (Pulumi.lady.yaml at `qui3tly-cloud:site.services.nextcloud.routes.office.host`); expected a host name of this site's own: set `host` here, or run the service on one site only",
    ].join("\n"),
  ],
  [
    "9. two stacks on one server (a copied stack file)",
    { madam: servicesSite({ services: { nextcloud: false } }) },
    "Pulumi.madam.yaml: `qui3tly-cloud:site.host.address`: `203.0.113.20:22` is site `lady`'s server too (Pulumi.lady.yaml at `qui3tly-cloud:site.host.address`); expected a server of each site's own: two stacks on one server remove each other's containers",
  ],
  [
    "10. a tailnet route that overlaps another site's tunnel subnet",
    {
      master: controlPlaneSite({
        mesh: { wireguard: { address: "10.90.0.1", subnets: ["192.168.10.0/24"] } },
      }),
      lady: servicesSite({ mesh: { routes: ["192.168.0.0/16"] } }),
    },
    "Pulumi.master.yaml: `qui3tly-cloud:site.mesh.wireguard.subnets[0]`: `192.168.10.0/24` overlaps `192.168.0.0/16`, routed by site `lady` (Pulumi.lady.yaml at `qui3tly-cloud:site.mesh.routes[0]`); expected a range no other site routes",
  ],
  [
    "11. a tunnel address inside another site's routed range",
    {
      master: controlPlaneSite({ mesh: { wireguard: { address: "10.90.0.1" } } }),
      lady: servicesSite({ mesh: { routes: ["10.90.0.0/24"] } }),
    },
    "Pulumi.master.yaml: `qui3tly-cloud:site.mesh.wireguard.address`: `10.90.0.1` is in `10.90.0.0/24`, routed by site `lady` (Pulumi.lady.yaml at `qui3tly-cloud:site.mesh.routes[0]`); expected a tunnel address outside every routed range",
  ],
  [
    "11. a tunnel address inside the tailnet's range",
    { master: controlPlaneSite({ mesh: { wireguard: { address: "100.64.0.1" } } }) },
    "Pulumi.master.yaml: `qui3tly-cloud:site.mesh.wireguard.address`: `100.64.0.1` is in the tailnet's range (100.64.0.0/10); expected a tunnel address outside it, such as 10.90.0.0/24",
  ],
];

describe("estate-level config errors name the file and the field", () => {
  test("the base estate is accepted", () => {
    expect(estateOf({}).sites.map((s) => s.name)).toEqual(["lady", "master"]);
  });

  test.each(ESTATE_ERRORS)("%s", (_name, stacks, message) => {
    expect(refusal(stacks)).toBe(message);
  });

  test("a stack that is not in the estate", () => {
    expect(() => siteOf(estateOf({}), "madam")).toThrow(
      new ConfigError([
        {
          file: "Pulumi.madam.yaml",
          path: "(file)",
          message: "expected the stack file of site `madam` next to the others (known: lady, master)",
        },
      ]),
    );
    try {
      siteOf(estateOf({}), "madam");
    } catch (e) {
      expect((e as Error).message).toBe(
        "Pulumi.madam.yaml: `(file)`: expected the stack file of site `madam` next to the others (known: lady, master)",
      );
    }
  });
});

// What a role, or the other sites, cannot do without: refused before any resource, with the file and the field.
/** `null`: the estate has no such stack. */
const REQUIRED: [string, Record<string, Record<string, unknown> | null>, string][] = [
  [
    "a control plane without Headscale",
    { master: controlPlaneSite({ services: { headscale: false } }) },
    "Pulumi.master.yaml: `qui3tly-cloud:site.services.headscale`: expected `headscale` on this site: a control plane is its tailnet's Headscale, which makes every site's pre-auth key (its own too); do not set it to `false`",
  ],
  [
    "a lone control plane without Headscale",
    { master: controlPlaneSite({ services: { headscale: false, tailscale: false } }), lady: null },
    "Pulumi.master.yaml: `qui3tly-cloud:site.services.headscale`: expected `headscale` on this site: a control plane is its tailnet's Headscale, which makes every site's pre-auth key (its own too); do not set it to `false`",
  ],
  [
    "a control plane whose own shipper has no Loki",
    { master: controlPlaneSite({ services: { loki: false, grafana: false } }) },
    "Pulumi.master.yaml: `qui3tly-cloud:site.services.loki`: expected `loki` on this site: a control plane's `promtail` pushes to its own Loki; do not set it to `false`, or set `promtail` to `false` too",
  ],
  [
    "Prometheus without its probe exporter",
    { master: controlPlaneSite({ services: { blackbox: false } }) },
    "Pulumi.master.yaml: `qui3tly-cloud:site.services.blackbox`: expected `blackbox` on this site: Prometheus probes every route through it; do not set it to `false`, or set `prometheus` to `false` too",
  ],
  [
    "a control plane without Loki while another site ships logs to it",
    { master: controlPlaneSite({ services: { loki: false, grafana: false, promtail: false } }) },
    "Pulumi.master.yaml: `qui3tly-cloud:site.services.loki`: expected `loki` on the control plane: the log shippers (`promtail`) of `lady` push to it; do not set it to `false`, or set their `promtail` to `false` too",
  ],
  [
    "a services site without its tailnet node",
    { lady: servicesSite({ services: { tailscale: false } }) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.services.tailscale`: expected the tailnet node (`tailscale`): it carries `master`'s scrapes of its exporters, its logs to `master`'s Loki, its backups to `master`, the backups of `master`; do not set it to `false`",
  ],
  [
    "a control plane without its tailnet node",
    { master: controlPlaneSite({ services: { tailscale: false } }) },
    "Pulumi.master.yaml: `qui3tly-cloud:site.services.tailscale`: expected the tailnet node (`tailscale`): it carries its Prometheus' scrapes of `lady`, the logs of `lady` to its Loki, its backups to `lady`, the backups of `lady`; do not set it to `false`",
  ],
  [
    "a services site that only backs up, without its tailnet node",
    {
      master: controlPlaneSite({ services: { prometheus: false, grafana: false, alertmanager: false } }),
      lady: servicesSite({ services: { tailscale: false, promtail: false } }),
    },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.services.tailscale`: expected the tailnet node (`tailscale`): it carries its backups to `master`, the backups of `master`; do not set it to `false`",
  ],
];

describe("a service the role or the estate needs cannot be removed", () => {
  test.each(REQUIRED)("%s", (_name, stacks, message) => {
    const all = { master: controlPlaneSite(), lady: servicesSite(), ...stacks };
    const present = Object.fromEntries(
      Object.entries(all).filter((e): e is [string, Record<string, unknown>] => e[1] !== null),
    );
    let error: unknown;
    try {
      loadEstate(sourcesOf(present));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe(message);
  });

  test("npm run check refuses the control plane without Headscale (it used to pass, then crash in the stack)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "check-headscale-"));
    const master = YAML.parse(fs.readFileSync(path.join(ROOT, "Pulumi.master.yaml"), "utf8"));
    master.config[SITE].services = { headscale: false };
    fs.writeFileSync(path.join(dir, "Pulumi.master.yaml"), YAML.stringify(master));
    fs.copyFileSync(path.join(ROOT, "Pulumi.lady.yaml"), path.join(dir, "Pulumi.lady.yaml"));
    const r = spawnSync(
      "npx",
      [
        "ts-node",
        "--transpile-only",
        "scripts/check.ts",
        path.join(dir, "Pulumi.master.yaml"),
        path.join(dir, "Pulumi.lady.yaml"),
      ],
      { cwd: ROOT, encoding: "utf8" },
    );
    fs.rmSync(dir, { recursive: true });
    expect([r.status, r.stdout, r.stderr]).toEqual([
      1,
      "",
      "FAIL Pulumi.master.yaml: `qui3tly-cloud:site.services.headscale`: expected `headscale` on this site: a control plane is its tailnet's Headscale, which makes every site's pre-auth key (its own too); do not set it to `false`\n",
    ]);
  });
});

describe("the containers the stack wires to the tailnet are the model's facts", () => {
  test("the model names Headscale's container on the control plane and each site's node", () => {
    const estate = estateOf({});
    const [master, lady] = ["master", "lady"].map((n) =>
      loadSite(
        sourcesOf({ master: controlPlaneSite(), lady: servicesSite() }).find((s) => s.stack === n)!,
        estate,
      ),
    );
    expect([master!.tailnet, lady!.tailnet]).toEqual([
      { headscale: "headscale", node: "tailscale" },
      { node: "tailscale" },
    ]);
  });

  /** Deploys a model under mocks and returns what it registered. */
  async function deploy(config: Record<string, unknown>): Promise<Recorded[]> {
    recorded.length = 0;
    const model = loadSite(mapSource("Pulumi.master.yaml", "master", config));
    const site = deploySite(
      model,
      { configSecret: (k) => pulumi.secret(`cfg-${k}`) },
      { transformations: [capture] },
    );
    await valueOf(
      pulumi.all([
        site.host.ready.urn,
        site.outputs.mesh.address,
        ...Object.values(site.containers).map((c) => c.urn),
      ]),
    );
    return [...recorded];
  }

  test("a lone control plane without a node: Headscale still makes its key, no address is read", async () => {
    const res = await deploy(controlPlaneSite({ services: { tailscale: false } }));
    const commands = res.filter((r) => r.type === "command:remote:Command").map((r) => r.name);
    expect(commands).toContain("master-key-master");
    expect(commands.filter((n) => n.endsWith("-tailnet-address"))).toEqual([]);
    const containers = res
      .filter((r) => r.type === "docker:index/container:Container")
      .map((r) => r.inputs.name);
    expect(containers).toContain("headscale");
    expect(containers).not.toContain("tailscale");
  });
});
