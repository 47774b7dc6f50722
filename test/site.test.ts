import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import YAML from "yaml";
import { TEST_SEAL_KEYS, servicesSite, testSecrets } from "./fixtures";
import { deployRecorded, isSecretValue, recordResources, reveal, valueOf, type Recorded } from "./mocks";
import { fileSource, mapSource } from "../config/source";
import { openBundle } from "../components";
import { SITE_KEY } from "../config/schema";
import { loadEstate, loadProjectSite } from "../model/estate";
import { loadSite } from "../model/site";
import type { SiteModel } from "../render/siteModel";
import { wireguardPrivateKey } from "../render/wireguard";
import type { Site, SiteOutputs } from "../components";
import { deploySite } from "../stacks/site";
import { sshClientDir } from "../components/host";
import { renderCloudInit, sshHostKey } from "../render/host";

const mocks = recordResources();
const { recorded, capture } = mocks;
const ROOT = path.resolve(__dirname, "..");

const CONTAINER = "docker:index/container:Container";
const VOLUME = "docker:index/volume:Volume";
const PASSWORD = "random:index/randomPassword:RandomPassword";

/** Deploys a model under mocks and returns what it registered, once every input has resolved. */
async function deploy(model: SiteModel): Promise<{ out: SiteOutputs; res: Recorded[] }> {
  const { site, res } = await deployRecorded(model, mocks);
  return { out: site.outputs, res };
}

const of = (res: Recorded[], type: string) => res.filter((r) => r.type === type);

