import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import YAML from "yaml";
import { fileSource } from "../config/source";
import { loadSite } from "../model/site";
import { sealKeyPair } from "../render/seal";
import { sandboxSealKey, writeSandboxProject } from "../scripts/sandbox/stackConfig";

const ROOT = path.resolve(__dirname, "..");
const SEAL = sealKeyPair();
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFIdRTPTw6X0umMmBZzdePQhA3OukWrBjACn5HI8HwQR";

describe("the sandbox twin of a stack file", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "twin-"));
  afterAll(() => fs.rmSync(dir, { recursive: true }));
  writeSandboxProject(dir, ROOT, {
    lady: { port: 2202, hostKey: KEY },
    bench: { port: 2203, hostKey: KEY, template: "master", address: "172.30.0.3" },
  });

  test("same role, services and containers; the host, registry and protection are the sandbox's", () => {
    const real = loadSite(fileSource(path.join(ROOT, "Pulumi.lady.yaml")));
    const twin = loadSite(fileSource(path.join(dir, "Pulumi.lady.yaml")));
    expect(twin.host).toEqual({
      kind: "existing",
      address: "127.0.0.1",
      user: "root",
      port: 2202,
      // The tailnet node forwards admins' SSH to the server's own sshd port, not the published one.
      sshdPort: 22,
      hostKey: KEY,
    });
    expect([twin.protect, twin.registry]).toEqual([false, "registry:5000"]);
    const names = (m: typeof real) => m.services.flatMap((s) => s.containers.map((c) => c.name));
    expect(names(twin)).toEqual(names(real));
    expect(twin.services.flatMap((s) => s.containers.map((c) => c.image))).toEqual(
      real.services.flatMap((s) => s.containers.map((c) => `registry:5000/${c.image}`)),
    );
  });

  test("a site can copy another committed stack (the benchmark's), and the project's main is this repository", () => {
    const bench = loadSite(fileSource(path.join(dir, "Pulumi.bench.yaml")));
    expect(bench.role).toBe("control-plane");
    // No trusted certificate in the sandbox: the tailnet logs in to Headscale published on the server's own address.
    expect([bench.mesh.loginServer, bench.mesh.headscalePort]).toEqual(["http://172.30.0.3:18080", 18080]);
    // The e2e's admin device logs in as the sandbox's admin.
    expect(bench.mesh.admins).toEqual(["ops"]);
    // And a WireGuard tunnel on the server's address.
    expect(bench.mesh.wireguard).toEqual({
      address: "10.90.0.3",
      endpoint: "172.30.0.3",
      port: 51820,
      subnets: [],
    });
    expect(bench.services.map((s) => s.name)).toContain("wireguard");
    expect(bench.services.find((s) => s.name === "headscale")!.containers[0]!.ports).toContainEqual({
      internal: 8080,
      external: 18080,
      protocol: "tcp",
      ip: "0.0.0.0",
    });
    const project = YAML.parse(fs.readFileSync(path.join(dir, "Pulumi.yaml"), "utf8"));
    expect([project.name, path.resolve(dir, project.main)]).toEqual(["qui3tly-cloud", ROOT]);
  });

  test("an hcloud site's twin keeps its server type and location, with the sandbox's key and SSH source; its tunnel has no endpoint", () => {
    // The stand-in's token, as `initHcloud` sets it: the twin keeps the stack's other config.
    fs.writeFileSync(
      path.join(dir, "Pulumi.madam.yaml"),
      YAML.stringify({ config: { "hcloud:token": { secure: "v1:token" } } }),
    );
    writeSandboxProject(dir, ROOT, {
      madam: { kind: "hcloud", sshKey: KEY, sshSource: "10.213.47.1", sealPublicKey: SEAL.publicKey },
    });
    const real = loadSite(fileSource(path.join(ROOT, "Pulumi.madam.yaml")));
    const twin = loadSite(fileSource(path.join(dir, "Pulumi.madam.yaml")));
    expect(twin.host).toEqual({
      kind: "hcloud",
      serverType: real.host.kind === "hcloud" ? real.host.serverType : "",
      location: real.host.kind === "hcloud" ? real.host.location : "",
      image: "debian-12",
      sshKeys: [KEY],
      sshSources: ["10.213.47.1/32"],
    });
    expect([twin.protect, twin.registry, twin.mesh.sealPublicKey]).toEqual([
      false,
      "registry:5000",
      SEAL.publicKey,
    ]);
    expect(twin.mesh.wireguard).toEqual({ address: "10.90.0.3", port: 51820, subnets: [] });
  });

  test("a services site's twin has the sandbox's own sealing public key; a control plane's none", () => {
    const pair = sealKeyPair();
    writeSandboxProject(dir, ROOT, {
      lady: { port: 2202, hostKey: KEY, sealPublicKey: pair.publicKey },
      bench: { port: 2203, hostKey: KEY, template: "master", address: "172.30.0.3", sealPublicKey: "x" },
    });
    const committed = loadSite(fileSource(path.join(ROOT, "Pulumi.lady.yaml"))).mesh.sealPublicKey;
    const twin = loadSite(fileSource(path.join(dir, "Pulumi.lady.yaml")));
    expect([twin.mesh.sealPublicKey, committed === pair.publicKey]).toEqual([pair.publicKey, false]);
    // Its other mesh settings are the committed ones.
    expect(twin.mesh.wireguard?.address).toBe("10.90.0.2");
    expect(loadSite(fileSource(path.join(dir, "Pulumi.bench.yaml"))).mesh.sealPublicKey).toBeUndefined();
    // A fresh pair until the twin holds the secret half with it; then that pair is kept.
    expect(sandboxSealKey(dir, ROOT, "lady")).toEqual({ needed: true });
    expect(sandboxSealKey(dir, ROOT, "bench", "master")).toEqual({ needed: false });
    const file = path.join(dir, "Pulumi.lady.yaml");
    const doc = YAML.parse(fs.readFileSync(file, "utf8"));
    doc.config["qui3tly-cloud:sealKey"] = { secure: "v1:abc" };
    fs.writeFileSync(file, YAML.stringify(doc));
    expect(sandboxSealKey(dir, ROOT, "lady")).toEqual({ needed: true, existing: pair.publicKey });
  });

  test("what Pulumi wrote into an existing twin (salt, encrypted key) is kept", () => {
    const file = path.join(dir, "Pulumi.lady.yaml");
    const doc = YAML.parse(fs.readFileSync(file, "utf8"));
    doc.encryptionsalt = "v1:salt";
    doc.config["qui3tly-cloud:sshPrivateKey"] = { secure: "v1:abc" };
    fs.writeFileSync(file, YAML.stringify(doc));
    writeSandboxProject(dir, ROOT, { lady: { port: 2299, hostKey: KEY } });
    const again = YAML.parse(fs.readFileSync(file, "utf8"));
    expect([
      again.encryptionsalt,
      again.config["qui3tly-cloud:sshPrivateKey"],
      again.config["qui3tly-cloud:site"].host.port,
    ]).toEqual(["v1:salt", { secure: "v1:abc" }, 2299]);
  });
});
