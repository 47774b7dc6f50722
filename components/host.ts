import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as hcloud from "@pulumi/hcloud";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { HostConfig } from "../config/schema";
import { SITE_KEY, sshPort } from "../config/schema";
import {
  firewallRules,
  knownHostsLine,
  renderCloudInit,
  renderDockerBootstrap,
  renderUdpFlowsInstall,
  type UdpPublisher,
  sshHostKey,
  sshKeyId,
} from "../render/host";
import type { PortModel } from "../render/siteModel";

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
  /** The private key, 0600, for as long as the deployment runs (see `writeSshClientFiles`). */
  readonly privateKey?: string;
  /**
   * A known_hosts file holding only the pinned host key. For an hcloud host, where the key is made here, `Host`
   * writes it once the key and the address are known. Defaults (hcloud) to `<name>.known_hosts` in
   * `sshClientDir()`.
   */
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
  /** The host key every connection checks: the pinned one, or the one made for an hcloud server. */
  public readonly hostKey: pulumi.Output<string | undefined>;
  /** Its name: the site's, which its children's names start with. */
  private readonly siteName: string;

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:host:Host", name, {}, opts);
    this.siteName = name;
    const h = args.host;
    const user = h.kind === "existing" ? h.user : "root";
    const port = sshPort(h);

    let server: hcloud.Server | undefined;
    let madeHostKey: pulumi.Output<string> | undefined;
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
      // The server's host key is made here, so the first connection already knows it: no trust on first use.
      const seed = new random.RandomBytes(`${name}-host-key`, { length: 32 }, { parent: this });
      const pair = pulumi.secret(seed.base64.apply((b) => sshHostKey(Buffer.from(b, "base64"))));
      // The public half of a secret is not secret.
      madeHostKey = pulumi.unsecret(pair.apply((k) => k.publicKey));
      server = new hcloud.Server(
        name,
        {
          // The site's name, as its stack file's: the server's hostname (cloud-init sets it from this).
          name,
          serverType: h.serverType,
          location: h.location,
          image: h.image,
          sshKeys: keys.map((k) => k.id),
          firewallIds: [firewall.id.apply(Number)],
          // Holds the host's private key.
          userData: pulumi.secret(pair.apply(renderCloudInit)),
          labels: { "managed-by": "qui3tly-cloud", site: name },
        },
        // New user-data or SSH keys would rebuild the server, and its disk holds every volume: both only matter
        // on first boot (manage later keys on the host).
        // One server of a name at a time: a replacement deletes the old one first.
        {
          parent: this,
          ignoreChanges: ["userData", "sshKeys"],
          protect: args.protect ?? true,
          deleteBeforeReplace: true,
        },
      );
    }
    this.address = server ? server.ipv4Address : pulumi.output(h.kind === "existing" ? h.address : "");
    this.hostKey = madeHostKey ?? pulumi.output(h.kind === "existing" ? h.hostKey : undefined);

    this.connection = {
      host: this.address,
      user,
      port,
      ...(args.privateKey === undefined ? {} : { privateKey: args.privateKey }),
      // Without a pinned key the command provider does not check the host's identity at all (`npm run check`
      // warns about such a stack file).
      ...(madeHostKey
        ? { hostKey: madeHostKey }
        : h.kind === "existing" && h.hostKey
          ? { hostKey: h.hostKey }
          : {}),
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

    const files = args.sshFiles ?? {};
    let sshOpts: pulumi.Input<string[]> = sshOptions(files);
    if (madeHostKey) {
      // Docker's ssh reads the pin from a file: written once the key and the address are known, before the
      // provider is configured (its options wait for the write). The path is stable, so the options never change.
      const knownHosts = files.knownHosts ?? path.join(sshClientDir(), `${name}.known_hosts`);
      sshOpts = pulumi.all([this.address, madeHostKey]).apply(([address, key]) => {
        writePrivate(knownHosts, knownHostsLine(address, port, key));
        return sshOptions({ ...files, knownHosts });
      });
    }
    this.provider = new docker.Provider(
      name,
      {
        host: pulumi.interpolate`ssh://${user}@${this.address.apply(urlHost)}:${port}`,
        sshOpts,
      },
      { parent: this, dependsOn: [this.ready] },
    );

    this.registerOutputs({ address: this.address });
  }

  /**
   * Installs the host's job that drops peers' stale UDP flows to the ports these containers publish after one of them
   * starts (render/host.ts renderUdpFlowsInstall), and runs it: again whenever one of them is (re)created.
   */
  public dropStaleUdpFlows(
    publishers: readonly { container: docker.Container; publisher: UdpPublisher }[],
  ): void {
    new command.remote.Command(
      `${this.siteName}-udp-flows`,
      {
        connection: this.connection,
        create: renderUdpFlowsInstall(publishers.map((p) => p.publisher)),
        triggers: publishers.map((p) => p.container.id),
        logging: "stderr",
      },
      { parent: this, dependsOn: [this.ready, ...publishers.map((p) => p.container)] },
    );
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

/** The 0700 directory for Docker's ssh client files: one per user, at a path stable across runs. */
export const sshClientDir = () => path.join(os.tmpdir(), `qcloud-ssh-${os.userInfo().uid}`);

/** Writes a 0600 file (replacing any), in a directory `ensurePrivateDir` has checked. */
function writePrivate(file: string, content: string): string {
  ensurePrivateDir(path.dirname(file));
  fs.writeFileSync(file, content, { mode: 0o600 });
  fs.chmodSync(file, 0o600); // `mode` applies only when the file is new
  return file;
}

function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The directory is in a shared /tmp by default: refuse one that someone else made or can read.
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== os.userInfo().uid || (st.mode & 0o077) !== 0) {
    throw new Error(
      `${dir}: expected a directory owned by you with mode 0700, for SSH keys; remove it and retry`,
    );
  }
}

