import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { servicesSite } from "./fixtures";
import { isSecretValue, recordResources, reveal, valueOf, type Recorded } from "./mocks";
import { fileSource, mapSource } from "../config/source";
import { loadProjectSite } from "../model/estate";
import { loadSite, type SiteModel } from "../model/site";
import { deploySite, type SiteOutputs } from "../stacks/site";

const { recorded, capture } = recordResources();
const ROOT = path.resolve(__dirname, "..");

const CONTAINER = "docker:index/container:Container";
const VOLUME = "docker:index/volume:Volume";
const PASSWORD = "random:index/randomPassword:RandomPassword";

/** Deploys a model under mocks and returns what it registered, once every input has resolved. */
async function deploy(model: SiteModel): Promise<{ out: SiteOutputs; res: Recorded[] }> {
  recorded.length = 0;
  const site = deploySite(
    model,
    { configSecret: (k) => pulumi.secret(`cfg-${k}`) },
    { transformations: [capture] },
  );
  // A container registers once its image, networks, volumes and passwords have: its URN means all are in.
  await valueOf(
    pulumi.all([site.host.ready.urn, ...Object.values(site.services.containers).map((c) => c.urn)]),
  );
  return { out: site.outputs, res: [...recorded] };
}

const of = (res: Recorded[], type: string) => res.filter((r) => r.type === type);

