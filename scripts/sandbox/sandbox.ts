import { spawn, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import YAML from "yaml";
import { SEAL_KEY_KEY } from "../../config/schema";
import { sealKeyPair } from "../../render/seal";
import { sandboxSealKey, writeSandboxProject, type SandboxHost } from "./stackConfig";

/**
 * The sandbox from TypeScript: toolchain, servers, and a Pulumi project with a local file backend, used by
 * `npm run sandbox` and the e2e tests alike.
 */

export const REPO = path.resolve(__dirname, "../..");
export const CACHE = process.env.QCLOUD_CACHE ?? path.join(os.homedir(), ".cache", "qui3tly-cloud");
export const SANDBOX = path.join(CACHE, "sandbox");
export const SSH_KEY = path.join(SANDBOX, "ssh", "id_ed25519");
/** Each site's SSH port on 127.0.0.1. */
export const SITES: Readonly<Record<string, number>> = { master: 2201, lady: 2202 };

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command; throws with its output unless `allowFail`. Output is echoed when `echo` is set. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; allowFail?: boolean; input?: string; echo?: boolean } = {},
): Run {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? REPO,
    env: opts.env ?? process.env,
    encoding: "utf8",
    input: opts.input ?? "",
    maxBuffer: 256 * 2 ** 20,
    stdio: opts.echo ? ["pipe", "inherit", "inherit"] : "pipe",
  });
  const out = { code: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  if (r.error) throw r.error;
  if (out.code !== 0 && !opts.allowFail) {
    throw new Error(`\`${cmd} ${args.join(" ")}\` exited ${out.code}\n${out.stdout}\n${out.stderr}`);
  }
  return out;
}

