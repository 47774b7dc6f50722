import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { sshOptions } from "../components/host";
import type { HostConfig } from "../config/schema";
import { SSH_KEY_KEY, sshPort } from "../config/schema";
import { knownHostsLine } from "../render/host";
import type { SiteModel } from "../render/siteModel";
import type { pulumiIn } from "./cli";

/** Where a site's host is reached: its stack file's, or another address and key (a new server). */
export interface SshTarget {
  readonly host: HostConfig;
  /** Overrides the stack file's address (an hcloud host's comes from its stack's output). */
  readonly address?: string;
  readonly port?: number;
  readonly hostKey?: string;
  /** The operator's private key file; else the SSH agent. */
  readonly key?: string;
}

/**
 * SSH to a site's host as its stack does: its user and port, its pinned host key (never trust on first use where
 * the stack pins one), the operator's key or agent. `close()` removes the known_hosts file it writes.
 */
export class SiteSsh {
  public readonly address: string | undefined;
  public readonly port: number;
  public readonly hostKey: string | undefined;
  private readonly dir: string;
  private readonly base: string[];

  constructor(target: SshTarget) {
    const h = target.host;
    this.address = target.address ?? (h.kind === "existing" ? h.address : undefined);
    this.port = target.port ?? sshPort(h);
    this.hostKey = target.hostKey ?? (h.kind === "existing" ? h.hostKey : undefined);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-ssh-"));
    let knownHosts: string | undefined;
    if (this.hostKey && this.address) {
      knownHosts = path.join(this.dir, "known_hosts");
      fs.writeFileSync(knownHosts, knownHostsLine(this.address, this.port, this.hostKey));
    }
    this.base = [
      ...sshOptions({
        ...(knownHosts ? { knownHosts } : {}),
        ...(target.key ? { privateKey: target.key } : {}),
      }),
      ...["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-p", String(this.port)],
      // A connection that dies mid-stream ends within a minute instead of hanging.
      ...["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"],
      `${h.kind === "existing" ? h.user : "root"}@${this.address ?? ""}`,
    ];
  }

  /** `ssh` arguments that run `command` there. */
  args(command: string): string[] {
    return [...this.base, command];
  }

  /** Runs `command`; output captured (or shown, `inherit`), `input` on its stdin. */
  run(command: string, opts: { inherit?: boolean; input?: string } = {}): SpawnSyncReturns<string> {
    return spawnSync("ssh", this.args(command), {
      encoding: "utf8",
      input: opts.input ?? "",
      stdio: opts.inherit ? ["pipe", "inherit", "inherit"] : "pipe",
      maxBuffer: 64 * 2 ** 20,
    });
  }

  /** Starts `command` without waiting (streams). */
  spawn(command: string): ChildProcess {
    return spawn("ssh", this.args(command), { stdio: ["pipe", "pipe", "pipe"] });
  }

  close(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * SSH to a site as its stack reaches its host: for a server its stack makes (hcloud), the address and host key that
 * stack exports; the key file given (`--ssh-key`), else the stack's own `sshPrivateKey`, written into `keys` (a
 * private directory the caller removes), else the SSH agent. Throws, saying what to run, when a made server's stack
 * exports no address or host key: without them there is nothing to trust.
 */
export function stackSsh(
  pulumi: ReturnType<typeof pulumiIn>,
  site: string,
  model: Pick<SiteModel, "host">,
  opts: { readonly key?: string; readonly keys: string },
): SiteSsh {
  let key = opts.key;
  if (!key) {
    const configured = pulumi(["config", "get", SSH_KEY_KEY, "--stack", site]);
    if (configured.status === 0 && configured.stdout.trim()) {
      key = path.join(opts.keys, `${site}.key`);
      // OpenSSH refuses a key file without its final newline.
      fs.writeFileSync(key, `${configured.stdout.trimEnd()}\n`, { mode: 0o600 });
    }
  }
  if (model.host.kind === "existing") return new SiteSsh({ host: model.host, ...(key ? { key } : {}) });
  const out = pulumi(["stack", "output", "--json", "--stack", site]);
  const outputs = out.status === 0 ? (JSON.parse(out.stdout) as Record<string, unknown>) : {};
  const text = (k: string) => (typeof outputs[k] === "string" ? (outputs[k] as string) : undefined);
  const address = text("hostAddress");
  const hostKey = text("hostKey");
  if (!address || !hostKey)
    throw new Error(
      `stack \`${site}\` exports no ${address ? "hostKey" : "hostAddress"} (its server is made by its stack): run \`pulumi up --stack ${site}\` first${out.status === 0 ? "" : `\n${tail(out.stderr)}`}`,
    );
  return new SiteSsh({ host: model.host, address, hostKey, ...(key ? { key } : {}) });
}

/** The last lines of a command's output, for an error message. */
export const tail = (s: string, n = 40) => s.trim().split("\n").slice(-n).join("\n");

/** `from`'s command's stdout into `into`'s command's stdin, through this machine. */
export function pipe(
  from: SiteSsh,
  produce: string,
  into: SiteSsh,
  consume: string,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const a = from.spawn(produce);
    const b = into.spawn(consume);
    let errs = "";
    a.stderr!.on("data", (d: Buffer) => (errs += d.toString()));
    b.stderr!.on("data", (d: Buffer) => (errs += d.toString()));
    b.stdin!.on("error", () => undefined); // the reader died: its exit code says so
    a.stdout!.pipe(b.stdin!);
    const codes: (number | null)[] = [];
    // One side gone wrong ends the other: a dead reader would leave the writer blocked for ever, and the reverse.
    const exit = (code: number | null) => {
      if (code !== 0) for (const p of [a, b]) if (p.exitCode === null) p.kill();
      codes.push(code);
      if (codes.length < 2) return;
      if (codes.every((c) => c === 0)) resolve();
      else reject(new Error(`${what} failed (exit ${codes.join(", ")}):\n${tail(errs)}`));
    };
    a.on("close", exit);
    b.on("close", exit);
  });
}

/** Every one of these containers running, and healthy where it has a healthcheck; rejects after `seconds`. */
export async function waitHealthy(on: SiteSsh, names: readonly string[], seconds = 300): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const r = on.run(
      `docker inspect --format '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}' ${names.join(" ")} 2>&1 || true`,
    );
    const bad = r.stdout
      .trim()
      .split("\n")
      .filter((l) => !/ running (healthy|-)$/.test(l));
    if (bad.length === 0) return;
    if (Date.now() > deadline) throw new Error(`not healthy after ${seconds} s:\n${bad.join("\n")}`);
    await new Promise((res) => setTimeout(res, 2000));
  }
}