describe.each([
  [
    "master",
    // Its egress nodes: Prometheus' and the backup job's.
    27,
    // Grafana, Pi-hole, CrowdSec; each site's backup repository and REST user; lady's log push password.
    8,
    [
      "alertmanager",
      "crowdsec",
      "edge",
      "egress-backup",
      "egress-prometheus",
      "headscale",
      "ingress",
      "metrics",
      "pihole",
    ],
    19,
  ],
  [
    "lady",
    // Its egress nodes: the shipper's and the backup job's.
    30,
    7,
    ["edge", "egress-backup", "egress-promtail", "ingress", "metrics", "nextcloud", "uisp", "unifi"],
    18,
  ],
])("the %s stack under mocks", (stack, containers, passwords, networks, volumes) => {
  let res: Recorded[];
  let out: SiteOutputs;
  const model = loadProjectSite(ROOT, stack);
  beforeAll(async () => ({ out, res } = await deploy(model)));

  test(`${containers} containers, each named once, none on \`latest\``, () => {
    const cs = of(res, CONTAINER);
    expect(cs).toHaveLength(containers);
    expect(new Set(cs.map((c) => c.inputs.name)).size).toBe(containers);
    for (const img of of(res, "docker:index/remoteImage:RemoteImage")) {
      expect(img.inputs.name).toMatch(/^[a-z0-9._/-]+:[A-Za-z0-9._-]+$/);
      expect(img.inputs.name).not.toMatch(/:latest$/);
      expect(img.inputs.keepLocally).toBe(true);
    }
    expect(out.counts.containers).toBe(containers);
  });

  test("every container: restart policy, limits, log rotation, labels, replaced delete-first", () => {
    for (const c of of(res, CONTAINER)) {
      expect(c.inputs).toMatchObject({
        restart: "unless-stopped",
        mustRun: true,
        logDriver: "json-file",
        logOpts: { "max-size": "10m", "max-file": "3" },
      });
      expect(c.inputs.memory).toBeGreaterThanOrEqual(32);
      expect(Number(c.inputs.cpus)).toBeGreaterThan(0);
      expect(c.inputs.labels).toEqual(
        expect.arrayContaining([
          { label: "cloud.qui3tly.site", value: stack },
          { label: "cloud.qui3tly.managed-by", value: "pulumi" },
        ]),
      );
      expect(c.opts.deleteBeforeReplace).toBe(true);
    }
  });

  test("every stateful volume is retained on delete and protected", () => {
    const vols = of(res, VOLUME);
    expect(vols).toHaveLength(volumes);
    for (const v of vols)
      expect([v.name, v.opts.retainOnDelete, v.opts.protect]).toEqual([v.name, true, true]);
    // Every mounted named volume is one the program manages.
    const names = new Set(vols.map((v) => v.inputs.name));
    for (const c of of(res, CONTAINER)) {
      for (const m of c.inputs.volumes as { volumeName?: string }[])
        if (m.volumeName) expect(names).toContain(m.volumeName);
    }
  });

  test(`${passwords} generated passwords; containers holding one have secret envs, the others plain`, () => {
    expect(of(res, PASSWORD)).toHaveLength(passwords);
    const holds = new Set(
      model.services.flatMap((s) =>
        s.containers
          .filter((c) => Object.values(c.env).some((v) => typeof v !== "string"))
          .map((c) => c.name),
      ),
    );
    expect(holds.size).toBeGreaterThan(0);
    const secretFiles = new Set(
      model.services.flatMap((s) =>
        s.containers.filter((c) => Object.keys(c.secretFiles).length > 0).map((c) => c.name),
      ),
    );
    for (const c of of(res, CONTAINER)) {
      const secret = holds.has(c.inputs.name as string);
      const secretFile = secretFiles.has(c.inputs.name as string);
      expect([c.inputs.name, isSecretValue(c.inputs.envs), isSecretValue(c.inputs.uploads)]).toEqual([
        c.inputs.name,
        secret,
        secretFile,
      ]);
      const hidden = [...(secret ? ["envs"] : []), ...(secretFile ? ["uploads"] : [])];
      expect(c.opts.additionalSecretOutputs).toEqual(hidden.length ? hidden : undefined);
      // The password itself is only ever inside the secrets (env, or the secret files' uploads).
      if (!secret)
        expect(
          JSON.stringify({ ...c.inputs, uploads: secretFile ? "secret" : c.inputs.uploads }),
        ).not.toContain("pw-");
    }
  });

  test("networks: the site-wide ones and one per multi-container service", () => {
    const names = of(res, "docker:index/network:Network").map((n) => n.inputs.name);
    expect(names.sort()).toEqual(networks.map((n) => `qcloud-${n}`));
    expect(names.every((n) => typeof n === "string" && n.startsWith("qcloud-"))).toBe(true);
    // Only `ingress` has fixed addresses: Traefik trusts PROXY headers from that range alone.
    const fixed = of(res, "docker:index/network:Network").filter((n) => n.inputs.ipamConfigs);
    expect(fixed.map((n) => [n.inputs.name, n.inputs.ipamConfigs])).toEqual([
      ["qcloud-ingress", [{ subnet: "10.255.255.248/29", gateway: "10.255.255.249" }]],
    ]);
    // And on it, fixed addresses for the tailnet node (which Traefik believes) and Traefik (where it forwards).
    const fixedAddresses = of(res, "docker:index/container:Container").flatMap((c) =>
      ((c.inputs.networksAdvanced ?? []) as { name: string; ipv4Address?: string }[])
        .filter((n) => n.ipv4Address)
        .map((n) => [c.inputs.name, n.name, n.ipv4Address]),
    );
    expect(fixedAddresses.sort()).toEqual([
      ["tailscale", "qcloud-ingress", "10.255.255.250"],
      ["traefik", "qcloud-ingress", "10.255.255.251"],
    ]);
  });

  test("the host: Docker bootstrap over SSH, then Docker over ssh://", () => {
    const [bootstrap] = of(res, "command:remote:Command");
    expect(reveal(bootstrap!.inputs.connection)).toMatchObject({
      host: `${stack}.qui3tly.cloud`,
      user: "root",
      port: 22,
    });
    expect(bootstrap!.inputs.create).toContain("apt-get install -y -q docker.io");
    const [provider] = of(res, "pulumi:providers:docker");
    expect(provider!.inputs.host).toBe(`ssh://root@${stack}.qui3tly.cloud:22`);
  });
});

describe("secrets stay secret", () => {
  test("a secret read from config reaches the container as a secret", async () => {
    const config = servicesSite(
      { services: { nextcloud: { env: { MAIL_SMTPPASSWORD: { secret: "smtpPassword" } } } } },
      { "qui3tly-cloud:smtpPassword": { secure: "v1:abc" } },
    );
    const { res } = await deploy(loadSite(mapSource("Pulumi.lady.yaml", "lady", config)));
    const app = of(res, CONTAINER).find((c) => c.inputs.name === "nextcloud")!;
    expect(isSecretValue(app.inputs.envs)).toBe(true);
    expect(reveal(app.inputs.envs)).toContain("MAIL_SMTPPASSWORD=cfg-smtpPassword");
    expect(app.opts.additionalSecretOutputs).toEqual(["envs"]);
  });
});