/** The environment with the offline Pulumi toolchain on PATH (built on first use; see scripts/toolchain.sh). */
export function toolchainEnv(echo = false): NodeJS.ProcessEnv {
  // Progress goes to stderr; stdout carries only the resulting environment.
  const r = run("bash", ["-c", "source scripts/pulumi-env.sh >&2 && env -0"], { allowFail: true });
  if (echo || r.code !== 0) process.stderr.write(r.stderr);
  if (r.code !== 0)
    throw new Error(`the Pulumi toolchain is not available (scripts/toolchain.sh, exit ${r.code})`);
  return Object.fromEntries(
    r.stdout
      .split("\0")
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
}

/** Docker, images and registry, then a fresh-or-running server per site. */
export function startServers(sites: Readonly<Record<string, number>>, echo = true): void {
  run("bash", ["scripts/sandbox/images.sh"], { echo });
  for (const [site, port] of Object.entries(sites))
    run("bash", ["scripts/sandbox/server.sh", "up", site, String(port)], { echo });
}

/** The server's SSH host key, to pin in the sandbox stack file. */
export function hostKey(site: string): string {
  const pub = run("docker", [
    "exec",
    `qcloud-sandbox-${site}`,
    "cat",
    "/etc/ssh/ssh_host_ed25519_key.pub",
  ]).stdout;
  return pub.trim().split(/\s+/).slice(0, 2).join(" ");
}

/** The server's address on the sandbox network (see scripts/sandbox/server.sh). */
export function serverAddress(site: string): string {
  return run("docker", [
    "inspect",
    "--format",
    '{{(index .NetworkSettings.Networks "qcloud-sandbox").IPAddress}}',
    `qcloud-sandbox-${site}`,
  ]).stdout.trim();
}

/** This machine's address on the sandbox network: where the servers see its connections come from. */
export function sandboxGateway(): string {
  // The bridge's own address (Docker's inspect leaves the gateway empty when it picked one from the ip-range).
  const id = run("docker", ["network", "inspect", "--format", "{{.Id}}", "qcloud-sandbox"]).stdout.trim();
  const out = run("ip", ["-4", "-o", "addr", "show", "dev", `br-${id.slice(0, 12)}`]).stdout;
  const address = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(out)?.[1];
  if (!address) throw new Error(`no IPv4 address on the sandbox network's bridge br-${id.slice(0, 12)}`);
  return address;
}

/** The hcloud stand-in: where the provider's `endpoint` points, and the one token it accepts. */
export interface HcloudApi {
  readonly endpoint: string;
  readonly token: string;
}

/** The hcloud stand-in's port on 127.0.0.1, its state, log, token and servers' seeds. */
export const HCLOUD_PORT = 18444;
export const HCLOUD_DIR = path.join(SANDBOX, "hcloud");

/**
 * The hcloud stand-in (scripts/sandbox/hcloudServe.ts), started once in the background like the registry and kept
 * running (its state survives restarts); `npm run sandbox:down` stops it.
 */
export function ensureHcloudApi(): HcloudApi {
  fs.mkdirSync(HCLOUD_DIR, { recursive: true, mode: 0o700 });
  const tokenFile = path.join(HCLOUD_DIR, "token");
  // Hetzner's tokens are 64 characters; the provider refuses others.
  if (!fs.existsSync(tokenFile))
    fs.writeFileSync(tokenFile, crypto.randomBytes(32).toString("hex"), { mode: 0o600 });
  const api = {
    endpoint: `http://127.0.0.1:${HCLOUD_PORT}/v1`,
    token: fs.readFileSync(tokenFile, "utf8").trim(),
  };
  // The header from a file: the token stays off command lines.
  const header = path.join(HCLOUD_DIR, "auth-header");
  fs.writeFileSync(header, `Authorization: Bearer ${api.token}\n`, { mode: 0o600 });
  const answers = () =>
    run("curl", ["-fsS", "-o", "/dev/null", "-H", `@${header}`, `${api.endpoint}/locations`], {
      allowFail: true,
    }).code === 0;
  if (answers()) return api;
  const log = fs.openSync(path.join(HCLOUD_DIR, "api.log"), "a");
  const child = spawn(
    process.execPath,
    ["-r", "ts-node/register/transpile-only", path.join(REPO, "scripts/sandbox/hcloudServe.ts")],
    { cwd: REPO, detached: true, stdio: ["ignore", log, log] },
  );
  fs.writeFileSync(path.join(HCLOUD_DIR, "pid"), String(child.pid));
  child.unref();
  for (let i = 0; i < 60; i++) {
    if (answers()) return api;
    spawnSync("sleep", ["0.5"]);
  }
  throw new Error(
    `the hcloud stand-in does not answer on ${api.endpoint}: see ${path.join(HCLOUD_DIR, "api.log")}`,
  );
}

const SSH_ARGS = (port: number) => [
  ...["-i", SSH_KEY, "-p", String(port), "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"],
  // The sandbox's own throwaway servers: the stacks pin their host keys, these helpers need not.
  ...["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"],
  "root@127.0.0.1",
];

/** A command on a sandbox server (by its SSH port), as root. */
export function onPort(port: number, command: string, allowFail = false): Run {
  return run("ssh", [...SSH_ARGS(port), command], { allowFail });
}

/** Copies a local directory's contents to `dest` on a sandbox server. */
export function copyTo(port: number, dir: string, dest: string): void {
  const ssh = ["ssh", ...SSH_ARGS(port), `'mkdir -p ${dest} && tar -C ${dest} -x'`].join(" ");
  run("bash", ["-c", `tar -C '${dir}' -c . | ${ssh}`]);
}

/** Where each site's server is now, by SSH port: SITES, until a site moves to another server (`moveSite`). */
const ports: Record<string, number> = { ...SITES };

/** A site now runs on the server with this SSH port (a disaster-recovery drill's new server). */
export function moveSite(site: string, port: number): void {
  ports[site] = port;
}

/** A command on a sandbox site's server, as root. */
export function onServer(site: string, command: string, allowFail = false): Run {
  return onPort(ports[site] ?? publishedPort(site), command, allowFail);
}

/** How to log in to a sandbox site's server from this machine. */
export const sshCommand = (site: string) =>
  `ssh -i ${SSH_KEY} -p ${ports[site] ?? publishedPort(site)} root@127.0.0.1`;

/** The SSH port a sandbox server publishes on 127.0.0.1 (an hcloud stand-in's server gets the first free one). */
function publishedPort(site: string): number {
  const r = run("docker", ["port", `qcloud-sandbox-${site}`, "22/tcp"], { allowFail: true });
  const port = Number(r.stdout.trim().split("\n")[0]?.split(":").pop());
  if (r.code !== 0 || !Number.isInteger(port)) throw new Error(`no sandbox server for site \`${site}\``);
  return port;
}

/** A Pulumi project for the sandbox sites, with its own file backend and passphrase, in `dir`. */
export class SandboxProject {
  public readonly env: NodeJS.ProcessEnv;

  constructor(
    public readonly dir: string,
    toolchain: NodeJS.ProcessEnv,
  ) {
    const state = path.join(dir, "state");
    fs.mkdirSync(state, { recursive: true });
    const passphrase = path.join(dir, "passphrase");
    // A sandbox-only passphrase, never a real site's: it only protects throwaway keys on this machine.
    if (!fs.existsSync(passphrase)) fs.writeFileSync(passphrase, "qcloud-sandbox\n", { mode: 0o600 });
    this.env = {
      ...toolchain,
      PULUMI_BACKEND_URL: `file://${state}`,
      // The project's stack files (the estate) are here, not next to the program (see index.ts).
      QCLOUD_PROJECT_DIR: path.join(dir, "project"),
      PULUMI_CONFIG_PASSPHRASE_FILE: passphrase,
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      PULUMI_NODEJS_TRANSPILE_ONLY: "true",
    };
  }

  /**
   * Writes the sandbox stack files (pinning each server's host key), creates the stacks, sets the SSH key.
   * `templates` names the committed stack a site copies, when it is not its own (the benchmark's site).
   */
  init(sites: Readonly<Record<string, number>>, templates: Readonly<Record<string, string>> = {}): void {
    const hosts: Record<string, SandboxHost> = {};
    const sealKeys: Record<string, string> = {};
    for (const [site, port] of Object.entries(sites)) {
      const seal = this.sealKey(site, templates[site]);
      if (seal.privateKey !== undefined) sealKeys[site] = seal.privateKey;
      hosts[site] = {
        port,
        hostKey: hostKey(site),
        address: serverAddress(site),
        ...(templates[site] ? { template: templates[site] } : {}),
        ...(seal.publicKey ? { sealPublicKey: seal.publicKey } : {}),
      };
    }
    writeSandboxProject(path.join(this.dir, "project"), REPO, hosts);
    for (const site of Object.keys(sites)) this.initStack(site, sealKeys[site]);
  }

  /**
   * A site whose committed host is `hcloud`: its twin makes its server through the hcloud stand-in (`api`), which
   * boots a sandbox server for it; the stack gets the stand-in's endpoint and token.
   */
  initHcloud(site: string, api: HcloudApi): void {
    const seal = this.sealKey(site);
    writeSandboxProject(path.join(this.dir, "project"), REPO, {
      [site]: {
        kind: "hcloud",
        sshKey: fs.readFileSync(`${SSH_KEY}.pub`, "utf8").trim(),
        sshSource: sandboxGateway(),
        ...(seal.publicKey ? { sealPublicKey: seal.publicKey } : {}),
      },
    });
    this.initStack(site, seal.privateKey);
    this.pulumi(["config", "set", "hcloud:endpoint", api.endpoint, "--stack", site]);
    this.pulumi(["config", "set", "--secret", "hcloud:token", "--stack", site], { input: api.token });
  }

  /**
   * A services site's sealing key: the sandbox's own pair (the committed public key's private half is the
   * operator's), kept while the sandbox's stack holds it; the private half only when it is new.
   */
  private sealKey(site: string, template?: string): { publicKey?: string; privateKey?: string } {
    const seal = sandboxSealKey(path.join(this.dir, "project"), REPO, site, template);
    if (!seal.needed) return {};
    if (seal.existing !== undefined) return { publicKey: seal.existing };
    return sealKeyPair();
  }

  /** Creates the site's stack if needed and sets its secrets: the SSH key, a new sealing key. */
  private initStack(site: string, sealPrivateKey?: string): void {
    if (this.pulumi(["stack", "select", site], { allowFail: true }).code !== 0) {
      this.pulumi(["stack", "init", site, "--secrets-provider", "passphrase"]);
    }
    this.pulumi(["config", "set", "--secret", "sshPrivateKey", "--stack", site], {
      input: fs.readFileSync(SSH_KEY, "utf8"),
    });
    // On stdin, as `npm run seal-key` does: never in a command line (the engine log records those).
    if (sealPrivateKey !== undefined) {
      this.pulumi(["config", "set", "--secret", SEAL_KEY_KEY, "--stack", site], { input: sealPrivateKey });
    }
  }

  /** Runs `program` (a checkout of this repository) from now on: this repository's by default. */
  useProgram(program: string = REPO): void {
    const file = path.join(this.dir, "project", "Pulumi.yaml");
    const doc = YAML.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    fs.writeFileSync(file, YAML.stringify({ ...doc, main: path.relative(path.dirname(file), program) }));
  }

  pulumi(args: readonly string[], opts: { allowFail?: boolean; input?: string; echo?: boolean } = {}): Run {
    const r = run("pulumi", ["--non-interactive", "-C", path.join(this.dir, "project"), ...args], {
      ...opts,
      env: this.env,
    });
    // What the engine showed, for `npm run audit:secrets --log` (which must find no secret in it); not what was
    // asked for with --show-secrets.
    if (!args.includes("--show-secrets")) {
      fs.appendFileSync(this.engineLog, `$ pulumi ${args.join(" ")}\n${r.stdout}${r.stderr}`);
    }
    return r;
  }

  /** Every output of the engine this project ran. */
  get engineLog(): string {
    return path.join(this.dir, "engine.log");
  }

  /** The sandbox stack file of a site (to break it on purpose in tests). */
  stackFile(site: string): string {
    return path.join(this.dir, "project", `Pulumi.${site}.yaml`);
  }
}
