import { createHash, createPrivateKey, createPublicKey } from "node:crypto";
import type { HostConfig } from "../config/schema";
import { SITE_KEY } from "../config/schema";
import type { PortModel } from "./siteModel";

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

/**
 * Drops the host's conntrack entries of UDP flows to these published ports: run once the containers that publish them
 * are (re)created. Netfilter applies Docker's DNAT to a flow's first packet only, so a peer that kept sending from
 * one port while the container was replaced (a tailnet node's STUN to Headscale, a WireGuard peer's keepalives)
 * stays on the entry made meanwhile: delivered to docker-proxy, which answers STUN with its own address (the nodes
 * then advertise it, and find no direct path), or to nowhere. Docker 23 and later drop these entries itself
 * (moby#44742); Debian 12's `docker.io`, which the bootstrap installs, is 20.10. conntrack is installed where missing.
 */
export function renderUdpFlowsFlush(ports: readonly number[]): string {
  return [
    "set -eu",
    "if ! command -v conntrack >/dev/null 2>&1; then",
    "  export DEBIAN_FRONTEND=noninteractive",
    "  apt-get update -q >/dev/null && apt-get install -y -q conntrack >/dev/null",
    "fi",
    `for port in ${[...new Set(ports)].sort((a, b) => a - b).join(" ")}; do`,
    // Its summary (stderr) only, not the entries; it exits 1 when nothing matched, which alone is no error.
    '  out=$(conntrack -D -p udp --orig-port-dst "$port" 2>&1 >/dev/null) || case "$out" in',
    '    *" 0 flow entries have been deleted"*) ;;',
    '    *) echo "conntrack -D for udp/$port: $out" >&2; exit 1 ;;',
    "  esac",
    '  echo "udp/$port: ${out##*: }"',
    "done",
  ].join("\n");
}

/** A server's SSH host key pair: OpenSSH's private key file and the public key as `known_hosts` holds it. */
export interface SshHostKey {
  /** `-----BEGIN OPENSSH PRIVATE KEY-----...`: secret. */
  readonly privateKey: string;
  /** `ssh-ed25519 AAAA...` */
  readonly publicKey: string;
}

/** Where a review shows the host's private key instead of its value (`npm run render`). */
export const HOST_KEY_PLACEHOLDER = "<secret: the server's SSH host key, generated in the stack's state>";

// PKCS#8 DER of an Ed25519 private key, up to its 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

const sshString = (b: Buffer | string) => {
  const buf = typeof b === "string" ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(buf.length);
  return Buffer.concat([len, buf]);
};
const uint32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/**
 * The Ed25519 host key made from a 32-byte seed (kept secret in state), in OpenSSH's own formats. No npm package
 * here writes `openssh-key-v1` from node:crypto keys without a new dependency, and the format is small
 * (PROTOCOL.key in OpenSSH's source): the tests check the result with the real `ssh-keygen -y`.
 * Deterministic: the same seed gives the same file, so the server's user-data never changes run to run.
 */
export function sshHostKey(seed: Buffer, comment = "qui3tly-cloud host key"): SshHostKey {
  if (seed.length !== 32) throw new Error(`an Ed25519 seed is 32 bytes, got ${seed.length}`);
  const key = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  const pub = createPublicKey(key).export({ format: "der", type: "spki" }).subarray(-32);
  const pubBlob = Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
  // The check integers only prove decryption of encrypted keys; derived from the seed to keep the file stable.
  const check = createHash("sha256").update(seed).digest().readUInt32BE(0);
  let priv = Buffer.concat([
    uint32(check),
    uint32(check),
    sshString("ssh-ed25519"),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  // Padded to the cipher's block size (8 for "none") with 1, 2, 3 ...
  const pad = (8 - (priv.length % 8)) % 8;
  priv = Buffer.concat([priv, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    uint32(1),
    sshString(pubBlob),
    sshString(priv),
  ]).toString("base64");
  return {
    privateKey: [
      "-----BEGIN OPENSSH PRIVATE KEY-----",
      ...(body.match(/.{1,70}/g) ?? []),
      "-----END OPENSSH PRIVATE KEY-----",
      "",
    ].join("\n"),
    publicKey: `ssh-ed25519 ${pubBlob.toString("base64")}`,
  };
}

/**
 * cloud-init for a new hcloud server: Docker from the distribution, and the host key the program made (so the
 * very first connection is checked against it). The image's own host keys are deleted, and with `ssh_keys` given
 * cloud-init makes no others (cc_ssh): a client that prefers ECDSA (Go's x/crypto, which the command provider
 * uses) is never offered a key that is not the pinned one. Checked by hand against cloud-init 22.4's schema
 * (Debian 12's), which refuses an empty `ssh_genkeytypes`.
 */
export function renderCloudInit(hostKey: SshHostKey): string {
  return [
    "#cloud-config",
    "ssh_deletekeys: true",
    "ssh_keys:",
    "  ed25519_private: |",
    ...hostKey.privateKey
      .trimEnd()
      .split("\n")
      .map((l) => `    ${l}`),
    `  ed25519_public: ${hostKey.publicKey}`,
    // The user-data (this host key) stays readable from Hetzner's metadata service at 169.254.169.254: keep the
    // containers away from it. Host-network containers are not covered (their traffic is not forwarded).
    "write_files:",
    "  - path: /etc/systemd/system/docker.service.d/qcloud-no-metadata.conf",
    "    content: |",
    "      [Service]",
    "      ExecStartPost=-/bin/sh -c 'iptables -C DOCKER-USER -d 169.254.169.254/32 -j DROP 2>/dev/null || iptables -I DOCKER-USER -d 169.254.169.254/32 -j DROP'",
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

/**
 * What `npm run check` says about an existing host whose key is not pinned: Docker's ssh then trusts the first key
 * it sees (and remembers it in ~/.ssh/known_hosts), and the command provider checks none at all.
 */
export function hostKeyWarning(file: string, host: HostConfig): string | undefined {
  if (host.kind !== "existing" || host.hostKey !== undefined) return undefined;
  return (
    `${file}: \`${SITE_KEY}.host.hostKey\` is not set: the first SSH connection trusts any key ${host.address} ` +
    "shows, and remote commands check none; pin it with the output of " +
    `\`ssh-keyscan -t ed25519 -p ${host.port} ${host.address}\` without the host name (check its fingerprint ` +
    "on the server: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`)"
  );
}