describe("an hcloud host", () => {
  const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO9 ops@laptop";
  let res: Recorded[];
  beforeAll(async () => {
    const config = servicesSite(
      {
        host: {
          kind: "hcloud",
          serverType: "cx32",
          location: "nbg1",
          sshKeys: [key],
          sshSources: ["198.51.100.0/24"],
        },
        services: { unifi: true },
      },
      { "hcloud:token": { secure: "v1:abc" } },
    );
    ({ res } = await deploy(loadSite(mapSource("Pulumi.madam.yaml", "madam", config))));
  });

  test("a server with cloud-init that installs Docker, and its SSH key named by fingerprint", () => {
    const [server] = of(res, "hcloud:index/server:Server");
    expect(server!.inputs).toMatchObject({ serverType: "cx32", location: "nbg1", image: "debian-12" });
    expect(server!.inputs.userData).toContain("packages: [docker.io]");
    const keys = of(res, "hcloud:index/sshKey:SshKey");
    expect(keys.map((k) => [k.name, k.inputs.publicKey])).toEqual([
      [expect.stringMatching(/^madam-[0-9a-f]{12}$/), key],
    ]);
  });

  test("the firewall opens SSH to the allowed sources and exactly the ports published on all addresses", () => {
    const [fw] = of(res, "hcloud:index/firewall:Firewall");
    const rules = (fw!.inputs.rules as { port: string; protocol: string; sourceIps: string[] }[]).map(
      (r) => `${r.port}/${r.protocol} from ${r.sourceIps.join(",")}`,
    );
    expect(rules).toEqual([
      "22/tcp from 198.51.100.0/24",
      "80/tcp from 0.0.0.0/0,::/0",
      "443/tcp from 0.0.0.0/0,::/0",
      "3478/udp from 0.0.0.0/0,::/0",
      "8080/tcp from 0.0.0.0/0,::/0",
      "10001/udp from 0.0.0.0/0,::/0",
      // The tailnet node: direct connections between sites.
      "41641/udp from 0.0.0.0/0,::/0",
    ]);
  });

  test("the server is protected, and new SSH keys or user-data never rebuild it", () => {
    const [server] = of(res, "hcloud:index/server:Server");
    expect([server!.opts.protect, server!.opts.ignoreChanges]).toEqual([true, ["userData", "sshKeys"]]);
  });

  test("Docker is reached at the new server's address", () => {
    const [provider] = of(res, "pulumi:providers:docker");
    expect(provider!.inputs.host).toBe("ssh://root@203.0.113.7:22");
  });
});

describe("health, waiting and protection", () => {
  test("a probed container is created with its healthcheck and waited for; an unprobed one is not", async () => {
    const { res } = await deploy(loadSite(fileSource(path.join(ROOT, "Pulumi.lady.yaml"))));
    const db = of(res, CONTAINER).find((c) => c.inputs.name === "nextcloud-db")!;
    expect(db.inputs).toMatchObject({
      healthcheck: {
        tests: ["CMD-SHELL", "pg_isready -U nextcloud -d nextcloud"],
        interval: "30s",
        timeout: "5s",
        retries: 3,
        startPeriod: "30s",
      },
      wait: true,
      // start period + retries x interval + 30 s of slack
      waitTimeout: 30 + 3 * 30 + 30,
      memorySwap: 1024,
      cpus: "1.0",
    });
    const promtail = of(res, CONTAINER).find((c) => c.inputs.name === "promtail")!;
    expect([promtail.inputs.healthcheck, promtail.inputs.wait]).toEqual([undefined, undefined]);
  });

  test("`protect: false` (sandboxes) leaves volumes retained but unprotected", async () => {
    const { res } = await deploy(
      loadSite(
        mapSource("Pulumi.lady.yaml", "lady", servicesSite({ protect: false, services: { unifi: true } })),
      ),
    );
    for (const v of of(res, VOLUME))
      expect([v.name, v.opts.retainOnDelete, v.opts.protect]).toEqual([v.name, true, false]);
    for (const p of of(res, PASSWORD)) expect([p.name, p.opts.protect]).toEqual([p.name, false]);
  });

  test("generated passwords are protected on real sites: the databases keep the first one", async () => {
    const { res } = await deploy(loadSite(fileSource(path.join(ROOT, "Pulumi.lady.yaml"))));
    for (const p of of(res, PASSWORD)) expect([p.name, p.opts.protect]).toEqual([p.name, true]);
  });
});