describe.each([
  [
    "master",
    // Its egress nodes: Prometheus' and the backup job's; a Docker API proxy per consumer.
    29,
    // Grafana, Pi-hole, CrowdSec, Portainer; each site's backup repository and REST user; lady's and madam's log
    // push passwords.
    12,
    [
      "alertmanager",
      "cadvisor-docker-api",
      "crowdsec",
      "crowdsec-docker-api",
      "edge",
      "egress-backup",
      "egress-prometheus",
      "headscale",
      "ingress",
      "metrics",
      "pihole",
      "promtail-docker-api",
    ],
    19,
  ],
  [
    "lady",
    // Its egress nodes: the shipper's and the backup job's; a Docker API proxy per consumer.
    31,
    7,
    [
      "cadvisor-docker-api",
      "edge",
      "egress-backup",
      "egress-promtail",
      "ingress",
      "metrics",
      "nextcloud",
      "promtail-docker-api",
      "uisp",
      "unifi",
    ],
    18,
  ],
])("the %s stack under mocks", (stack, containers, passwords, networks, volumes) => {
  let res: Recorded[];
  let out: SiteOutputs;
  const model = loadProjectSite(ROOT, stack);
  beforeAll(async () => ({ out, res } = await deploy(model)));

  test(`${containers} containers, each named once, none on \`latest\``, () => {
    const cs = of(res, CONTAINER);
    // Names, not the records: a failure would print each record's options, whose parent is the whole resource tree.
    expect(cs.map((c) => c.inputs.name)).toHaveLength(containers);
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
    expect(vols.map((v) => v.name)).toHaveLength(volumes);
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
    expect(of(res, PASSWORD).map((p) => p.name)).toHaveLength(passwords);
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
      // The password itself is only ever inside the secret.
      expect(JSON.stringify(c.inputs, (_k, v) => (isSecretValue(v) ? "[secret]" : v))).not.toContain("pw-");
    }
  });

  test("networks: the site-wide ones, one per multi-container service, one per Docker API consumer", () => {
    const names = of(res, "docker:index/network:Network").map((n) => n.inputs.name);
    expect(names.sort()).toEqual(networks.map((n) => `qcloud-${n}`));
    expect(names.every((n) => typeof n === "string" && n.startsWith("qcloud-"))).toBe(true);
    // Only `ingress` has fixed addresses: Traefik trusts PROXY headers from that range alone.
    const fixed = of(res, "docker:index/network:Network").filter((n) => n.inputs.ipamConfigs);
    expect(fixed.map((n) => [n.inputs.name, n.inputs.ipamConfigs])).toEqual([
      ["qcloud-ingress", [{ subnet: "10.255.255.248/29", gateway: "10.255.255.249" }]],
    ]);
    // And on it, fixed addresses for the tailnet node (which Traefik believes), Traefik (where it forwards) and
    // Pi-hole (the site's resolver for the tailnet, which the node routes).
    const containerNames = of(res, "docker:index/container:Container").map((c) => c.inputs.name);
    const fixedAddresses = of(res, "docker:index/container:Container").flatMap((c) =>
      ((c.inputs.networksAdvanced ?? []) as { name: string; ipv4Address?: string }[])
        .filter((n) => n.ipv4Address)
        .map((n) => [c.inputs.name, n.name, n.ipv4Address]),
    );
    expect(fixedAddresses.sort()).toEqual([
      // Where the site runs it (master): the lady of these stack files has none.
      ...(containerNames.includes("pihole") ? [["pihole", "qcloud-ingress", "10.255.255.252"]] : []),
      ["tailscale", "qcloud-ingress", "10.255.255.250"],
      ["traefik", "qcloud-ingress", "10.255.255.251"],
    ]);
  });

  test("each Docker API proxy gets its script and its consumer's rules; Portainer its generated admin password as a secret file", () => {
    for (const p of of(res, CONTAINER).filter((c) => String(c.inputs.name).endsWith("-docker-api"))) {
      const consumer = String(p.inputs.name).replace(/-docker-api$/, "");
      const files = reveal<{ file: string; content: string }[]>(p.inputs.uploads);
      expect(files.map((f) => f.file)).toEqual([
        "/usr/local/lib/docker-api/proxy.py",
        "/etc/docker-api/rules.json",
      ]);
      expect(JSON.parse(files[1]!.content).consumer).toBe(consumer);
      expect(p.inputs.networksAdvanced).toEqual([{ name: `qcloud-${consumer}-docker-api` }]);
    }
    const portainer = of(res, CONTAINER).find((c) => c.inputs.name === "portainer");
    if (stack !== "master") return expect(portainer).toBeUndefined();
    expect(portainer!.inputs.command).toEqual(["--admin-password-file", "/run/secrets/portainer-admin"]);
    expect(isSecretValue(portainer!.inputs.uploads)).toBe(true);
    expect(reveal(portainer!.inputs.uploads)).toEqual([
      { file: "/run/secrets/portainer-admin", content: "pw-master-portainer-admin" },
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

  test("peers' UDP flows to the published UDP ports are dropped once their containers are (re)created", async () => {
    // It registers once those containers have ids: after `deploy` returns.
    const name = `${stack}-udp-flows`;
    for (let i = 0; i < 200 && !mocks.recorded.some((r) => r.name === name); i++)
      await new Promise((r) => setTimeout(r, 10));
    const flows = mocks.recorded.find((r) => r.name === name)!;
    expect(flows.type).toBe("command:remote:Command");
    // Not Pi-hole's 53, bound to loopback: Docker rewrites no flow to it.
    const ports = { master: "3478 41641", lady: "2055 3478 10001 41641" }[stack]!;
    expect(flows.inputs.create).toContain(`for port in ${ports}; do`);
    expect(flows.inputs.create).toContain("install -y -q conntrack");
    // Installed with its minute job, which drops them after one of those containers starts (a restart, a restore).
    expect(flows.inputs.create).toContain(
      "* * * * * root /usr/local/sbin/qcloud-udp-flows --if-started >/dev/null 2>>/var/log/qcloud-udp-flows.log",
    );
    // Run again when any of them is replaced: their ids are its triggers.
    const udp = {
      master: ["headscale", "tailscale"],
      lady: ["tailscale", "uisp-netflow", "unifi"],
    }[stack]!;
    expect(flows.inputs.triggers).toEqual(udp.map((c) => `${stack}-${c}-id`));
    // The job watches the same containers' ids and start times.
    expect(flows.inputs.create).toContain(
      `docker inspect -f '{{.Id}} {{.State.StartedAt}}' ${udp.join(" ")} `,
    );
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
    expect(server!.inputs).toMatchObject({
      name: "madam",
      serverType: "cx32",
      location: "nbg1",
      image: "debian-12",
    });
    expect(reveal<string>(server!.inputs.userData)).toContain("packages: [docker.io]");
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

  test("the server is protected, new SSH keys or user-data never rebuild it, and a replacement deletes first (one name)", () => {
    const [server] = of(res, "hcloud:index/server:Server");
    expect([server!.opts.protect, server!.opts.ignoreChanges, server!.opts.deleteBeforeReplace]).toEqual([
      true,
      ["userData", "sshKeys"],
      true,
    ]);
  });

  test("Docker is reached at the new server's address", () => {
    const [provider] = of(res, "pulumi:providers:docker");
    expect(provider!.inputs.host).toBe("ssh://root@203.0.113.7:22");
  });

  // The mocks' RandomBytes returns 32 bytes of the name's length ("madam-host-key": 14).
  const made = sshHostKey(Buffer.alloc(32, "madam-host-key".length));

  test("the server gets a host key made in the stack, in its user-data, which is secret", () => {
    const [seed] = of(res, "random:index/randomBytes:RandomBytes").filter((r) => r.name === "madam-host-key");
    expect(seed!.inputs).toEqual({ length: 32 });
    const [server] = of(res, "hcloud:index/server:Server");
    expect(isSecretValue(server!.inputs.userData)).toBe(true);
    expect(reveal<string>(server!.inputs.userData)).toBe(renderCloudInit(made));
    expect(made.publicKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}$/);
  });

  test("every connection pins that key from the first one: remote commands and Docker's known_hosts", async () => {
    const commands = of(res, "command:remote:Command");
    expect(commands.length).toBeGreaterThan(0);
    for (const c of commands) {
      // The command provider marks the whole connection secret.
      const connection = reveal<{ hostKey?: string }>(c.inputs.connection);
      expect([c.name, connection.hostKey]).toEqual([c.name, made.publicKey]);
    }
    const [provider] = of(res, "pulumi:providers:docker");
    const opts = JSON.parse(provider!.inputs.sshOpts as string) as string[];
    const knownHosts = path.join(sshClientDir(), "madam.known_hosts");
    expect(opts).toEqual([
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${knownHosts}`,
    ]);
    expect(fs.readFileSync(knownHosts, "utf8")).toBe(`203.0.113.7 ${made.publicKey}\n`);
    expect(fs.statSync(knownHosts).mode & 0o777).toBe(0o600);
    fs.rmSync(knownHosts);
  });
});

describe("health, waiting and protection", () => {
  test("a probed container is created with its healthcheck and waited for; an unprobed one is not", async () => {
    const { res } = await deploy(loadSite(fileSource(path.join(ROOT, "Pulumi.lady.yaml"))));
    const db = of(res, CONTAINER).find((c) => c.inputs.name === "nextcloud-db")!;
    expect(db.inputs).toMatchObject({
      healthcheck: {
        tests: ["CMD-SHELL", "pg_isready -U nextcloud -d nextcloud"],
        interval: "10s",
        timeout: "5s",
        retries: 3,
        startPeriod: "30s",
      },
      wait: true,
      // start period + retries x interval + 30 s of slack
      waitTimeout: 30 + 3 * 10 + 30,
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

describe("each site reads only its own keys", () => {
  // master and lady as committed, plus a third site madam; lady's and madam's public keys are the tests' own.
  const read = (stack: string) =>
    YAML.parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")).config as Record<
      string,
      any
    >;
  const ladyConfig = read("lady");
  const sources = [
    mapSource("Pulumi.master.yaml", "master", read("master")),
    mapSource("Pulumi.lady.yaml", "lady", {
      ...ladyConfig,
      [SITE_KEY]: {
        ...ladyConfig[SITE_KEY],
        mesh: { ...ladyConfig[SITE_KEY].mesh, sealPublicKey: TEST_SEAL_KEYS.lady!.publicKey },
      },
    }),
    mapSource(
      "Pulumi.madam.yaml",
      "madam",
      servicesSite({
        mesh: { wireguard: { address: "10.90.0.3" }, sealPublicKey: TEST_SEAL_KEYS.madam!.publicKey },
      }),
    ),
  ];
  const estate = loadEstate(sources);
  const [masterModel, ladyModel] = sources.map((s) => loadSite(s, estate)) as [SiteModel, SiteModel];

  let master: Site;
  let outputs: Record<string, unknown>;
  let sealed: Record<string, string>;
  beforeAll(async () => {
    recorded.length = 0;
    master = deploySite(masterModel, { configSecret: (k) => pulumi.secret(`cfg-${k}`) });
    // The stack's outputs as `pulumi stack output --show-secrets --json` would print them: every secret revealed.
    outputs = await valueOf(pulumi.output(master.outputs as unknown as Record<string, unknown>));
    sealed = await valueOf(master.outputs.controlPlane!.sealed);
  });

  /** Every key and password the control plane made (as the mocks make them), by site. */
  const secretsOf = (site: string): string[] => [
    `key-${site}`,
    wireguardPrivateKey(Buffer.alloc(32, `master-${site}`.length)),
    `pw-master-backup-${site}-repository`,
    `pw-master-backup-${site}-rest`,
  ];

  test("the control plane's outputs hold no site's key or password in the clear, only boxes and public keys", () => {
    const text = JSON.stringify(outputs);
    const all = ["master", "lady", "madam"].flatMap(secretsOf);
    // Not vacuous: these are the values the sites' bundles hold (below).
    expect(all).toHaveLength(12);
    for (const secret of all) expect([secret, text.includes(secret)]).toEqual([secret, false]);
    expect(text).not.toMatch(/pw-|key-(master|lady|madam)|hash-of-/);
    expect(Object.keys(outputs.controlPlane as object).sort()).toEqual(["sealed", "wireguardPublicKeys"]);
    expect(Object.keys(sealed).sort()).toEqual(["lady", "madam"]);
    for (const box of Object.values(sealed)) expect(box).toMatch(/^qcloud-seal-v1:[A-Za-z0-9+/]+=*$/);
    // Its own tunnel config and backup password stay in its state: every site's stack reference reads the outputs.
    expect((outputs.mesh as Record<string, unknown>).wireguardConfig).toBeUndefined();
    expect((outputs.backup as Record<string, unknown>).password).toBeUndefined();
  });

  /** A site's own nodes' keys (its node, an egress node per flow consumer) and its own log push password. */
  const ownKeys = (site: string) => ({
    meshAuthKeys: {
      tailscale: `key-${site}`,
      "tailscale-egress-backup": `key-${site}-tailscale-egress-backup`,
      "tailscale-egress-promtail": `key-${site}-tailscale-egress-promtail`,
    },
    logPassword: `pw-master-logs-${site}`,
  });

  test("lady's box holds exactly her keys and what she needs of the repository she keeps (master's)", () => {
    expect(openBundle(sealed, "lady", "master", TEST_SEAL_KEYS.lady!.privateKey)).toEqual({
      ...ownKeys("lady"),
      wireguardPrivateKey: secretsOf("lady")[1],
      backup: { repository: "pw-master-backup-lady-repository", rest: "pw-master-backup-lady-rest" },
      hosted: {
        master: {
          repository: "pw-master-backup-master-repository",
          htpasswd: "master:$2a$10$hash-of-master-backup-master-rest",
        },
      },
    });
    expect(openBundle(sealed, "madam", "master", TEST_SEAL_KEYS.madam!.privateKey)).toEqual({
      ...ownKeys("madam"),
      wireguardPrivateKey: secretsOf("madam")[1],
      backup: { repository: "pw-master-backup-madam-repository", rest: "pw-master-backup-madam-rest" },
    });
  });

  test("lady's key opens neither madam's box nor a box for master (there is none), nor madam's passed off as hers", () => {
    const key = TEST_SEAL_KEYS.lady!.privateKey;
    expect(() => openBundle(sealed, "madam", "master", key)).toThrow(
      "site `madam`: the keys `master` sealed for it do not open with `qui3tly-cloud:sealKey` (it does not open: a private key other than the one it was sealed to, a box made for another site, or an altered box): set the key whose public half is `mesh.sealPublicKey` in Pulumi.madam.yaml, or run `npm run seal-key -- --stack madam` and then `pulumi up --stack master`",
    );
    expect(() => openBundle(sealed, "master", "master", key)).toThrow(
      "site `master` has no sealed keys in `master`'s stack yet: run `pulumi up --stack master` first",
    );
    expect(() => openBundle({ lady: sealed.madam! }, "lady", "master", key)).toThrow(
      /^site `lady`: the keys `master` sealed for it do not open with `qui3tly-cloud:sealKey`/,
    );
  });

  test("an altered box fails with the config key to fix", () => {
    const raw = Buffer.from(sealed.lady!.slice("qcloud-seal-v1:".length), "base64");
    raw[50] = raw[50]! ^ 0x80;
    expect(() =>
      openBundle(
        { lady: `qcloud-seal-v1:${raw.toString("base64")}` },
        "lady",
        "master",
        TEST_SEAL_KEYS.lady!.privateKey,
      ),
    ).toThrow(
      /^site `lady`: the keys `master` sealed for it do not open with `qui3tly-cloud:sealKey` \(it does not open: .*\): set the key whose public half is `mesh.sealPublicKey` in Pulumi.lady.yaml/,
    );
  });

  test("sealing is deterministic: the same keys sealed again give the same outputs", async () => {
    const again = deploySite(masterModel, { configSecret: (k) => pulumi.secret(`cfg-${k}`) });
    expect(await valueOf(again.outputs.controlPlane!.sealed)).toEqual(sealed);
  });

  test("lady, given master's outputs, runs with her own keys and exports no other site's", async () => {
    recorded.length = 0;
    const lady = deploySite(
      ladyModel,
      {
        ...testSecrets("lady"),
        controlPlaneOutput: (k) =>
          pulumi.secret(
            (master.outputs.controlPlane as unknown as Record<string, pulumi.Output<unknown>>)[k]!,
          ),
      },
      { transformations: [capture] },
    );
    const ladyOut = await valueOf(pulumi.output(lady.outputs as unknown as Record<string, unknown>));
    await valueOf(lady.containers["tailscale"]!.urn);
    const node = of(recorded, CONTAINER).find((c) => c.name === "lady-tailscale")!;
    expect(reveal<string[]>(node.inputs.envs)).toContain("TS_AUTHKEY=key-lady");
    const text = JSON.stringify(ladyOut);
    // Her own: the tunnel's private key and her repository password (she must be able to print them).
    expect(text).toContain(secretsOf("lady")[1]);
    expect(text).toContain("pw-master-backup-lady-repository");
    for (const secret of [...secretsOf("master"), ...secretsOf("madam"), "pw-master-backup-lady-rest"])
      expect([secret, text.includes(secret)]).toEqual([secret, false]);
  });

  test("a services site without its `sealKey` fails before any resource, with the command to run", () => {
    recorded.length = 0;
    expect(() =>
      deploySite(
        ladyModel,
        { configSecret: (k) => pulumi.secret(`cfg-${k}`) },
        { transformations: [capture] },
      ),
    ).toThrow(
      "Pulumi.lady.yaml: `qui3tly-cloud:sealKey`: missing secret: the private key that opens what `master` seals for this site; run `npm run seal-key -- --stack lady` (then `pulumi up --stack master`)",
    );
    expect(() =>
      deploySite(ladyModel, { ...testSecrets("madam"), configSecret: (k) => pulumi.secret(k) }),
    ).toThrow(
      /`qui3tly-cloud:sealKey`: expected the private half of `qui3tly-cloud:site.mesh.sealPublicKey`/,
    );
    expect(recorded).toEqual([]);
  });

  test("a control plane with a site that has no public key fails before any resource, naming its file and field", () => {
    recorded.length = 0;
    const noKey = sources.map((s) =>
      s.stack !== "madam"
        ? s
        : mapSource(
            "Pulumi.madam.yaml",
            "madam",
            servicesSite({ mesh: { wireguard: { address: "10.90.0.3" } } }),
          ),
    );
    const cp = loadSite(noKey[0]!, loadEstate(noKey));
    expect(() => deploySite(cp, { configSecret: (k) => pulumi.secret(k) })).toThrow(
      "Pulumi.madam.yaml: `qui3tly-cloud:site.mesh.sealPublicKey`: expected the public half of site `madam`'s sealing key, to which `master` seals its keys: run `npm run seal-key -- --stack madam`",
    );
    expect(recorded).toEqual([]);
  });
});
