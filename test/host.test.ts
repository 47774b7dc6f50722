import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { preflight, sshOptions, urlHost, writeSshClientFiles } from "../components/host";
import YAML from "yaml";
import { servicesSite } from "./fixtures";
import { mapSource } from "../config/source";
import { loadSite } from "../model/site";
import { renderSiteFiles } from "../render/site";
import {
  HOST_KEY_PLACEHOLDER,
  firewallRules,
  hostKeyWarning,
  renderCloudInit,
  renderDockerBootstrap,
  sshHostKey,
} from "../render/host";

const existing = (port: number) => ({ kind: "existing" as const, address: "127.0.0.1", user: "root", port });
/** A new hcloud server, as a stack file gives it with every default filled in. */
const HCLOUD = {
  kind: "hcloud" as const,
  serverType: "cx22",
  location: "fsn1" as const,
  image: "debian-12",
  sshKeys: ["ssh-ed25519 AAAA"],
  sshSources: ["0.0.0.0/0"],
};

describe("preflight: an unreachable host fails before anything is touched", () => {
  test("a closed port names the site, the address, the reason and the stack file", async () => {
    // Bind then close: a loopback port nobody listens on.
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((r) => server.close(r));
    await expect(preflight("lady", "Pulumi.lady.yaml", existing(port))).rejects.toThrow(
      new RegExp(
        `^site \`lady\`: cannot reach 127.0.0.1:${port} \\(ECONNREFUSED\\); expected an SSH server there\\. ` +
          "Check the host or `qui3tly-cloud:site.host` in Pulumi.lady.yaml\\.$",
      ),
    );
  });

  test("a listening port passes", async () => {
    const server = net.createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    await expect(preflight("lady", "Pulumi.lady.yaml", existing(port))).resolves.toBeUndefined();
    await new Promise((r) => server.close(r));
  });

  test("a new hcloud server is not probed", async () => {
    await expect(preflight("madam", "Pulumi.madam.yaml", HCLOUD)).resolves.toBeUndefined();
  });
});

describe("host renders", () => {
  test("the Docker bootstrap installs only when missing and reports the version", () => {
    const script = renderDockerBootstrap();
    expect(script).toMatch(/^set -eu\n/);
    expect(script).toContain("if ! command -v docker >/dev/null 2>&1; then");
    expect(script.trim().split("\n").pop()).toBe("docker version --format 'docker {{.Server.Version}}'");
  });

  test("loopback-bound ports stay closed in the firewall; duplicates collapse", () => {
    const rules = firewallRules(
      ["0.0.0.0/0"],
      [
        { internal: 53, external: 53, protocol: "udp", ip: "127.0.0.1" },
        { internal: 443, external: 443, protocol: "tcp", ip: "0.0.0.0" },
        { internal: 443, external: 443, protocol: "tcp", ip: "0.0.0.0" },
      ],
    );
    expect(rules.map((r) => `${r.port}/${r.protocol}`)).toEqual(["22/tcp", "443/tcp"]);
  });
});

describe("SSH client files for Docker", () => {
  const dir = () => fs.mkdtempSync(path.join(os.tmpdir(), "ssh-"));
  const pinned = { ...existing(2201), hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey" };

  test("a pinned host key becomes a known_hosts line, checked strictly; the key file is 0600", () => {
    const d = dir();
    const files = writeSshClientFiles("qc-lady", pinned, "KEY", d);
    expect(files).toEqual({
      privateKey: path.join(d, "qc-lady.key"),
      knownHosts: path.join(d, "qc-lady.known_hosts"),
    });
    expect(fs.readFileSync(files.knownHosts!, "utf8")).toBe(
      "[127.0.0.1]:2201 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey\n",
    );
    expect(fs.readFileSync(files.privateKey!, "utf8")).toBe("KEY\n");
    expect(fs.statSync(files.privateKey!).mode & 0o777).toBe(0o600);
    expect(sshOptions(files)).toEqual([
      "-o",
      "BatchMode=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${files.knownHosts}`,
      "-o",
      "IdentitiesOnly=yes",
      "-i",
      files.privateKey,
    ]);
    fs.rmSync(d, { recursive: true });
  });

  test("with neither key nor pin: no files, the agent and trust on first use", () => {
    const d = dir();
    expect(writeSshClientFiles("qc-lady", existing(22), undefined, d)).toEqual({});
    expect(fs.readdirSync(d)).toEqual([]);
    expect(sshOptions({})).toEqual(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"]);
    fs.rmSync(d, { recursive: true });
  });
});

describe("addresses and key directories", () => {
  test.each([
    ["203.0.113.7", "203.0.113.7"],
    ["2001:db8::1", "[2001:db8::1]"],
    ["lady.qui3tly.cloud", "lady.qui3tly.cloud"],
  ])("%s in a URL is %s", (address, host) => expect(urlHost(address)).toBe(host));

  test("a key directory others can read is refused", () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "ssh-"));
    fs.chmodSync(d, 0o755);
    expect(() => writeSshClientFiles("qc", existing(22), "KEY", d)).toThrow(
      `${d}: expected a directory owned by you with mode 0700, for SSH keys; remove it and retry`,
    );
    fs.rmSync(d, { recursive: true });
  });
});

