import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import YAML from "yaml";
import { TEST_SEAL_KEYS, committed, servicesSite, testSecrets } from "./fixtures";
import { isSecretValue, recordResources, reveal, valueOf } from "./mocks";
import { SITE_KEY } from "../config/schema";
import { mapSource } from "../config/source";
import { loadEstate } from "../model/estate";
import { loadSite } from "../model/site";
import type { Estate, EstateSite } from "../render/estate";
import type { ContainerModel } from "../render/siteModel";
import {
  meshIdentities,
  parsePreAuthKey,
  renderHeadscaleConfig,
  PRE_AUTH_KEY_IDS,
  renderPreAuthKeyExpireScript,
  renderPreAuthKeyScript,
  renderServeConfig,
} from "../render/headscale";
import { nodeTags, policyAllows, renderPolicy, renderPolicyFile } from "../render/policy";
import { renderUdpFlowsScript } from "../render/host";
import { renderWireguardConfig, wireguardPrivateKey, wireguardPublicKey } from "../render/wireguard";
import { openBundle } from "../components";
import { controlPlaneEntry, nodeKey } from "../components";
import { deploySite } from "../stacks/site";

const { recorded, capture } = recordResources();
const ROOT = path.resolve(__dirname, "..");

/** master as committed, with an admin, a flow and a tunnel. */
const MASTER = committed("master", {
  mesh: {
    admins: ["alice@example.org"],
    flows: [
      {
        from: "site:lady",
        service: "nextcloud",
        to: "site:master",
        ports: [25],
        why: "mail: lady's Nextcloud relays through master",
      },
    ],
    // An address, not a name: wg resolves endpoints when it applies a config, and tests have no DNS.
    wireguard: { address: "10.90.0.1", endpoint: "198.51.100.1", subnets: ["10.0.1.0/24"] },
  },
});
/** master, lady as committed, plus a third site that exists only as a new stack file. */
const SOURCES = [
  mapSource("Pulumi.master.yaml", "master", MASTER),
  mapSource(
    "Pulumi.lady.yaml",
    "lady",
    committed("lady", {
      mesh: {
        routes: ["10.0.2.0/24"],
        wireguard: { address: "10.90.0.2", endpoint: "198.51.100.2", subnets: ["10.0.2.0/24"] },
        sealPublicKey: TEST_SEAL_KEYS.lady!.publicKey,
      },
    }),
  ),
  mapSource(
    "Pulumi.madam.yaml",
    "madam",
    servicesSite({
      host: { kind: "existing", address: "203.0.113.30", port: 2222 },
      mesh: {
        wireguard: { address: "10.90.0.3", port: 51821 },
        sealPublicKey: TEST_SEAL_KEYS.madam!.publicKey,
      },
    }),
  ),
];
const estate: Estate = loadEstate(SOURCES);
const site = (name: string): EstateSite => estate.sites.find((s) => s.name === name)!;

/** The mesh tools (real headscale, wg, wireguard-go), built or found by the project's own script. */
function meshTools(): string {
  const r = spawnSync("bash", [path.join(ROOT, "scripts/mesh-tools.sh")], { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`scripts/mesh-tools.sh failed (run it by hand to see why):\n${r.stderr}`);
  }
  return r.stdout.trim();
}

/** A site's rendered Traefik configs, parsed, but for where their files live: under `dir` (see traefikIn). */
function traefikConfigs(traefik: ContainerModel, dir: string) {
  const staticConfig = YAML.parse(traefik.files["/etc/traefik/traefik.yml"]!);
  staticConfig.providers.file.directory = path.join(dir, "dynamic");
  staticConfig.certificatesResolvers.letsencrypt.acme.storage = path.join(dir, "acme.json");
  return { staticConfig, dynamic: YAML.parse(traefik.files["/etc/traefik/dynamic/routes.yml"]!) };
}

/**
 * The start of a script that runs the real traefik with these configs in a network namespace of its own (the
 * rendered ports as they are): `addresses` on its loopback, `background` programs started first, then traefik,
 * until `ports` listen. What follows runs with `ip netns exec <ns>`; the namespace and all in it go at the end.
 */
function traefikIn(
  ns: string,
  dir: string,
  configs: { staticConfig: unknown; dynamic: unknown },
  o: {
    addresses?: string[];
    background: string[];
    /** What the background programs listen on: traefik starts once they do. */
    backgroundPorts?: number[];
    /** Traefik's environment, as its container's. */
    env?: Record<string, string>;
    ports: number[];
  },
): string[] {
  fs.mkdirSync(path.join(dir, "dynamic"));
  fs.writeFileSync(path.join(dir, "traefik.yml"), YAML.stringify(configs.staticConfig));
  fs.writeFileSync(path.join(dir, "dynamic", "routes.yml"), YAML.stringify(configs.dynamic));
  const wait = (ports: number[]) => {
    const listening = ports.map((p) => `</dev/tcp/127.0.0.1/${p}`).join(" && ");
    return `for _ in $(seq 100); do ip netns exec ${ns} bash -c '${listening}' 2>/dev/null && break; sleep 0.1; done`;
  };
  const env = Object.entries(o.env ?? {}).map(([k, v]) => `${k}='${v.replace(/'/g, "'\\''")}'`);
  return [
    "set -eu",
    `trap 'ip netns pids ${ns} | xargs -r kill; ip netns del ${ns}' EXIT`,
    `ip netns add ${ns}`,
    `ip -n ${ns} link set lo up`,
    ...(o.addresses ?? []).map((a) => `ip -n ${ns} addr add ${a}/32 dev lo`),
    ...o.background.map((c) => `ip netns exec ${ns} ${c} >/dev/null 2>&1 &`),
    ...(o.backgroundPorts?.length ? [wait(o.backgroundPorts)] : []),
    `ip netns exec ${ns} env ${env.join(" ")} ${meshTools()}/traefik --configFile=${dir}/traefik.yml >${dir}/traefik.log 2>&1 &`,
    wait(o.ports),
  ];
}