/**
 * Docker's ssh client reads keys from files, not from Pulumi: the pinned host key and the secret key go to 0600
 * files in a 0700 directory, at paths stable across runs (the provider's inputs must not change run to run).
 *
 * The private key must stay only while the deployment needs it. That is longer than this program: the engine
 * deletes resources the program no longer declares, and the old halves of replacements, after the program has
 * exited, through the same Docker provider. So the key is this run's own file (`<id>.<pid>.key`), the stable path
 * a symlink to it, and a detached watcher removes the file once `deployment` (the process to outlive) exits:
 * by default the language host that started this program, which the engine keeps until the deployment ends.
 * Commands that do not run the program (`destroy`, `refresh`, `up --refresh`) need `--run-program`, or the key
 * in your SSH agent (README).
 */
export function writeSshClientFiles(
  id: string,
  host: HostConfig,
  privateKey: string | undefined,
  dir = sshClientDir(),
  deployment = process.ppid,
): SshClientFiles {
  const hostKey = host.kind === "existing" ? host.hostKey : undefined;
  if (privateKey === undefined && hostKey === undefined && host.kind !== "hcloud") return {};
  ensurePrivateDir(dir);
  let keyLink: string | undefined;
  if (privateKey !== undefined) {
    const own = writePrivate(
      path.join(dir, `${id}.${process.pid}.key`),
      privateKey.endsWith("\n") ? privateKey : `${privateKey}\n`,
    );
    removeWhenGone(deployment, own);
    // Swapped in whole (rename): a run still using the previous link's target keeps working.
    keyLink = path.join(dir, `${id}.key`);
    const tmp = `${keyLink}.${process.pid}.tmp`;
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(path.basename(own), tmp);
    fs.renameSync(tmp, keyLink);
  }
  return {
    ...(keyLink === undefined ? {} : { privateKey: keyLink }),
    ...(host.kind === "hcloud"
      ? // Written by `Host` once the server's key and address are known.
        { knownHosts: path.join(dir, `${id}.known_hosts`) }
      : hostKey === undefined
        ? {}
        : {
            knownHosts: writePrivate(
              path.join(dir, `${id}.known_hosts`),
              knownHostsLine(host.address, host.port, hostKey),
            ),
          }),
  };
}

/** Removes `file` once process `pid` has exited, from a detached process that outlives this one. */
function removeWhenGone(pid: number, file: string): void {
  const watcher = spawn(
    "sh",
    [
      "-c",
      'while kill -0 "$1" 2>/dev/null; do sleep 1; done; rm -f "$2"',
      "qcloud-ssh-key-cleanup",
      String(pid),
      file,
    ],
    // Its own session and no inherited pipes: the language host waits on neither.
    { detached: true, stdio: "ignore" },
  );
  watcher.unref();
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