describe("an hcloud server's host key, made in the program", () => {
  const seed = Buffer.from("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "hex");
  const key = sshHostKey(seed);

  test("is a private key the real ssh-keygen reads, whose public half is the one pinned", () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "hostkey-"));
    const file = path.join(d, "ssh_host_ed25519_key");
    fs.writeFileSync(file, key.privateKey, { mode: 0o600 });
    expect(execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" })).toBe(
      `${key.publicKey} qui3tly-cloud host key\n`,
    );
    fs.rmSync(d, { recursive: true });
  });

  test("is the same for the same seed (user-data never changes), and another for another seed", () => {
    expect(sshHostKey(Buffer.from(seed))).toEqual(key);
    expect(sshHostKey(Buffer.alloc(32, 9)).publicKey).not.toBe(key.publicKey);
    expect(() => sshHostKey(Buffer.alloc(31))).toThrow("an Ed25519 seed is 32 bytes, got 31");
  });

  test("cloud-init installs it as the only host key, and Docker", () => {
    const doc = YAML.parse(renderCloudInit(key));
    expect(renderCloudInit(key).split("\n")[0]).toBe("#cloud-config");
    expect(doc).toMatchObject({
      ssh_deletekeys: true,
      ssh_keys: { ed25519_private: key.privateKey, ed25519_public: key.publicKey },
      packages: ["docker.io"],
      runcmd: [["systemctl", "enable", "--now", "docker"]],
    });
    expect(Object.keys(doc)).toEqual([
      "ssh_deletekeys",
      "ssh_keys",
      "write_files",
      "package_update",
      "packages",
      "runcmd",
    ]);
    expect(doc.write_files[0].path).toBe("/etc/systemd/system/docker.service.d/qcloud-no-metadata.conf");
    expect(doc.write_files[0].content).toContain("iptables -I DOCKER-USER -d 169.254.169.254/32 -j DROP");
  });

  test("a review shows the placeholder, not a key", () => {
    const review = renderCloudInit({ privateKey: HOST_KEY_PLACEHOLDER, publicKey: key.publicKey });
    expect(YAML.parse(review).ssh_keys.ed25519_private).toBe(`${HOST_KEY_PLACEHOLDER}\n`);
    expect(review).not.toContain("BEGIN OPENSSH PRIVATE KEY");
  });
});

describe("npm run render of an hcloud site", () => {
  test("shows the server's cloud-init with the host key as a placeholder; an existing host has none", () => {
    const hcloudHost = {
      kind: "hcloud",
      serverType: "cx22",
      location: "fsn1",
      sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO9 ops@laptop"],
      sshSources: ["0.0.0.0/0", "::/0"],
    };
    const files = renderSiteFiles(
      loadSite(
        mapSource(
          "Pulumi.madam.yaml",
          "madam",
          servicesSite({ host: hcloudHost }, { "hcloud:token": { secure: "v1:abc" } }),
        ),
      ),
    );
    const cloudInit = files["host/cloud-init.yaml"]!;
    expect(YAML.parse(cloudInit).ssh_keys).toEqual({
      ed25519_private: `${HOST_KEY_PLACEHOLDER}\n`,
      ed25519_public: "<the server's public host key, from the stack's state>",
    });
    expect(Object.values(files).join("\n")).not.toContain("PRIVATE KEY-----");
    const existing = renderSiteFiles(loadSite(mapSource("Pulumi.lady.yaml", "lady", servicesSite())));
    expect(existing["host/cloud-init.yaml"]).toBeUndefined();
  });
});

describe("npm run check: an unpinned existing host", () => {
  test("is warned about, naming the file, the field and how to fill it", () => {
    expect(hostKeyWarning("Pulumi.lady.yaml", { ...existing(2202), address: "lady.qui3tly.cloud" })).toBe(
      "Pulumi.lady.yaml: `qui3tly-cloud:site.host.hostKey` is not set: the first SSH connection trusts any key " +
        "lady.qui3tly.cloud shows, and remote commands check none; pin it with the output of " +
        "`ssh-keyscan -t ed25519 -p 2202 lady.qui3tly.cloud` without the host name (check its fingerprint on " +
        "the server: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`)",
    );
  });

  test("a pinned one and an hcloud one are not", () => {
    expect(
      hostKeyWarning("Pulumi.lady.yaml", { ...existing(22), hostKey: "ssh-ed25519 AAAA" }),
    ).toBeUndefined();
    expect(hostKeyWarning("Pulumi.madam.yaml", HCLOUD)).toBeUndefined();
  });
});