describe("the tailnet policy", () => {
  const policy = renderPolicy(estate, "master");
  // What the estate declares, written out by hand: the policy must admit exactly these, each from the one node
  // identity of the one service it is for. lady keeps master's backup repository: its REST server (8000) is scraped
  // too. Egress nodes' metrics: 9003 up, in their consumers' order (lady: backup, nextcloud, promtail).
  const LADY_METRICS = [8000, 8080, 8082, 9002, 9003, 9004, 9005, 9080, 9100, 9121, 9187, 9205, 9216];
  const MADAM_METRICS = [8080, 8082, 9002, 9003, 9004, 9080, 9100];
  const declared = new Set([
    ...LADY_METRICS.map((p) => `master/tailscale-egress-prometheus>lady:${p}`),
    ...MADAM_METRICS.map((p) => `master/tailscale-egress-prometheus>madam:${p}`),
    // master's own egress nodes (backup, prometheus) are on no network Prometheus shares: through master's node.
    "master/tailscale-egress-prometheus>master:9003",
    "master/tailscale-egress-prometheus>master:9004",
    "lady/tailscale-egress-promtail>master:3100",
    "madam/tailscale-egress-promtail>master:3100",
    "lady/tailscale-egress-nextcloud>master:25",
    // Backups: each services site's to the control plane, the control plane's to the first services site.
    "lady/tailscale-egress-backup>master:8000",
    "madam/tailscale-egress-backup>master:8000",
    "master/tailscale-egress-backup>lady:8000",
    ...["master", "lady", "madam"].flatMap((s) => [`group:admins>${s}:22`, `group:admins>${s}:443`]),
  ]);
  // Every node of every site, by its key's tags; the site's own node (`tailscale`) is granted nothing outbound.
  const sources: [string, readonly string[]][] = [
    ...estate.sites.flatMap((s) =>
      meshIdentities(estate, s).map((i): [string, readonly string[]] => [`${s.name}/${i.node}`, i.tags]),
    ),
    ["group:admins", ["group:admins"]],
  ];
  const universe = [
    ...new Set([
      ...LADY_METRICS,
      ...MADAM_METRICS,
      22,
      25,
      53,
      80,
      443,
      3000,
      3100,
      5432,
      8000,
      8080,
      9090,
      9093,
      65535,
    ]),
  ];

  test("every node identity of every site: the site's node, and one egress node per flow consumer with one tag", () => {
    expect(Object.fromEntries(sources)).toEqual({
      "master/tailscale": ["tag:site-master", "tag:role-control-plane"],
      "master/tailscale-egress-backup": ["tag:master-backup"],
      "master/tailscale-egress-prometheus": ["tag:master-prometheus"],
      "lady/tailscale": ["tag:site-lady", "tag:role-services"],
      "lady/tailscale-egress-backup": ["tag:lady-backup"],
      "lady/tailscale-egress-nextcloud": ["tag:lady-nextcloud"],
      "lady/tailscale-egress-promtail": ["tag:lady-promtail"],
      "madam/tailscale": ["tag:site-madam", "tag:role-services"],
      "madam/tailscale-egress-backup": ["tag:madam-backup"],
      "madam/tailscale-egress-promtail": ["tag:madam-promtail"],
      "group:admins": ["group:admins"],
    });
  });

  test("admits every declared flow and nothing else, from every node, to every site, on every port", () => {
    const admitted: string[] = [];
    for (const [name, tags] of sources) {
      for (const dst of estate.sites) {
        for (const port of universe) {
          if (policyAllows(policy, tags, nodeTags(dst), port)) admitted.push(`${name}>${dst.name}:${port}`);
        }
      }
    }
    expect(admitted.sort()).toEqual([...declared].sort());
  });

  test("lady's shipper reaches master's Loki; none of lady's other identities does", () => {
    const ladys = meshIdentities(estate, site("lady"));
    const reach = ladys.map((i) => [i.node, policyAllows(policy, i.tags, nodeTags(site("master")), 3100)]);
    expect(reach).toEqual([
      ["tailscale", false],
      ["tailscale-egress-backup", false],
      ["tailscale-egress-nextcloud", false],
      ["tailscale-egress-promtail", true],
    ]);
    // And the backup identity reaches the repository, which the shipper's does not.
    const repo = ladys.map((i) => [i.node, policyAllows(policy, i.tags, nodeTags(site("master")), 8000)]);
    expect(repo.filter(([, ok]) => ok)).toEqual([["tailscale-egress-backup", true]]);
  });

  test("tags per site and role, owned by the admins; each site's routes approved for it alone", () => {
    expect(Object.keys(policy.tagOwners)).toEqual([
      "tag:lady-backup",
      "tag:lady-nextcloud",
      "tag:lady-promtail",
      "tag:madam-backup",
      "tag:madam-promtail",
      "tag:master-backup",
      "tag:master-prometheus",
      "tag:role-control-plane",
      "tag:role-services",
      "tag:site-lady",
      "tag:site-madam",
      "tag:site-master",
    ]);
    expect(new Set(Object.values(policy.tagOwners).flat())).toEqual(new Set(["group:admins"]));
    expect(policy.groups).toEqual({ "group:admins": ["alice@example.org"] });
    // lady's `mesh.routes`, and master's Pi-hole's address (its resolver for the tailnet: render/dns.ts).
    expect(policy.autoApprovers).toEqual({
      routes: { "10.0.2.0/24": ["tag:site-lady"], "10.255.255.252/32": ["tag:site-master"] },
    });
  });

  test("Headscale itself accepts the policy and its config (headscale policy check, configtest)", () => {
    const bin = meshTools();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-headscale-"));
    const model = loadSite(SOURCES[0]!, estate);
    const hs = model.services.find((s) => s.name === "headscale")!.containers[0]!;
    const config = hs.files["/etc/headscale/config.yaml"]!.replaceAll("/var/lib/headscale", dir).replace(
      /\/etc\/headscale\/policy\.hujson/,
      path.join(dir, "policy.hujson"),
    );
    fs.writeFileSync(path.join(dir, "config.yaml"), config);
    fs.writeFileSync(path.join(dir, "policy.hujson"), hs.files["/etc/headscale/policy.hujson"]!);
    const headscale = (...args: string[]) =>
      spawnSync(path.join(bin, "headscale"), ["-c", path.join(dir, "config.yaml"), ...args], {
        encoding: "utf8",
      });
    const ct = headscale("configtest");
    expect([ct.status, ct.stderr]).toEqual([0, expect.not.stringMatching(/deprecated|ERR/)]);
    const check = (file: string) =>
      headscale("policy", "check", "--force", "--bypass-grpc-and-access-database-directly", "-f", file);
    const ok = check(path.join(dir, "policy.hujson"));
    expect([ok.status, ok.stdout.trim()]).toEqual([0, "Policy is valid"]);
    // And the check is real: a broken owner is refused.
    fs.writeFileSync(
      path.join(dir, "bad.hujson"),
      renderPolicyFile(estate, "master").replace('"group:admins"\n', '"nobody-at-all"\n'),
    );
    const bad = check(path.join(dir, "bad.hujson"));
    expect([bad.status, bad.stderr]).toEqual([
      1,
      expect.stringContaining('invalid owner format: "nobody-at-all"'),
    ]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe("pre-auth keys against the real headscale (the served v0.29.3 CLI)", () => {
  test("the key script makes a reusable tagged key valid for a year; the delete script expires exactly that key", async () => {
    const bin = meshTools();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-hskeys-"));
    const model = loadSite(SOURCES[0]!, estate);
    const hs = model.services.find((s) => s.name === "headscale")!.containers[0]!;
    // The rendered config, on this machine: its paths in a temporary directory, its ports free loopback ones.
    const port = 20000 + (process.pid % 10000);
    const config = hs.files["/etc/headscale/config.yaml"]!.replaceAll("/var/lib/headscale", dir)
      .replace(/\/etc\/headscale\/policy\.hujson/, path.join(dir, "policy.hujson"))
      .replace("0.0.0.0:8080", `127.0.0.1:${port}`)
      .replace("0.0.0.0:9091", `127.0.0.1:${port + 1}`)
      .replace("127.0.0.1:50443", `127.0.0.1:${port + 2}`)
      .replace("0.0.0.0:3478", `127.0.0.1:${port + 3}`);
    fs.writeFileSync(path.join(dir, "config.yaml"), config);
    fs.writeFileSync(path.join(dir, "policy.hujson"), hs.files["/etc/headscale/policy.hujson"]!);
    // Test double for `docker exec headscale headscale ...` only (no Docker engine here): the same CLI, run directly.
    fs.mkdirSync(path.join(dir, "shim"));
    fs.writeFileSync(
      path.join(dir, "shim", "docker"),
      `#!/bin/sh\n[ "$1 $2 $3" = "exec headscale headscale" ] || exit 97\nshift 3\nexec ${path.join(bin, "headscale")} -c ${dir}/config.yaml "$@"\n`,
      { mode: 0o755 },
    );
    const server = spawn(path.join(bin, "headscale"), ["-c", path.join(dir, "config.yaml"), "serve"], {
      stdio: "ignore",
    });
    // The id files the delete reads: in the temporary directory, not the host's /var/lib.
    const script = (text: string, env: Record<string, string> = {}) =>
      spawnSync("bash", ["-c", text.replaceAll(PRE_AUTH_KEY_IDS, path.join(dir, "ids"))], {
        encoding: "utf8",
        env: { ...process.env, PATH: `${dir}/shim:${process.env.PATH}`, ...env },
      });
    try {
      const ladyNode = meshIdentities(estate, site("lady"))[0]!;
      const created = script(renderPreAuthKeyScript("lady", ladyNode));
      expect([created.status, created.stderr]).toEqual([0, ""]);
      const key = parsePreAuthKey(created.stdout);
      expect(key).toMatch(/^hskey-auth-/);
      type Listed = {
        id: number;
        reusable?: boolean;
        acl_tags?: string[];
        expiration: { seconds: number };
        created_at: { seconds: number };
      };
      const list = () =>
        JSON.parse(script("docker exec headscale headscale preauthkeys list -o json").stdout) as Listed[];
      const [made] = list();
      expect([
        made!.reusable,
        [...(made!.acl_tags ?? [])].sort(),
        (made!.expiration.seconds - made!.created_at.seconds) / 3600,
      ]).toEqual([true, ["tag:role-services", "tag:site-lady"], 8760]);
      // A second key, which the delete must leave alone.
      const other = script(renderPreAuthKeyScript("madam", meshIdentities(estate, site("madam"))[0]!));
      expect(other.status).toBe(0);
      // The create recorded its key's id; the delete gets no PULUMI_COMMAND_STDOUT (sshd refuses it on real hosts).
      expect(fs.readFileSync(path.join(dir, "ids", "lady-tailscale.id"), "utf8")).toBe(`${made!.id}\n`);
      const expired = script(renderPreAuthKeyExpireScript("lady", ladyNode));
      expect([expired.status, expired.stderr]).toEqual([0, ""]);
      const now = Date.now() / 1000;
      expect(
        list().map((k) => [
          k.acl_tags?.find((t) => t.startsWith("tag:site-")),
          k.expiration.seconds <= now + 1,
        ]),
      ).toEqual([
        ["tag:site-lady", true],
        ["tag:site-madam", false],
      ]);
      expect(fs.existsSync(path.join(dir, "ids", "lady-tailscale.id"))).toBe(false);
      // With no id recorded it says how to expire the key by hand, and does not block a destroy.
      const blind = script(renderPreAuthKeyExpireScript("lady", ladyNode));
      expect([blind.status, blind.stderr]).toEqual([
        0,
        expect.stringContaining("no pre-auth key id recorded"),
      ]);
      expect(list().filter((k) => k.expiration.seconds > now + 1)).toHaveLength(1);
    } finally {
      server.kill();
      await new Promise((r) => server.once("exit", r));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("a new site from its stack file alone", () => {
  test("madam gets its tags, its exporters forwarded to the tailnet, and its place in the policy", () => {
    expect(nodeTags(site("madam"))).toEqual(["tag:site-madam", "tag:role-services"]);
    const madam = loadSite(SOURCES[2]!, estate);
    const node = madam.services.find((s) => s.name === "tailscale")!.containers[0]!;
    expect(node.env.TS_EXTRA_ARGS).toBe("--login-server=https://headscale.qui3tly.cloud --accept-routes");
    expect(node.env.TS_AUTHKEY).toEqual({ input: "meshAuthKey" });
    expect(JSON.parse(node.files["/config/serve.json"]!)).toEqual({
      TCP: {
        // Admins' SSH to the host's sshd (its port from the stack file), at the ingress network's gateway.
        "22": { TCPForward: "10.255.255.249:2222" },
        // Admins' HTTPS to Traefik's tailnet entrypoint, with the client's tailnet address in a PROXY header.
        "443": { TCPForward: "10.255.255.251:8443", ProxyProtocol: 2 },
        "8080": { TCPForward: "cadvisor:8080" },
        "8082": { TCPForward: "traefik:8082" },
        // Its egress nodes' metrics (the node is on their networks for this alone): backup's, promtail's.
        "9003": { TCPForward: "tailscale-egress-backup:9003" },
        "9004": { TCPForward: "tailscale-egress-promtail:9004" },
        "9080": { TCPForward: "promtail:9080" },
        "9100": { TCPForward: "node-exporter:9100" },
      },
    });
    // The control plane forwards its Loki port too, for every site's shipper: to Traefik's logs entrypoint (the push
    // path only, each site's password), not to Loki, which serves queries on the same port.
    const master = loadSite(SOURCES[0]!, estate);
    const serve = JSON.parse(
      renderServeConfig({
        estate,
        site: "master",
        siteServices: master.services.map((s) => s.name),
        mesh: master.mesh,
        sshdPort: 22,
      }),
    );
    expect(serve.TCP["3100"]).toEqual({ TCPForward: "traefik:3100" });
  });

  test("the control plane makes a tagged pre-auth key per site; the others open theirs from the stack reference", async () => {
    recorded.length = 0;
    const master = deploySite(
      loadSite(SOURCES[0]!, estate),
      { configSecret: (k) => pulumi.secret(`cfg-${k}`) },
      { transformations: [capture] },
    );
    await valueOf(pulumi.all([master.outputs.controlPlane!.sealed, master.outputs.mesh.address]));
    const keys = recorded.filter((r) => r.type === "command:remote:Command" && /-key-/.test(r.name));
    // A key per node identity: each site's node keeps its old resource name (its key stays); an egress node's key
    // carries its consumer's one tag, never the site's.
    const tagsOf = (name: string) =>
      /--tags (\S+) -o json/.exec(keys.find((k) => k.name === name)!.inputs.create as string)![1];
    expect(Object.fromEntries(keys.map((k) => [k.name, tagsOf(k.name)]))).toEqual({
      "master-key-lady": "tag:site-lady,tag:role-services",
      "master-key-lady-tailscale-egress-backup": "tag:lady-backup",
      "master-key-lady-tailscale-egress-nextcloud": "tag:lady-nextcloud",
      "master-key-lady-tailscale-egress-promtail": "tag:lady-promtail",
      "master-key-madam": "tag:site-madam,tag:role-services",
      "master-key-madam-tailscale-egress-backup": "tag:madam-backup",
      "master-key-madam-tailscale-egress-promtail": "tag:madam-promtail",
      "master-key-master": "tag:site-master,tag:role-control-plane",
      "master-key-master-tailscale-egress-backup": "tag:master-backup",
      "master-key-master-tailscale-egress-prometheus": "tag:master-prometheus",
    });
    expect(keys.find((k) => k.name === "master-key-madam")!.inputs.create).toContain(
      "hs preauthkeys create --reusable --expiration 8760h --tags tag:site-madam,tag:role-services -o json",
    );
    expect(keys.every((k) => k.opts.additionalSecretOutputs?.includes("stdout"))).toBe(true);
    // The key is the command's stdout: never streamed to the engine's log.
    expect(new Set(keys.map((k) => k.inputs.logging))).toEqual(new Set(["stderr"]));
    // A key replaced, or of a node whose site or consumer is removed, is expired by id (from the create's JSON).
    for (const k of keys) {
      expect(k.inputs.delete).toMatch(
        /^hs preauthkeys expire --id "\$\(cat \/var\/lib\/qcloud\/preauthkeys\/[a-z]+-tailscale(-egress-[a-z]+)?\.id\)"$/m,
      );
      expect(k.inputs.delete).not.toContain("PULUMI_COMMAND_STDOUT");
      expect(k.opts.deleteBeforeReplace).toBe(true);
    }
    // Only the sites' boxes are exported (no key, no log password): each opens with its own site's key.
    expect(Object.keys(master.outputs.controlPlane!).sort()).toEqual(["sealed", "wireguardPublicKeys"]);
    const sealed = await valueOf(master.outputs.controlPlane!.sealed);
    expect(Object.keys(sealed).sort()).toEqual(["lady", "madam"]);
    expect(await pulumi.isSecret(master.outputs.controlPlane!.sealed)).toBe(true);
    const madamBundle = openBundle(sealed, "madam", "master", TEST_SEAL_KEYS.madam!.privateKey);
    const ladyBundle = openBundle(sealed, "lady", "master", TEST_SEAL_KEYS.lady!.privateKey);
    // Each site's bundle holds its own nodes' keys, by node, and its own log push password: no other site's.
    expect([ladyBundle.meshAuthKeys, ladyBundle.logPassword]).toEqual([
      {
        tailscale: "key-lady",
        "tailscale-egress-backup": "key-lady-tailscale-egress-backup",
        "tailscale-egress-nextcloud": "key-lady-tailscale-egress-nextcloud",
        "tailscale-egress-promtail": "key-lady-tailscale-egress-promtail",
      },
      "pw-master-logs-lady",
    ]);
    expect([madamBundle.meshAuthKeys, madamBundle.logPassword]).toEqual([
      {
        tailscale: "key-madam",
        "tailscale-egress-backup": "key-madam-tailscale-egress-backup",
        "tailscale-egress-promtail": "key-madam-tailscale-egress-promtail",
      },
      "pw-master-logs-madam",
    ]);
    // Three tunnel key pairs: random bytes in state, the public halves derived and public; and the sealing secret.
    expect(
      recorded
        .filter((r) => r.type === "random:index/randomBytes:RandomBytes")
        .map((r) => r.name)
        .sort(),
    ).toEqual(["master-lady", "master-madam", "master-master", "master-seal"]);
    // A log push password per other site (protected like the backup passwords), and Traefik's users file of their
    // bcrypt hashes, a secret file.
    const logPasswords = recorded.filter((r) => /-logs-/.test(r.name));
    expect(logPasswords.map((r) => [r.type, r.name, r.inputs, r.opts.protect])).toEqual(
      ["lady", "madam"].map((s) => [
        "random:index/randomPassword:RandomPassword",
        `master-logs-${s}`,
        { length: 40, special: false },
        true,
      ]),
    );
    const traefik = recorded.find(
      (r) => r.type === "docker:index/container:Container" && r.name === "master-traefik",
    )!;
    expect(isSecretValue(traefik.inputs.uploads)).toBe(true);
    expect(
      reveal<{ file: string; content: string }[]>(traefik.inputs.uploads).find(
        (u) => u.file === "/etc/traefik/secrets/logs-users",
      )?.content,
    ).toBe("lady:$2a$10$hash-of-master-logs-lady\nmadam:$2a$10$hash-of-master-logs-madam\n");
    expect(await pulumi.isSecret(master.outputs.controlPlane!.wireguardPublicKeys)).toBe(false);
    // The control plane's own tunnel config stays in its state: every site's stack reads its outputs.
    expect(master.outputs.mesh.wireguardConfig).toBeUndefined();

    recorded.length = 0;
    const wg = [
      { madam: madamBundle.wireguardPrivateKey! },
      await valueOf(master.outputs.controlPlane!.wireguardPublicKeys),
    ] as const;
    const fromMaster: Record<string, unknown> = { sealed, wireguardPublicKeys: wg[1] };
    const madam = deploySite(
      loadSite(SOURCES[2]!, estate),
      { ...testSecrets("madam"), controlPlaneOutput: (k) => pulumi.secret(fromMaster[k]) },
      { transformations: [capture] },
    );
    await valueOf(pulumi.all([madam.containers["tailscale"]!.urn, madam.outputs.mesh.wireguardConfig!]));
    const node = recorded.find(
      (r) => r.type === "docker:index/container:Container" && r.name === "madam-tailscale",
    )!;
    expect(isSecretValue(node.inputs.envs)).toBe(true);
    expect(reveal<string[]>(node.inputs.envs)).toContain("TS_AUTHKEY=key-madam");
    expect(node.opts.additionalSecretOutputs).toEqual(["envs"]);
    // Each egress node with its own key.
    for (const egress of ["tailscale-egress-backup", "tailscale-egress-promtail"]) {
      const c = recorded.find(
        (r) => r.type === "docker:index/container:Container" && r.name === `madam-${egress}`,
      )!;
      expect([egress, isSecretValue(c.inputs.envs)]).toEqual([egress, true]);
      expect(reveal<string[]>(c.inputs.envs)).toContain(`TS_AUTHKEY=key-madam-${egress}`);
    }
    expect(await valueOf(madam.outputs.mesh.wireguardConfig!)).toContain(`PrivateKey = ${wg[0].madam}`);
    // The tunnel runs on the host's network, its config (private key and all) uploaded as a secret.
    const tunnel = recorded.find(
      (r) => r.type === "docker:index/container:Container" && r.name === "madam-wireguard",
    )!;
    expect([tunnel.inputs.networkMode, tunnel.inputs.networksAdvanced]).toEqual(["host", undefined]);
    expect(isSecretValue(tunnel.inputs.uploads)).toBe(true);
    expect(reveal<{ file: string; content: string }[]>(tunnel.inputs.uploads)).toEqual([
      { file: "/config/wg_confs/wg0.conf", content: await valueOf(madam.outputs.mesh.wireguardConfig!) },
    ]);
    expect(tunnel.opts.additionalSecretOutputs).toEqual(["uploads"]);
    // Its shipper's own push password, from master's stack, as a secret file; master keeps only the hashes.
    const shipper = recorded.find(
      (r) => r.type === "docker:index/container:Container" && r.name === "madam-promtail",
    )!;
    expect(isSecretValue(shipper.inputs.uploads)).toBe(true);
    expect(
      reveal<{ file: string; content: string }[]>(shipper.inputs.uploads).find(
        (u) => u.file === "/etc/promtail/secrets/loki-password",
      ),
    ).toEqual({ file: "/etc/promtail/secrets/loki-password", content: "pw-master-logs-madam" });
  });

  test("the DNS challenge's credential reaches Traefik as a secret file beside the log users; its environment and configs hold the file's path alone", async () => {
    recorded.length = 0;
    const site = MASTER[SITE_KEY] as Record<string, unknown>;
    const src = mapSource("Pulumi.master.yaml", "master", {
      ...MASTER,
      [SITE_KEY]: {
        ...site,
        acmeDnsChallenge: { provider: "hetzner", env: { HETZNER_API_KEY: { secret: "hetznerDnsToken" } } },
      },
      "qui3tly-cloud:hetznerDnsToken": { secure: "v1:sealed" },
    });
    const master = deploySite(
      loadSite(src, loadEstate([src, ...SOURCES.slice(1)])),
      { configSecret: (k) => pulumi.secret(`cfg-${k}`) },
      { transformations: [capture] },
    );
    await valueOf(master.outputs.mesh.address);
    const traefik = recorded.find(
      (r) => r.type === "docker:index/container:Container" && r.name === "master-traefik",
    )!;
    expect(isSecretValue(traefik.inputs.uploads)).toBe(true);
    const uploads = reveal<{ file: string; content: string }[]>(traefik.inputs.uploads);
    const file = "/etc/traefik/secrets/acme-HETZNER_API_KEY";
    expect(uploads.filter((u) => u.file.startsWith("/etc/traefik/secrets/")).map((u) => u.file)).toEqual([
      "/etc/traefik/secrets/logs-users",
      file,
    ]);
    expect(uploads.find((u) => u.file === file)!.content).toBe("cfg-hetznerDnsToken");
    expect(reveal<string[]>(traefik.inputs.envs)).toEqual([`HETZNER_API_KEY_FILE=${file}`]);
    expect(uploads.filter((u) => u.file !== file && u.content.includes("cfg-hetznerDnsToken"))).toEqual([]);
  });
  test("a site the control plane has no key for yet says which stack to run first", () => {
    expect(() => controlPlaneEntry({ lady: "k" }, "madam", "master")).toThrow(
      "site `madam` has no key in `master`'s stack yet: run `pulumi up --stack master` first (it makes one for every stack file)",
    );
    expect(controlPlaneEntry({ madam: "k" }, "madam", "master")).toBe("k");
    // A node new since the control plane's last run (a flow declared for a new consumer).
    expect(() => nodeKey({ tailscale: "k" }, "madam", "tailscale-egress-promtail", "master")).toThrow(
      "site `madam` has no key for its node `tailscale-egress-promtail` in `master`'s stack yet: run `pulumi up --stack master` first (it makes one for every node of every stack file)",
    );
    expect(
      nodeKey({ "tailscale-egress-promtail": "k" }, "madam", "tailscale-egress-promtail", "master"),
    ).toBe("k");
  });
});

describe("WireGuard site-to-site", () => {
  const keys = Object.fromEntries(
    estate.sites.map((s) => [s.name, wireguardPrivateKey(crypto.randomBytes(32))] as const),
  );
  const publicKeys = Object.fromEntries(Object.entries(keys).map(([s, k]) => [s, wireguardPublicKey(k)]));
  const configOf = (s: string) => renderWireguardConfig(estate, s, { privateKey: keys[s]!, publicKeys });

  test("node:crypto derives the public key `wg pubkey` derives", () => {
    meshTools();
    for (const [s, k] of Object.entries(keys)) {
      expect([s, execFileSync("wg", ["pubkey"], { input: `${k}\n`, encoding: "utf8" }).trim()]).toEqual([
        s,
        publicKeys[s],
      ]);
    }
  });

  test("each site's config: its address and port, every other site as a peer with its subnets", () => {
    expect(configOf("lady").replace(/= [A-Za-z0-9+/]{43}=/g, "= <key>")).toBe(
      [
        "# Generated by qui3tly-cloud: WireGuard site-to-site tunnels. Do not edit.",
        "[Interface]",
        "Address = 10.90.0.2/32",
        "ListenPort = 51820",
        "PrivateKey = <key>",
        "",
        "# madam",
        "[Peer]",
        "PublicKey = <key>",
        "Endpoint = 203.0.113.30:51821",
        "AllowedIPs = 10.90.0.3/32",
        "PersistentKeepalive = 25",
        "",
        "# master",
        "[Peer]",
        "PublicKey = <key>",
        "Endpoint = 198.51.100.1:51820",
        "AllowedIPs = 10.90.0.1/32, 10.0.1.0/24",
        "PersistentKeepalive = 25",
        "",
      ].join("\n"),
    );
  });

  test("a peer whose server is not made yet (hcloud, no endpoint): no Endpoint, learnt from its handshakes", () => {
    const hcloudMadam = mapSource(
      "Pulumi.madam.yaml",
      "madam",
      servicesSite(
        {
          host: {
            kind: "hcloud",
            serverType: "cx22",
            location: "fsn1",
            sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO9 ops@laptop"],
            sshSources: ["0.0.0.0/0"],
          },
          mesh: { wireguard: { address: "10.90.0.3" }, sealPublicKey: TEST_SEAL_KEYS.madam!.publicKey },
        },
        { "hcloud:token": { secure: "v1:abc" } },
      ),
    );
    const e = loadEstate([SOURCES[0]!, SOURCES[1]!, hcloudMadam]);
    const conf = (s: string) => renderWireguardConfig(e, s, { privateKey: keys[s]!, publicKeys });
    const peer = (s: string, of: string) =>
      conf(s)
        .split("\n\n")
        .find((b) => b.startsWith(`# ${of}\n`));
    expect(peer("lady", "madam")).toBe(
      [
        "# madam",
        "[Peer]",
        `PublicKey = ${publicKeys.madam}`,
        "# Endpoint: learnt from its handshakes (its server's address is made when the server is)",
        "AllowedIPs = 10.90.0.3/32",
        "PersistentKeepalive = 25",
      ].join("\n"),
    );
    // madam starts both tunnels: it knows where master and lady are.
    expect(peer("madam", "master")).toContain("Endpoint = 198.51.100.1:51820");
    expect(peer("madam", "lady")).toContain("Endpoint = 198.51.100.2:51820");
  });

  test("wg takes every site's config on a userspace interface (wireguard-go), and reads back the same tunnel", () => {
    const bin = meshTools();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-wg-"));
    for (const [i, s] of estate.sites.entries()) {
      const ns = `qcloud-wgtest-${process.pid}-${s.name}`;
      // wireguard-go's control socket (/var/run/wireguard/<name>.sock) is not namespaced: a name per run.
      const wg = `qwg${i}-${process.pid % 100000}`;
      const conf = path.join(dir, `${s.name}.conf`);
      fs.writeFileSync(conf, configOf(s.name), { mode: 0o600 });
      // wg-quick strip: the wg(8) part of a wg-quick file; then wg(8) itself parses and applies it.
      const script = [
        "set -eu",
        `trap 'ip netns pids ${ns} | xargs -r kill; ip netns del ${ns}' EXIT`,
        `ip netns add ${ns}`,
        // Foreground, in the background: its daemon mode hangs wg's first request here.
        `ip netns exec ${ns} ${bin}/wireguard-go -f ${wg} >/dev/null 2>&1 &`,
        `for _ in $(seq 100); do [ -S /var/run/wireguard/${wg}.sock ] && break; sleep 0.1; done`,
        `wg-quick strip ${conf} > ${conf}.wg`,
        `ip netns exec ${ns} wg setconf ${wg} ${conf}.wg`,
        `ip netns exec ${ns} wg showconf ${wg}`,
      ].join("\n");
      const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
      expect([s.name, r.status, r.stderr]).toEqual([s.name, 0, ""]);
      const shown = r.stdout;
      expect(shown).toContain(`ListenPort = ${s.mesh.wireguard!.port}`);
      expect(shown).toContain(`PrivateKey = ${keys[s.name]}`);
      for (const peer of estate.sites.filter((p) => p.name !== s.name)) {
        const block = shown.split("[Peer]").find((b) => b.includes(publicKeys[peer.name]!));
        expect([peer.name, block]).toEqual([
          peer.name,
          expect.stringContaining(`${peer.mesh.wireguard!.address}/32`),
        ]);
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

test("Headscale's config: served behind Traefik, embedded DERP only, MagicDNS, the policy file", () => {
  const config = YAML.parse(
    renderHeadscaleConfig({
      domain: "qui3tly.cloud",
      estate,
      site: "master",
      controlPlane: "master",
      mesh: site("master").mesh,
      hosts: { api: "headscale.qui3tly.cloud" },
    }),
  );
  expect(config).toMatchObject({
    server_url: "https://headscale.qui3tly.cloud",
    derp: { server: { enabled: true, stun_listen_addr: "0.0.0.0:3478" }, urls: [], paths: [] },
    dns: { magic_dns: true, base_domain: "mesh.qui3tly.cloud" },
    policy: { mode: "file", path: "/etc/headscale/policy.hujson" },
    database: { type: "sqlite", sqlite: { path: "/var/lib/headscale/db.sqlite" } },
  });
});

describe("the tailnet's way into Traefik, with the real traefik", () => {
  /** Sends an HTTPS request, with a PROXY v2 header claiming `claims` if given, from `from` to 127.0.0.1:port. */
  const CLIENT = String.raw`
import ipaddress, socket, ssl, struct, sys
def get(port, src, claims, host):
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(src, 0))
    if claims != "-":
        addrs = ipaddress.IPv4Address(claims).packed + ipaddress.IPv4Address("127.0.0.1").packed
        s.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack("!H", 12) + addrs + struct.pack("!HH", 40000, port))
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    t = ctx.wrap_socket(s, server_hostname=host)
    t.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
    return t.recv(64).split(b" ")[1].decode()
for line in sys.stdin:
    port, src, claims, host = line.split()
    try: print(get(int(port), src, claims, host))
    except Exception as e: print(type(e).__name__)
`;

  test("private routes answer a tailnet client through the node (PROXY header from the ingress network), and nobody else", () => {
    const lady = loadSite(SOURCES[1]!, estate);
    const traefik = lady.services.find((s) => s.name === "traefik")!.containers[0]!;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-traefik-"));
    // The rendered configs as they are, but for where files live and where the routes lead (one local server).
    const configs = traefikConfigs(traefik, dir);
    for (const svc of Object.values(configs.dynamic.http.services) as {
      loadBalancer: Record<string, unknown>;
    }[]) {
      svc.loadBalancer = { servers: [{ url: "http://127.0.0.1:18999" }] };
    }
    fs.writeFileSync(path.join(dir, "client.py"), CLIENT);
    const privateHost = lady.routes.find((r) => r.private)!.host;
    const publicHost = lady.routes.find((r) => !r.private)!.host;
    // [what, port, from, claimed client address, host, expected status]
    const cases = [
      ["node, tailnet client, private route", 8443, "10.255.255.250", "100.64.0.5", privateHost, "200"],
      ["node, tailnet client, public route", 8443, "10.255.255.250", "100.64.0.5", publicHost, "200"],
      ["node, a client outside the tailnet", 8443, "10.255.255.250", "203.0.113.9", privateHost, "403"],
      ["not the node: the header is not believed", 8443, "127.0.0.1", "100.64.0.5", privateHost, "403"],
      [
        "the host (ingress gateway) is not the node",
        8443,
        "10.255.255.249",
        "100.64.0.5",
        privateHost,
        "403",
      ],
      ["the public entrypoint, private route", 443, "127.0.0.1", "-", privateHost, "403"],
      ["the public entrypoint, public route", 443, "127.0.0.1", "-", publicHost, "200"],
    ] as const;
    const ns = `qcloud-traefik-${process.pid}`;
    const script = [
      ...traefikIn(ns, dir, configs, {
        // The node's and the gateway's addresses on the ingress network (render/traefik.ts ingressAddresses).
        addresses: ["10.255.255.250", "10.255.255.249"],
        background: ["python3 -m http.server 18999 --bind 127.0.0.1"],
        ports: [8443, 18999],
      }),
      `ip netns exec ${ns} python3 ${dir}/client.py`,
    ].join("\n");
    try {
      const r = spawnSync("bash", ["-c", script], {
        encoding: "utf8",
        input: cases.map((c) => c.slice(1, 5).join(" ")).join("\n"),
      });
      expect([r.status, r.stderr]).toEqual([0, ""]);
      const got = r.stdout.trim().split("\n");
      expect(cases.map((c, i) => [c[0], got[i]])).toEqual(cases.map((c) => [c[0], c[5]]));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("other sites' logs through the control plane's Traefik, with the real traefik", () => {
  /** The backend in Loki's place: answers with what reached it (every tenant header, whether credentials did). */
  const BACKEND = String.raw`
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"tenant": [v for k, v in self.headers.items() if k.lower() == "x-scope-orgid"],
                           "authorization": "authorization" in (k.lower() for k in self.headers.keys())}).encode()
        self.send_response(204 if self.command == "POST" else 200)
        self.send_header("X-Seen", body.decode())
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_GET = do_POST = answer
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`;
  /** One request a line: `method path user password tenant` (`-` for none); prints `status seen`. */
  const CLIENT = String.raw`
import base64, http.client, sys
for line in sys.stdin:
    method, path, user, password, tenant = line.split()
    h = {"Content-Type": "application/x-protobuf"}
    if user != "-": h["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    if tenant != "-": h["X-Scope-OrgID"] = tenant
    c = http.client.HTTPConnection("127.0.0.1", 3100, timeout=10)
    c.request(method, path, body=b"x" if method == "POST" else None, headers=h)
    r = c.getresponse()
    print(r.status, r.getheader("X-Seen") or "-")
`;

  test("a site's push lands in its own tenant whatever it claims; wrong or no password is 401; nothing but the push path is routed", () => {
    const master = loadSite(SOURCES[0]!, estate);
    const traefik = master.services.find((s) => s.name === "traefik")!.containers[0]!;
    expect(traefik.secretFiles).toEqual({ "/etc/traefik/secrets/logs-users": { input: "logsUsers" } });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-logs-"));
    const configs = traefikConfigs(traefik, dir);
    const dynamic = configs.dynamic;
    expect(configs.staticConfig.entryPoints.logs).toEqual({ address: ":3100" });
    // As rendered, but for where the users file lives and where Loki is (the backend above).
    expect(dynamic.http.routers["logs-push"]).toEqual({
      rule: "Path(`/loki/api/v1/push`)",
      entryPoints: ["logs"],
      middlewares: ["logs-tenant-clear", "logs-tenant"],
      service: "logs-push",
    });
    expect(dynamic.http.middlewares["logs-tenant"].basicAuth.usersFile).toBe(
      "/etc/traefik/secrets/logs-users",
    );
    dynamic.http.middlewares["logs-tenant"].basicAuth.usersFile = path.join(dir, "logs-users");
    dynamic.http.services["logs-push"].loadBalancer.servers = [{ url: "http://127.0.0.1:18998" }];
    // No other router is on the logs entrypoint.
    const onLogs = Object.entries(dynamic.http.routers as Record<string, { entryPoints: string[] }>)
      .filter(([, r]) => r.entryPoints.includes("logs"))
      .map(([id]) => id);
    expect(onLogs).toEqual(["logs-push"]);
    // The users file as the stack writes it: `site:bcrypt` a line. htpasswd's bcrypt is the provider's ($2a$ and
    // $2y$ are the same algorithm; random.RandomPassword's bcryptHash writes $2a$).
    const passwords = { lady: "lady-push-password-1", madam: "madam-push-password-2" };
    const users = Object.entries(passwords).map(([site, pw]) =>
      execFileSync("htpasswd", ["-nbB", "-C", "10", site, pw], { encoding: "utf8" })
        .trim()
        .replace("$2y$", "$2a$"),
    );
    fs.writeFileSync(path.join(dir, "logs-users"), `${users.join("\n")}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, "backend.py"), BACKEND);
    fs.writeFileSync(path.join(dir, "client.py"), CLIENT);
    const push = "/loki/api/v1/push";
    const seen = (tenant: string) => `{"tenant": ["${tenant}"], "authorization": false}`;
    // [what, request, expected `status seen`]
    const cases: [string, string, string][] = [
      [
        "lady's push claiming master's tenant",
        `POST ${push} lady ${passwords.lady} master`,
        `204 ${seen("lady")}`,
      ],
      ["lady's push naming no tenant", `POST ${push} lady ${passwords.lady} -`, `204 ${seen("lady")}`],
      [
        "madam's push claiming lady's tenant",
        `POST ${push} madam ${passwords.madam} lady`,
        `204 ${seen("madam")}`,
      ],
      ["lady's name with madam's password", `POST ${push} lady ${passwords.madam} lady`, "401 -"],
      ["a wrong password", `POST ${push} lady not-the-password lady`, "401 -"],
      ["no credentials at all", `POST ${push} - - lady`, "401 -"],
      ["master is no user of the logs entrypoint", `POST ${push} master ${passwords.lady} master`, "401 -"],
      [
        "a query, with lady's password",
        `GET /loki/api/v1/query_range?query={} lady ${passwords.lady} lady`,
        "404 -",
      ],
      ["the labels API", `GET /loki/api/v1/labels lady ${passwords.lady} -`, "404 -"],
      ["the tail", `GET /loki/api/v1/tail lady ${passwords.lady} -`, "404 -"],
      ["under the push path", `POST ${push}/x lady ${passwords.lady} -`, "404 -"],
      ["Loki's readiness", "GET /ready - - -", "404 -"],
    ];
    const ns = `qcloud-logs-${process.pid}`;
    const script = [
      ...traefikIn(ns, dir, configs, {
        background: [`python3 ${dir}/backend.py 18998`],
        ports: [3100, 18998],
      }),
      // The file provider loads the routes a moment after the entrypoint listens.
      `for _ in $(seq 100); do [ "$(ip netns exec ${ns} python3 -c 'import http.client as h; c = h.HTTPConnection("127.0.0.1", 3100); c.request("POST", "${push}"); print(c.getresponse().status)')" = 401 ] && break; sleep 0.1; done`,
      `ip netns exec ${ns} python3 ${dir}/client.py`,
    ].join("\n");
    try {
      const r = spawnSync("bash", ["-c", script], {
        encoding: "utf8",
        input: cases.map((c) => c[1]).join("\n"),
      });
      expect([r.status, r.stderr]).toEqual([0, ""]);
      const got = r.stdout.trim().split("\n");
      expect(cases.map((c, i) => [c[0], got[i]])).toEqual(cases.map((c) => [c[0], c[2]]));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a route two sites serve, with the real traefik", () => {
  /**
   * In Traefik's network namespace: its own instance (`local`) and the peer's forwarder (`peer`) as two HTTP
   * servers; requests as the node forwards them (PROXY header from the node's address, a tailnet client in it).
   * Prints one JSON line: what each step got, and the seconds from an instance stopped or started to the answer.
   */
  const DRIVER = String.raw`
import ipaddress, json, socket, ssl, struct, subprocess, sys, time, os
d, node, first = sys.argv[1:4]
other = "local" if first == "peer" else "peer"
ports = {"local": 18998, "peer": 18997}
def serve(name):
    # The page, and the route's probe path (Homepage's health check), which Traefik asks.
    os.makedirs(f"{d}/{name}/api", exist_ok=True)
    open(f"{d}/{name}/index.html", "w").write(name)
    open(f"{d}/{name}/api/healthcheck", "w").write("up")
    return subprocess.Popen([sys.executable, "-m", "http.server", str(ports[name]), "--bind", "127.0.0.1", "-d", f"{d}/{name}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
def get(port, tls):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(node, 0))
        addrs = ipaddress.IPv4Address("100.64.0.5").packed + ipaddress.IPv4Address("127.0.0.1").packed
        s.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack("!H", 12) + addrs + struct.pack("!HH", 40000, port))
        if tls:
            ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname="home.qui3tly.cloud")
        s.sendall(b"GET / HTTP/1.1\r\nHost: home.qui3tly.cloud\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096): data += chunk
        status = data.split(b" ")[1].decode()
        return data.rsplit(b"\r\n\r\n", 1)[1].decode() if status == "200" else status
    except Exception as e:
        return type(e).__name__
def until(want, port=8443, tls=True, limit=30):
    t = time.time()
    while time.time() - t < limit:
        if get(port, tls) == want: return round(time.time() - t, 2)
        time.sleep(0.1)
    return None
def listening(port):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); return
        except OSError:
            time.sleep(0.1)
running = {name: serve(name) for name in ports}
for port in ports.values(): listening(port)
def stop(name):
    running[name].kill(); running[name].wait()
out = {"ready": until(first, limit=20), "peer entrypoint": get(8444, False)}
stop(first)
out["first stopped -> the other"] = until(other)
running[first] = serve(first)
listening(ports[first])
out["first started -> it again"] = until(first)
stop("local")
out["own stopped -> peer entrypoint 503"] = until("503", port=8444, tls=False)
stop("peer")
print(json.dumps(out))
`;

  test.each([
    ["lady, the standby: the primary's instance first", "lady", "10.255.255.242", "peer"],
    ["master, the primary: its own instance first", "master", "10.255.255.250", "local"],
  ])(
    "%s; the other's within the health check when it stops, back when it returns; the peer entrypoint serves its own only",
    (_what, site, node, first) => {
      const src = [
        mapSource("Pulumi.master.yaml", "master", committed("master", {})),
        mapSource(
          "Pulumi.lady.yaml",
          "lady",
          committed("lady", {
            mesh: { ingressSubnet: "10.255.255.240/29", sealPublicKey: TEST_SEAL_KEYS.lady!.publicKey },
            services: { pihole: { follows: "master" }, homepage: { follows: "master" } },
          }),
        ),
      ];
      const model = loadSite(
        src.find((s) => s.stack === site)!,
        loadEstate(src),
      );
      const traefik = model.services.find((s) => s.name === "traefik")!.containers[0]!;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-failover-"));
      const configs = traefikConfigs(traefik, dir);
      const dynamic = configs.dynamic;
      // The rendered services as they are (failover, health checks), but for where their servers are.
      const where: Record<string, string> = {
        "homepage-web-local": "http://127.0.0.1:18998",
        "homepage-web-peers": "http://127.0.0.1:18997",
      };
      for (const [name, svc] of Object.entries(dynamic.http.services) as [string, Record<string, any>][]) {
        if (svc.loadBalancer) svc.loadBalancer.servers = [{ url: where[name] ?? "http://127.0.0.1:18999" }];
      }
      // Master's CrowdSec bouncer is not here to ask: its middleware is left out.
      for (const router of Object.values(dynamic.http.routers) as { middlewares?: string[] }[])
        router.middlewares = router.middlewares?.filter((m) => m !== "crowdsec");
      fs.writeFileSync(path.join(dir, "driver.py"), DRIVER);
      const ns = `qcloud-failover-${process.pid}`;
      const script = [
        // The site's node's address on its ingress network (render/traefik.ts ingressAddresses).
        ...traefikIn(ns, dir, configs, { addresses: [node], background: [], ports: [8443, 8444] }),
        `ip netns exec ${ns} python3 ${dir}/driver.py ${dir} ${node} ${first}`,
      ].join("\n");
      try {
        const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
        expect([r.status, r.stderr]).toEqual([0, ""]);
        console.log(`failover with the real traefik, ${site}: ${r.stdout.trim()}`);
        const got = JSON.parse(r.stdout) as Record<string, number | string | null>;
        expect(got["peer entrypoint"]).toBe("local");
        // Each change within a check's interval and timeout (render/traefik.ts FAILOVER_HEALTH: 5 s at most).
        for (const k of [
          "ready",
          "first stopped -> the other",
          "first started -> it again",
          "own stopped -> peer entrypoint 503",
        ])
          expect([k, typeof got[k] === "number" && (got[k] as number) < 6]).toEqual([k, true]);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe("a standby's certificate by the DNS challenge, with the real traefik, Let's Encrypt's test server (pebble) and BIND", () => {
  /**
   * A tailnet client's request through the node (as the failover driver's): TLS verified against the ACME server's
   * root, for the name. Prints the status, or the error.
   */
  const CLIENT = String.raw`
import ipaddress, socket, ssl, struct, sys
root, node, host = sys.argv[1:4]
try:
    s = socket.create_connection(("127.0.0.1", 8443), timeout=5, source_address=(node, 0))
    addrs = ipaddress.IPv4Address("100.64.0.5").packed + ipaddress.IPv4Address("127.0.0.1").packed
    s.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack("!H", 12) + addrs + struct.pack("!HH", 40000, 8443))
    t = ssl.create_default_context(cafile=root).wrap_socket(s, server_hostname=host)
    t.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
    print(t.recv(64).split(b" ")[1].decode(), t.getpeercert()["issuer"])
except Exception as e:
    print(type(e).__name__, e)
`;
  /** A zone of the estate's domain, updated with a TSIG key only: what an operator's own DNS server holds. */
  const named = (dir: string, secret: string) => `options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  session-keyfile "${dir}/session.key";
  listen-on port 53 { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
};
key "acme" { algorithm hmac-sha256; secret "${secret}"; };
zone "qui3tly.cloud" { type primary; file "${dir}/qui3tly.cloud.zone"; allow-update { key "acme"; }; };
`;
  const ZONE = [
    "$TTL 60",
    "@ IN SOA ns.qui3tly.cloud. hostmaster.qui3tly.cloud. 1 60 60 600 60",
    "@ IN NS ns.qui3tly.cloud.",
    "ns IN A 127.0.0.1",
    "",
  ].join("\n");

  test("lady, master's Homepage standby, gets a certificate for its name from the ACME server by an RFC 2136 update with a TSIG key read from a secret file", () => {
    const tsig = crypto.randomBytes(32).toString("base64");
    const src = [
      mapSource("Pulumi.master.yaml", "master", committed("master", {})),
      mapSource("Pulumi.lady.yaml", "lady", {
        ...committed("lady", {
          mesh: { ingressSubnet: "10.255.255.240/29", sealPublicKey: TEST_SEAL_KEYS.lady!.publicKey },
          services: { pihole: { follows: "master" }, homepage: { follows: "master" } },
          acmeDnsChallenge: {
            provider: "rfc2136",
            env: {
              RFC2136_NAMESERVER: "127.0.0.1:53",
              RFC2136_TSIG_ALGORITHM: "hmac-sha256.",
              RFC2136_TSIG_KEY: "acme",
              RFC2136_TSIG_SECRET: { secret: "dnsTsigSecret" },
            },
            resolvers: ["127.0.0.1:53"],
          },
        }),
        "qui3tly-cloud:dnsTsigSecret": { secure: "v1:sealed" },
      }),
    ];
    const lady = loadSite(src[1]!, loadEstate(src));
    const traefik = lady.services.find((s) => s.name === "traefik")!.containers[0]!;
    const secretFile = "/etc/traefik/secrets/acme-RFC2136_TSIG_SECRET";
    expect(traefik.secretFiles).toEqual({ [secretFile]: { config: "dnsTsigSecret" } });
    expect(traefik.env).toEqual({
      RFC2136_NAMESERVER: "127.0.0.1:53",
      RFC2136_TSIG_ALGORITHM: "hmac-sha256.",
      RFC2136_TSIG_KEY: "acme",
      RFC2136_TSIG_SECRET_FILE: secretFile,
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-acme-"));
    const ns = `qcloud-acme-${process.pid}`;
    // The namespace's resolver (`ip netns exec` mounts it on /etc/resolv.conf): the zone's server, as a host's is
    // the one that knows its names. lego looks up the zone's name servers' addresses with it.
    const netns = "/etc/netns";
    const made = !fs.existsSync(netns);
    fs.mkdirSync(path.join(netns, ns), { recursive: true });
    fs.writeFileSync(path.join(netns, ns, "resolv.conf"), "nameserver 127.0.0.1\n");
    try {
      const configs = traefikConfigs(traefik, dir);
      expect(configs.staticConfig.certificatesResolvers.letsencrypt.acme).toEqual({
        email: "ops@qui3tly.cloud",
        storage: path.join(dir, "acme.json"),
        dnsChallenge: { provider: "rfc2136", resolvers: ["127.0.0.1:53"] },
      });
      // The rendered configs as they are, but for the ACME server (pebble, here) and where the route leads.
      configs.staticConfig.certificatesResolvers.letsencrypt.acme.caServer = "https://127.0.0.1:14000/dir";
      for (const svc of Object.values(configs.dynamic.http.services) as Record<string, any>[]) {
        if (svc.loadBalancer) svc.loadBalancer.servers = [{ url: "http://127.0.0.1:18999" }];
      }
      // Its environment as its container's, the secret file where this machine has it.
      fs.writeFileSync(path.join(dir, "tsig"), tsig, { mode: 0o600 });
      const env = Object.fromEntries(
        Object.entries(traefik.env).map(([k, v]) => [
          k,
          v === secretFile ? path.join(dir, "tsig") : (v as string),
        ]),
      );
      // pebble's API is HTTPS: its certificate, from a CA lego is told to trust (LEGO_CA_CERTIFICATES).
      const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
      const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
      ssl(
        "req",
        "-x509",
        ...key,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=test CA",
      );
      ssl("req", ...key, "-keyout", "api.key", "-out", "api.csr", "-subj", "/CN=pebble");
      fs.writeFileSync(path.join(dir, "san"), "subjectAltName=IP:127.0.0.1\n");
      ssl(
        ...["x509", "-req", "-in", "api.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"],
        ...["-out", "api.pem", "-days", "1", "-extfile", "san"],
      );
      fs.writeFileSync(
        path.join(dir, "pebble.json"),
        JSON.stringify({
          pebble: {
            listenAddress: "127.0.0.1:14000",
            managementListenAddress: "127.0.0.1:15000",
            certificate: path.join(dir, "api.pem"),
            privateKey: path.join(dir, "api.key"),
            httpPort: 80,
            tlsPort: 443,
          },
        }),
      );
      fs.writeFileSync(path.join(dir, "named.conf"), named(dir, tsig));
      fs.writeFileSync(path.join(dir, "qui3tly.cloud.zone"), ZONE);
      fs.writeFileSync(path.join(dir, "client.py"), CLIENT);
      // The page, and the route's probe path (Homepage's health check), which Traefik asks.
      fs.mkdirSync(path.join(dir, "www", "api"), { recursive: true });
      fs.writeFileSync(path.join(dir, "www", "api", "healthcheck"), "up");
      const node = "10.255.255.242";
      const script = [
        ...traefikIn(ns, dir, configs, {
          addresses: [node],
          background: [
            `bash -c 'named -g -c ${dir}/named.conf >${dir}/named.log 2>&1'`,
            // No random waits or refused nonces: the test server's chaos is for ACME clients' authors.
            `bash -c 'PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 ${meshTools()}/pebble -config ${dir}/pebble.json -dnsserver 127.0.0.1:53 >${dir}/pebble.log 2>&1'`,
            `python3 -m http.server 18999 --bind 127.0.0.1 -d ${dir}/www`,
          ],
          backgroundPorts: [53, 14000, 15000, 18999],
          env: { ...env, LEGO_CA_CERTIFICATES: path.join(dir, "ca.pem") },
          ports: [8443],
        }),
        // The ACME server's root, which signs what it issues.
        `ip netns exec ${ns} curl -sf --cacert ${dir}/ca.pem https://127.0.0.1:15000/roots/0 >${dir}/root.pem`,
        `t0=$(date +%s.%N)`,
        // 120 s, within the bound below: a certificate that never comes fails with what the servers logged.
        `while (( $(date +%s) - \${t0%.*} < 120 )); do`,
        `  got=$(ip netns exec ${ns} python3 ${dir}/client.py ${dir}/root.pem ${node} home.qui3tly.cloud)`,
        `  case "$got" in 200*) echo "$got"; awk "BEGIN { printf \\"%.2f\\", $(date +%s.%N) - $t0 }"; exit 0 ;; esac`,
        `  sleep 0.1`,
        `done`,
        `echo "$got"; grep -i acme ${dir}/traefik.log | tail -n 20; tail -n 20 ${dir}/pebble.log ${dir}/named.log; exit 1`,
      ].join("\n");
      // A bound: a run that hangs fails here, with what the loop printed.
      const r = spawnSync("bash", ["-c", script], { encoding: "utf8", timeout: 180_000 });
      expect([r.status, r.stderr, r.stdout]).toEqual([0, "", expect.stringMatching(/^200 /)]);
      console.log(`the standby's certificate by the DNS challenge: ${r.stdout.trim().split("\n").at(-1)} s`);
    } finally {
      fs.rmSync(made ? netns : path.join(netns, ns), { recursive: true, force: true });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a published UDP port whose container was replaced, on a real netfilter table", () => {
  // conntrack, netfilter and the script are real; `docker` is a stand-in (a file read back), as the script only asks
  // it for the containers' ids and start times.
  // In a network namespace of its own: a peer keeps sending to the published port from one source port, first to
  // the port's listener while no DNAT rule exists (Docker's userland proxy), then the rule for the new container
  // comes, as Docker adds it; then the rendered script (by dash, as cron runs it), with the real conntrack (Debian's,
  // by scripts/mesh-tools.sh).
  test("the peer's flow stays on its stale entry (the proxy) until the script drops it, then reaches the container", () => {
    meshTools(); // it installs conntrack
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-udp-flows-"));
    const ns = `qcloud-udp-${process.pid}`;
    const py = (lines: string[]) => `python3 -c '${lines.join("\n")}'`;
    const listen = (address: string, log: string) =>
      `ip netns exec ${ns} ${py([
        "import socket",
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
        `s.bind(("${address}", 41641))`,
        "while True:",
        "    s.recv(64)",
        `    open("${dir}/${log}", "a").write("x")`,
      ])} &`;
    const count = (log: string) => `$(cat ${dir}/${log} 2>/dev/null | wc -c)`;
    fs.writeFileSync(
      path.join(dir, "flush.sh"),
      renderUdpFlowsScript([
        { container: "tailscale", ports: [41641] },
        { container: "headscale", ports: [3478, 41641] },
      ]),
    );
    // What `docker inspect` tells of the containers: a stand-in printing a file, so a start can be made at will.
    fs.mkdirSync(path.join(dir, "bin"));
    fs.writeFileSync(path.join(dir, "bin", "docker"), `#!/bin/sh\ncat ${dir}/started\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(dir, "started"), "a 2026-12-02T08:00:00Z\n");
    const flush = (flag = "") =>
      `ip netns exec ${ns} env PATH=${dir}/bin:$PATH QCLOUD_UDP_FLOWS_STATE=${dir}/state sh ${dir}/flush.sh ${flag}`;
    try {
      const out = execFileSync(
        "bash",
        [
          "-c",
          [
            "set -eu",
            `trap 'ip netns pids ${ns} | xargs -r kill; ip netns del ${ns}' EXIT`,
            `ip netns add ${ns}`,
            `ip -n ${ns} link set lo up`,
            `ip -n ${ns} addr add 10.77.0.2/32 dev lo`,
            // Tracked, as on a Docker host (its filter rules match on conntrack state).
            `ip netns exec ${ns} iptables -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
            listen("127.0.0.1", "proxy"),
            listen("10.77.0.2", "container"),
            "sleep 0.3",
            `ip netns exec ${ns} ${py([
              "import socket, time",
              "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
              's.bind(("127.0.0.1", 45000))',
              "while True:",
              '    s.sendto(b"p", ("127.0.0.1", 41641))',
              "    time.sleep(0.05)",
            ])} &`,
            "sleep 0.5",
            `ip netns exec ${ns} iptables -t nat -A OUTPUT -d 127.0.0.1 -p udp --dport 41641 -j DNAT --to-destination 10.77.0.2:41641`,
            "sleep 0.5",
            `echo "before: proxy ${count("proxy")} container ${count("container")}"`,
            flush(),
            `before=${count("proxy")}`,
            "sleep 0.5",
            `echo "after: proxy $((${count("proxy")} - before)) container ${count("container")}"`,
            // The minute job: nothing while no container started since; a flush once one did.
            flush("--if-started"),
            "echo unchanged",
            `echo "b 2026-12-02T08:05:00Z" >${dir}/started`,
            flush("--if-started"),
          ].join("\n"),
        ],
        { encoding: "utf8", timeout: 30_000 },
      );
      expect(out.trim().split("\n")).toEqual([
        // Stale: after the rule, the peer's packets still go to the proxy, none to the container.
        expect.stringMatching(/^before: proxy [1-9]\d* container 0$/),
        // Each port once, in order; a port without flows is no error.
        "udp/3478: 0 flow entries have been deleted.",
        "udp/41641: 1 flow entries have been deleted.",
        // Dropped: the next packet takes the rule, to the container.
        expect.stringMatching(/^after: proxy 0 container [1-9]\d*$/),
        "unchanged",
        "udp/3478: 0 flow entries have been deleted.",
        // The flow, on its new entry: dropped again (harmless: its next packet takes the same rule).
        "udp/41641: 1 flow entries have been deleted.",
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
