import { createHash } from "node:crypto";
import type { PortModel } from "../model/site";

/**
 * Makes sure Docker runs on a host, installing Debian's/Ubuntu's `docker.io` only when it is missing.
 * Idempotent: on a ready host it changes nothing and prints the version.
 */
export function renderDockerBootstrap(): string {
  return [
    "set -eu",
    // A fresh hcloud server may still be running cloud-init, which installs Docker itself.
    "if command -v cloud-init >/dev/null 2>&1; then cloud-init status --wait >/dev/null 2>&1 || true; fi",
    "if ! command -v docker >/dev/null 2>&1; then",
    "  export DEBIAN_FRONTEND=noninteractive",
    "  apt-get update -q && apt-get install -y -q docker.io",
    "fi",
    "if ! docker info >/dev/null 2>&1; then systemctl enable --now docker; fi",
    "docker version --format 'docker {{.Server.Version}}'",
  ].join("\n");
}

/** cloud-init for a new hcloud server: Docker from the distribution, nothing else. */
export function renderCloudInit(): string {
  return [
    "#cloud-config",
    "package_update: true",
    "packages: [docker.io]",
    "runcmd:",
    "  - [systemctl, enable, --now, docker]",
    "",
  ].join("\n");
}

export interface FirewallRuleModel {
  readonly description: string;
  readonly protocol: "tcp" | "udp";
  readonly port: string;
  readonly sourceIps: readonly string[];
}

const ANYWHERE = ["0.0.0.0/0", "::/0"] as const;

/** Inbound rules: SSH from the allowed sources, and each port the site publishes on all addresses. */
export function firewallRules(
  sshSources: readonly string[],
  ports: readonly PortModel[],
): FirewallRuleModel[] {
  const published = new Map<string, FirewallRuleModel>();
  for (const p of ports) {
    if (p.ip !== "0.0.0.0") continue; // bound to loopback or a tailnet address: not for the internet
    const k = `${p.external}/${p.protocol}`;
    published.set(k, { description: k, protocol: p.protocol, port: String(p.external), sourceIps: ANYWHERE });
  }
  return [
    { description: "ssh", protocol: "tcp", port: "22", sourceIps: sshSources },
    ...[...published.values()].sort(
      (a, b) => Number(a.port) - Number(b.port) || a.protocol.localeCompare(b.protocol),
    ),
  ];
}

/** A stable, short resource key for an SSH public key (its key material, not its position in a list). */
export function sshKeyId(publicKey: string): string {
  return createHash("sha256")
    .update(publicKey.split(" ")[1] ?? publicKey)
    .digest("hex")
    .slice(0, 12);
}

/** The `known_hosts` line that pins a host's key (OpenSSH writes non-22 ports as `[host]:port`). */
export function knownHostsLine(address: string, port: number, hostKey: string): string {
  return `${port === 22 ? address : `[${address}]:${port}`} ${hostKey}\n`;
}
