import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import type { FirewallRule, Machines } from "./hcloud";

const exec = promisify(execFile);
const REPO = path.resolve(__dirname, "../..");
const SERVER_SH = path.join(REPO, "scripts/sandbox/server.sh");

/**
 * Sandbox servers take SSH ports 2192-2317 (their address follows the port: lib.sh server_ip): the sites 2201+ and
 * the disaster-recovery drills' new servers next to them; the stand-in's servers from 2250.
 */
const FIRST_PORT = 2250;
const LAST_PORT = 2317;

/** Hetzner's port (`80`, `8000-8100`, `any`, or none) as iptables takes it. */
const portRange = (port: string | undefined) => (port === undefined || port === "any" ? "1-65535" : port);

/**
 * The `firewall.rules` lines the sandbox server enforces (images/hcloud-server/firewall.sh): one per inbound rule
 * and IPv4 source. IPv6 sources are left out: the sandbox's network has no IPv6.
 */
export function firewallLines(rules: readonly FirewallRule[]): string {
  return rules
    .filter((r) => r.direction === "in" && ["tcp", "udp", "icmp"].includes(r.protocol))
    .flatMap((r) =>
      r.source_ips
        .filter((ip) => !ip.includes(":"))
        .map((ip) => `${r.protocol} ${r.protocol === "icmp" ? "-" : portRange(r.port)} ${ip}\n`),
    )
    .join("");
}

/**
 * The hcloud stand-in's machines: each server a new sandbox container (`server.sh boot`: blank Debian, sshd, real
 * cloud-init running the server's user data), reached on its address on the sandbox network, port 22, as a Hetzner
 * server is on its public address; its firewall enforced inside it. `dir` keeps each server's NoCloud seed.
 */
export class SandboxMachines implements Machines {
  constructor(private readonly dir: string) {}

  private seed(name: string): string {
    return path.join(this.dir, name);
  }

  /** One boot at a time: each takes the first free port. */
  private booting: Promise<unknown> = Promise.resolve();

  create(m: Parameters<Machines["create"]>[0]): Promise<{ ipv4: string }> {
    const booted = this.booting.then(() => this.boot(m));
    this.booting = booted.catch(() => undefined);
    return booted;
  }

  private async boot(m: Parameters<Machines["create"]>[0]): Promise<{ ipv4: string }> {
    const seed = this.seed(m.name);
    fs.rmSync(seed, { recursive: true, force: true });
    fs.mkdirSync(seed, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(seed, "user-data"), m.userData, { mode: 0o600 });
    fs.writeFileSync(
      path.join(seed, "meta-data"),
      `instance-id: hcloud-${m.id}\nlocal-hostname: ${m.name}\n`,
    );
    fs.writeFileSync(path.join(seed, "authorized_keys"), m.sshKeys.map((k) => `${k}\n`).join(""));
    this.writeRules(m.name, m.rules);
    const { stdout } = await exec("bash", [SERVER_SH, "boot", m.name, String(await freePort()), seed], {
      cwd: REPO,
      maxBuffer: 16 * 2 ** 20,
    });
    const ipv4 = stdout.trim().split("\n").pop() ?? "";
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(ipv4)) throw new Error(`server.sh boot ${m.name} printed no address`);
    return { ipv4 };
  }

  async firewall(name: string, rules?: readonly FirewallRule[]): Promise<void> {
    this.writeRules(name, rules);
    await exec("docker", ["exec", `qcloud-sandbox-${name}`, "qcloud-firewall"]);
  }

  async remove(name: string): Promise<void> {
    await exec("bash", [SERVER_SH, "down", name], { cwd: REPO });
    fs.rmSync(this.seed(name), { recursive: true, force: true });
  }

  private writeRules(name: string, rules?: readonly FirewallRule[]): void {
    const file = path.join(this.seed(name), "firewall.rules");
    if (rules === undefined) return fs.rmSync(file, { force: true });
    fs.writeFileSync(`${file}.tmp`, firewallLines(rules));
    fs.renameSync(`${file}.tmp`, file);
  }
}

/** The first SSH port no sandbox server has published. */
async function freePort(): Promise<number> {
  const { stdout } = await exec("docker", [
    "ps",
    "-a",
    "--filter",
    "label=cloud.qui3tly.sandbox=server",
    "--format",
    "{{.Ports}}",
  ]);
  const used = new Set([...stdout.matchAll(/:(\d+)->22\/tcp/g)].map((m) => Number(m[1])));
  for (let p = FIRST_PORT; p <= LAST_PORT; p++) if (!used.has(p)) return p;
  throw new Error(`no free sandbox SSH port in ${FIRST_PORT}-${LAST_PORT}`);
}