describe("the SSH private key lives only as long as the deployment", () => {
  const until = async (cond: () => boolean, ms = 5000) => {
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
      if (cond()) return true;
    }
    return cond();
  };

  test("the key file is gone once the deployment's process exits; the stable path then leads nowhere", async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "ssh-"));
    // Stands in for the language host, which the engine keeps until the deployment ends.
    const deployment = spawn("sleep", ["60"], { stdio: "ignore" });
    const files = writeSshClientFiles("qc-lady", existing(22), "KEY", d, deployment.pid);
    const own = path.join(d, `qc-lady.${process.pid}.key`);
    expect(files).toEqual({ privateKey: path.join(d, "qc-lady.key") });
    expect(fs.readlinkSync(files.privateKey!)).toBe(path.basename(own));
    expect(fs.readFileSync(files.privateKey!, "utf8")).toBe("KEY\n");
    // Still there while the deployment runs, after this program would have exited.
    await new Promise((r) => setTimeout(r, 1500));
    expect(fs.existsSync(own)).toBe(true);
    deployment.kill();
    expect(await until(() => !fs.existsSync(own))).toBe(true);
    expect(fs.readdirSync(d)).toEqual(["qc-lady.key"]);
    expect(fs.existsSync(files.privateKey!)).toBe(false); // a dangling link: no key
    fs.rmSync(d, { recursive: true });
  });

  test("a key left in plain text by an older run at the stable path is replaced by the link", () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "ssh-"));
    fs.chmodSync(d, 0o700);
    fs.writeFileSync(path.join(d, "qc-lady.key"), "OLD\n", { mode: 0o600 });
    const deployment = spawn("sleep", ["60"], { stdio: "ignore" });
    writeSshClientFiles("qc-lady", existing(22), "NEW", d, deployment.pid);
    expect(fs.lstatSync(path.join(d, "qc-lady.key")).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(path.join(d, "qc-lady.key"), "utf8")).toBe("NEW\n");
    deployment.kill();
    fs.rmSync(d, { recursive: true });
  });

  test("an hcloud host gets a known_hosts path (written once its key is known) and strict checking", () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "ssh-"));
    const files = writeSshClientFiles("qc-madam", HCLOUD, undefined, d);
    expect(files).toEqual({ knownHosts: path.join(d, "qc-madam.known_hosts") });
    expect(sshOptions(files)).toContain("StrictHostKeyChecking=yes");
    fs.rmSync(d, { recursive: true });
  });
});

describe("the CLIs", () => {
  const ROOT = path.resolve(__dirname, "..");
  const tsNode = (script: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync("npx", ["ts-node", "--transpile-only", script, ...args], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, ...env },
    });

  test("npm run check warns about each committed stack's unpinned host and undeclared host size on stderr, and still passes", () => {
    const r = tsNode("scripts/check.ts", []);
    expect(r.status).toBe(0);
    const unsized = (file: string, limits: string) =>
      `WARN ${file}: \`qui3tly-cloud:site.host.memory\` and \`qui3tly-cloud:site.host.cpus\` are not set: the capacity of this site is not checked (its limits: ${limits}); declare the host's size from the provider's bill, such as \`memory: 8g\` and \`cpus: 4\``;
    // madam (a cx33: 8 GiB, 4 CPUs) holds its 1280 MiB and 4 CPUs of limits: no warning.
    expect(r.stderr.trim().split("\n")).toEqual([
      `WARN ${hostKeyWarning("Pulumi.lady.yaml", { ...existing(22), address: "lady.qui3tly.cloud" })}`,
      unsized("Pulumi.lady.yaml", "15936 MiB, 17.65 CPUs"),
      `WARN ${hostKeyWarning("Pulumi.master.yaml", { ...existing(22), address: "master.qui3tly.cloud" })}`,
      unsized("Pulumi.master.yaml", "5312 MiB, 10.65 CPUs"),
    ]);
  });

  test("npm run restore on an hcloud site refuses to run without its pinned host key, saying where it is", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "restore-"));
    for (const f of ["Pulumi.yaml", "Pulumi.master.yaml"])
      fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
    const madam = servicesSite(
      {
        host: {
          kind: "hcloud",
          serverType: "cx22",
          location: "fsn1",
          sshKeys: ["ssh-ed25519 AAAA"],
          sshSources: ["0.0.0.0/0", "::/0"],
        },
        services: { unifi: true },
      },
      { "hcloud:token": { secure: "v1:abc" } },
    );
    fs.writeFileSync(path.join(dir, "Pulumi.madam.yaml"), YAML.stringify({ config: madam }));
    const args = ["--stack", "madam", "--service", "unifi", "--address", "203.0.113.7"];
    const r = tsNode("scripts/restore.ts", args, { QCLOUD_PROJECT_DIR: dir });
    fs.rmSync(dir, { recursive: true });
    expect([r.status, r.stderr]).toEqual([
      2,
      "restore: an hcloud host's address and host key are in its stack: " +
        '--address "$(pulumi stack output hostAddress --stack madam)" ' +
        '--host-key "$(pulumi stack output hostKey --stack madam)"\n',
    ]);
  });
});
