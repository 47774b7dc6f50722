import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import type { HostConfig } from "../config/schema";
import { SITE_KEY, sshPort } from "../config/schema";
import type { PortModel } from "../model/site";
import {
  firewallRules,
  knownHostsLine,
  renderCloudInit,
  renderDockerBootstrap,
  sshKeyId,
} from "../render/host";

export interface HostArgs {
  readonly host: HostConfig;
  /** Ports the site publishes: the hcloud firewall opens them. */
  readonly ports: readonly PortModel[];
  /** The SSH private key (secret). Defaults to the SSH agent (`SSH_AUTH_SOCK`). */
  readonly privateKey?: pulumi.Input<string>;
  /** Protect the server (hcloud) against deletion: its disk holds every volume. Defaults to true. */
  readonly protect?: boolean;
  /** Files for Docker's `ssh` client (see `writeSshClientFiles`). Defaults to the agent and `~/.ssh`. */
  readonly sshFiles?: SshClientFiles;
}

export interface SshClientFiles {
  /** The private key, 0600. */
  readonly privateKey?: string;
  /** A known_hosts file holding only the pinned host key. */
  readonly knownHosts?: string;
}

/** A server that runs Docker: an existing one over SSH, or a new Hetzner Cloud one. */
export class Host extends pulumi.ComponentResource {
  /** The address SSH and Docker connect to. */
  public readonly address: pulumi.Output<string>;
  /** Docker on this host, over `ssh://`. */
  public readonly provider: docker.Provider;
  /** Done once Docker answers on the host: everything on it depends on this. */
  public readonly ready: command.remote.Command;
  /** How `command.remote` reaches the host (pinned host key, the stack's private key). */
  public readonly connection: command.types.input.remote.ConnectionArgs;

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:host:Host", name, {}, opts);
    const h = args.host;
    const user = h.kind === "existing" ? h.user : "root";
    const port = sshPort(h);

    let server: hcloud.Server | undefined;
    if (h.kind === "hcloud") {
      const keys = h.sshKeys.map(
        (publicKey) => new hcloud.SshKey(`${name}-${sshKeyId(publicKey)}`, { publicKey }, { parent: this }),
      );
      const firewall = new hcloud.Firewall(
        name,
        {
          rules: firewallRules(h.sshSources, args.ports).map((r) => ({
            direction: "in",
            description: r.description,
            protocol: r.protocol,
            port: r.port,
            sourceIps: [...r.sourceIps],
          })),
        },
        { parent: this },
      );
      server = new hcloud.Server(
        name,
        {
          serverType: h.serverType,
          location: h.location,
          image: h.image,
          sshKeys: keys.map((k) => k.id),
          firewallIds: [firewall.id.apply(Number)],
          userData: renderCloudInit(),
          labels: { "managed-by": "qui3tly-cloud", site: name },
        },
        // New user-data or SSH keys would rebuild the server, and its disk holds every volume: both only matter
        // on first boot (manage later keys on the host).
        { parent: this, ignoreChanges: ["userData", "sshKeys"], protect: args.protect ?? true },
      );
    }
    this.address = server ? server.ipv4Address : pulumi.output(h.kind === "existing" ? h.address : "");

    this.connection = {
      host: this.address,
      user,
      port,
      ...(args.privateKey === undefined ? {} : { privateKey: args.privateKey }),
      // Without a pinned key the command provider does not check the host's identity at all.
      ...(h.kind === "existing" && h.hostKey ? { hostKey: h.hostKey } : {}),
      dialErrorLimit: 20,
    };
    this.ready = new command.remote.Command(
      `${name}-docker`,
      {
        connection: this.connection,
        create: renderDockerBootstrap(),
        // Re-run when the script changes, not on every up.
        triggers: [renderDockerBootstrap()],
      },
      { parent: this },
    );

    this.provider = new docker.Provider(
      name,
      {
        host: pulumi.interpolate`ssh://${user}@${this.address.apply(urlHost)}:${port}`,
        sshOpts: sshOptions(args.sshFiles ?? {}),
      },
      { parent: this, dependsOn: [this.ready] },
    );

    this.registerOutputs({ address: this.address });
  }
}

/** An address as a URL's host: IPv6 in brackets. */
export const urlHost = (address: string) => (net.isIPv6(address) ? `[${address}]` : address);

/** Options for Docker's `ssh` client: pinned host key when there is one, else trust on first use. */
export function sshOptions(files: SshClientFiles): string[] {
  return [
    "-o",
    "BatchMode=yes",
    ...(files.knownHosts
      ? ["-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${files.knownHosts}`]
      : ["-o", "StrictHostKeyChecking=accept-new"]),
    ...(files.privateKey ? ["-o", "IdentitiesOnly=yes", "-i", files.privateKey] : []),
  ];
}

/**
 * Docker's ssh client reads keys from files, not from Pulumi: the secret key and the pinned host key go to 0600
 * files in a 0700 directory, at paths stable across runs (the provider's inputs must not change run to run).
 */
export function writeSshClientFiles(
  id: string,
  host: HostConfig,
  privateKey: string | undefined,
  dir = path.join(os.tmpdir(), `qcloud-ssh-${os.userInfo().uid}`),
): SshClientFiles {
  const hostKey = host.kind === "existing" ? host.hostKey : undefined;
  if (privateKey === undefined && hostKey === undefined) return {};
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The directory is in a shared /tmp by default: refuse one that someone else made or can read.
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== os.userInfo().uid || (st.mode & 0o077) !== 0) {
    throw new Error(
      `${dir}: expected a directory owned by you with mode 0700, for SSH keys; remove it and retry`,
    );
  }
  const write = (name: string, content: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, content, { mode: 0o600 });
    fs.chmodSync(file, 0o600); // `mode` applies only when the file is new
    return file;
  };
  return {
    ...(privateKey === undefined
      ? {}
      : { privateKey: write(`${id}.key`, privateKey.endsWith("\n") ? privateKey : `${privateKey}\n`) }),
    ...(hostKey === undefined || host.kind !== "existing"
      ? {}
      : { knownHosts: write(`${id}.known_hosts`, knownHostsLine(host.address, host.port, hostKey)) }),
  };
}

/**
 * Fails fast, before any resource is touched, when an existing host does not answer on its SSH port.
 * `file` is the stack file, so the message says where to fix the address.
 */
export async function preflight(
  site: string,
  file: string,
  host: HostConfig,
  timeoutMs = 5000,
): Promise<void> {
  if (host.kind !== "existing") return; // a new server does not exist yet
  const where = `${host.address}:${host.port}`;
  await new Promise<void>((resolve, reject) => {
    const socket = net.connect({ host: host.address, port: host.port });
    const fail = (why: string) => {
      socket.destroy();
      reject(
        new Error(
          `site \`${site}\`: cannot reach ${where} (${why}); expected an SSH server there. ` +
            `Check the host or \`${SITE_KEY}.host\` in ${file}.`,
        ),
      );
    };
    socket.setTimeout(timeoutMs, () => fail(`no answer within ${timeoutMs / 1000}s`));
    socket.once("error", (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
    socket.once("connect", () => {
      socket.end();
      resolve();
    });
  });
}
