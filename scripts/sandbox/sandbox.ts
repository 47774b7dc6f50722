import { spawnSync } from "node:child_process";
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
  const port = ports[site];
  if (port === undefined) throw new Error(`unknown sandbox site \`${site}\``);
  return onPort(port, command, allowFail);
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
    };
  }

  /**
   * Writes the sandbox stack files (pinning each server's host key), creates the stacks, sets the SSH key.
   * `templates` names the committed stack a site copies, when it is not its own (the benchmark's site).
   */
  init(sites: Readonly<Record<string, number>>, templates: Readonly<Record<string, string>> = {}): void {
    const hosts: Record<string, SandboxHost> = {};
    // Each services site's sealing key: the sandbox's own pair (the committed public key's private half is the
    // operator's), kept while the sandbox's stack holds it.
    const sealKeys: Record<string, string> = {};
    for (const [site, port] of Object.entries(sites)) {
      const seal = sandboxSealKey(path.join(this.dir, "project"), REPO, site, templates[site]);
      let sealPublicKey = seal.existing;
      if (seal.needed && sealPublicKey === undefined) {
        const pair = sealKeyPair();
        sealKeys[site] = pair.privateKey;
        sealPublicKey = pair.publicKey;
      }
      hosts[site] = {
        port,
        hostKey: hostKey(site),
        address: serverAddress(site),
        ...(templates[site] ? { template: templates[site] } : {}),
        ...(sealPublicKey ? { sealPublicKey } : {}),
      };
    }
    writeSandboxProject(path.join(this.dir, "project"), REPO, hosts);
    for (const site of Object.keys(sites)) {
      if (this.pulumi(["stack", "select", site], { allowFail: true }).code !== 0) {
        this.pulumi(["stack", "init", site, "--secrets-provider", "passphrase"]);
      }
      this.pulumi(["config", "set", "--secret", "sshPrivateKey", "--stack", site], {
        input: fs.readFileSync(SSH_KEY, "utf8"),
      });
      // On stdin, as `npm run seal-key` does: never in a command line (the engine log records those).
      if (sealKeys[site] !== undefined) {
        this.pulumi(["config", "set", "--secret", SEAL_KEY_KEY, "--stack", site], { input: sealKeys[site] });
      }
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
