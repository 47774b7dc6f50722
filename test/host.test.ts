import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { preflight, sshOptions, urlHost, writeSshClientFiles } from "../components/host";
import { firewallRules, renderDockerBootstrap } from "../render/host";

const existing = (port: number) => ({ kind: "existing" as const, address: "127.0.0.1", user: "root", port });

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
    await expect(
      preflight("madam", "Pulumi.madam.yaml", {
        kind: "hcloud",
        serverType: "cx22",
        location: "fsn1",
        image: "debian-12",
        sshKeys: ["ssh-ed25519 AAAA"],
        sshSources: ["0.0.0.0/0"],
      }),
    ).resolves.toBeUndefined();
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
