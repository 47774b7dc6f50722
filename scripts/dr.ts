import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError } from "../config/errors";
import { PROJECT } from "../config/schema";
import { loadProjectSite } from "../model/estate";
import { SITE_LABEL } from "../model/site";
import {
  BACKUP_DIR,
  BACKUP_LOG,
  BACKUP_SCRIPT,
  REPOSITORY_VOLUME,
  databaseEngines,
  renderBackupScript,
} from "../render/backup";
import { renderDockerBootstrap } from "../render/host";
import { networkName, type SiteModel } from "../render/siteModel";
import { ROOT, flag, pulumiIn } from "./cli";
import {
  forgetHost,
  formatReport,
  notBlank,
  recoveryPlan,
  type Phase,
  type RecoveryPlan,
  type StateExport,
} from "./drPlan";
import { SiteSsh, pipe, tail, waitHealthy } from "./siteSsh";
import type { Snapshot } from "./snapshots";
import { withHost } from "./stackFile";

/**
 * `npm run dr -- --stack <site> [--to <address> ...]`: rebuilds a lost site on a blank server from its stack file,
 * its Pulumi state and its backups, and prints how long each phase took. Docs: README "Disaster recovery",
 * docs/runbooks.md "Disaster recovery" (the same steps by hand).
 *
 *  check      the stack file; the state (or `--state`, an export, imported first); the new server answers over SSH
 *             with its pinned key and holds no container or volume (`--force`: the site's own are removed); the
 *             repository, on the site that keeps it, answers and holds a snapshot of every service; room for them
 *  bootstrap  Docker on the server (the stack's own script), the backup job's script
 *  reconcile  the state forgets what the lost server held (every Docker resource, the backup job's install), as
 *             a refresh would find, without the old server: so `up` creates them all again
 *  images     the site's images and volumes (`pulumi up --target`), while each service's newest snapshot streams
 *             from the repository's site to the new server (`restic dump`, through this machine's SSH)
 *  place      every volume kept as files back, before any container first starts: a node keeps its tailnet
 *             identity, Headscale its registry
 *  databases  the database engines alone (`pulumi up --target`), each dump loaded into its engine
 *  converge   `pulumi up`: everything else starts once, on complete data
 *  health     every container of the model running, healthy; on a control plane, every node of the tailnet
 *             back online (Headscale's registry restored: no new key, no step on the other sites)
 *  followers  with a new address: the other stacks whose config names it (the tunnel's endpoint)
 *  then       the repositories this site kept for others start again, empty: each one's first backup is started
 */
const argv = process.argv.slice(2);
const usage =
  "usage: npm run dr -- --stack <site> [--to <address> [--port <n>] [--host-key <key>] [--endpoint <address>]] " +
  "[--ssh-key <file>] [--state <export.json>] [--force] [--check] [--json <file>]";
const stack = flag(argv, "stack");
const key = flag(argv, "ssh-key");
const stateFile = flag(argv, "state");
const to = flag(argv, "to");
const force = argv.includes("--force");
const checkOnly = argv.includes("--check");
const dir = process.env.QCLOUD_PROJECT_DIR ?? ROOT;
/** On the new server: each service's fetched snapshot. */
const FETCHED = `${BACKUP_DIR}/scratch/dr`;

function fail(message: string, code = 1): never {
  console.error(`dr: ${message}`);
  process.exit(code);
}
const say = (m: string) => console.log(`dr: ${m}`);

if (!stack) fail(usage, 2);
if (!to && ["port", "host-key", "endpoint"].some((f) => flag(argv, f) !== undefined))
  fail("--port, --host-key and --endpoint go with --to", 2);

const pulumi = pulumiIn(dir);
/** The pulumi CLI, or fails with what it said (pulumi shows secrets as [secret]). */
function pulumiOk(what: string, args: readonly string[]): string {
  const r = pulumi(args);
  if (r.status !== 0)
    fail(`${what} failed (pulumi ${args[0]}, exit ${r.status}):\n${tail(r.stdout + r.stderr)}`);
  return r.stdout;
}

function load(site: string): SiteModel {
  try {
    return loadProjectSite(dir, site);
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message);
    throw e;
  }
}

// ------------------------------------------------------------------------------------------------ check
const t0 = Date.now();
const phases: Phase[] = [];
let phaseStart = Date.now();
const done = (name: string, parts?: Record<string, number>) => {
  phases.push({ name, seconds: (Date.now() - phaseStart) / 1000, ...(parts ? { parts } : {}) });
  say(`${name}: ${phases.at(-1)!.seconds.toFixed(1)} s`);
  phaseStart = Date.now();
};

const stackPath = path.join(dir, `Pulumi.${stack}.yaml`);
if (!fs.existsSync(stackPath)) fail(`${stackPath}: no such stack file`);
let model = load(stack);
const before = fs.readFileSync(stackPath, "utf8");
/** Whether a failure puts the stack file back as it was (until the recovery starts). */
let restoreStackFile = true;
if (model.host.kind !== "existing") {
  fail(
    `${stackPath}: \`host.kind: ${model.host.kind}\`: dr rebuilds on an existing server (a new one made by the stack is not supported yet: ` +
      "create the server, then set `host.kind: existing` with its address and host key and run dr with them)",
  );
}
if (to && model.controlPlane === stack) {
  fail(
    `--to: moving the control plane \`${stack}\` to another address is not supported yet (its pre-auth key commands would run again on the new connection and mint new keys): rebuild it at its address, or move its DNS name`,
    2,
  );
}
if (to) {
  const port = flag(argv, "port");
  const hostKey = flag(argv, "host-key");
  if (port !== undefined && !/^[0-9]+$/.test(port)) fail(`--port \`${port}\`: expected a number`, 2);
  if (model.host.hostKey && hostKey === undefined) {
    fail(
      `${stackPath} pins ${stack}'s old host key: a new server has its own; give --host-key "$(ssh-keyscan -t ed25519 ${to} | cut -d' ' -f2-)" (check its fingerprint on the server's console)`,
      2,
    );
  }
  const endpoint = flag(argv, "endpoint");
  fs.writeFileSync(
    stackPath,
    withHost(before, {
      address: to,
      ...(port !== undefined ? { port: Number(port) } : {}),
      ...(hostKey !== undefined ? { hostKey } : {}),
      ...(endpoint !== undefined ? { endpoint } : {}),
    }),
  );
  try {
    model = loadProjectSite(dir, stack);
  } catch (e) {
    fs.writeFileSync(stackPath, before);
    if (e instanceof ConfigError) fail(`--to: ${e.message}`, 2);
    throw e;
  }
  // A run that stops before the recovery starts (a refusal, --check, Ctrl-C) leaves the stack file as it was.
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));
  process.on("exit", () => {
    if (restoreStackFile) fs.writeFileSync(stackPath, before);
  });
}
const host = model.host;
if (host.kind !== "existing") throw new Error("unreachable");
const target = new SiteSsh({ host, ...(key ? { key } : {}) });
const keeperName = model.backup.target;
if (keeperName === undefined)
  fail(`site \`${stack}\` has no backup repository (no other site keeps one): nothing to restore from`);
const keeperModel = load(keeperName);
const keeper = new SiteSsh({ host: keeperModel.host, ...(key ? { key } : {}) });
process.on("exit", () => {
  target.close();
  keeper.close();
});

/** A stack that made this site holds its generated passwords: an empty one would mint new ones. */
const madeSite = (resources: readonly { type: string }[] | undefined) =>
  (resources ?? []).some((r) => r.type === "random:index/randomPassword:RandomPassword");

// The state: imported from an export (a new laptop, a lost backend), or already in the backend.
const stacks = pulumi(["stack", "ls", "--json"]);
const haveStack =
  stacks.status === 0 &&
  (JSON.parse(stacks.stdout) as { name: string }[]).some((x) => x.name.split("/").pop() === stack);
if (stateFile) {
  if (!fs.existsSync(stateFile)) fail(`--state ${stateFile}: no such file`);
  try {
    if (!(JSON.parse(fs.readFileSync(stateFile, "utf8")) as { deployment?: unknown }).deployment)
      throw new Error();
  } catch {
    fail(`--state ${stateFile}: expected a \`pulumi stack export\` file (JSON with \`deployment\`)`);
  }
  if (haveStack) fail(`--state: stack \`${stack}\` is already in this backend: drop --state to use it`);
  if (!madeSite((JSON.parse(fs.readFileSync(stateFile, "utf8")) as StateExport).deployment.resources))
    fail(
      `--state ${stateFile}: holds none of the site's generated passwords: not an export of the stack that made it`,
    );
} else if (!haveStack) {
  fail(
    `no stack \`${stack}\` in this backend (${process.env.PULUMI_BACKEND_URL ?? "pulumi whoami --verbose"}): log in to the backend that holds it, or give --state <a pulumi stack export of it>`,
  );
}

// The passphrase (or the backend's secrets provider) opens the stack's secrets: the run needs them. Their values
// stay in this process (discarded), never shown.
const decrypts = () => pulumi(["config", "--stack", stack, "--show-secrets", "--json"]);
if (haveStack) {
  const opened = decrypts();
  if (opened.status !== 0) {
    fail(
      `the stack's secrets do not open: is PULUMI_CONFIG_PASSPHRASE(_FILE) the one the stack was made with?\n${tail(opened.stderr)}`,
    );
  }
  const state = pulumi(["stack", "export", "--stack", stack]);
  if (state.status !== 0 || !madeSite((JSON.parse(state.stdout) as StateExport).deployment.resources))
    fail(
      `stack \`${stack}\` in this backend holds none of the site's generated passwords: it is not the stack that made the site (give --state <its export>)`,
    );
}

const where = `${target.address}:${target.port}`;
const probe = target.run(
  [
    "if ! command -v docker >/dev/null 2>&1; then echo C; echo V; echo L",
    "elif docker info >/dev/null 2>&1; then",
    "  echo C $(docker ps -aq --format '{{.Names}}'); echo V $(docker volume ls -q)",
    `  echo L $(docker volume ls -q --filter label=${SITE_LABEL} | xargs -r docker volume inspect -f '{{.Name}}={{index .Labels "${SITE_LABEL}"}}')`,
    "else echo D; fi",
    "df -Pk /var/lib | awk 'NR == 2 { print \"F\", $4 * 1024 }'",
  ].join("\n"),
);
if (probe.status !== 0) {
  fail(
    `cannot reach ${stack}'s new server at ${where} over SSH (${probe.stderr.trim() || `exit ${probe.status}`}); check ${stackPath}'s host`,
  );
}
const line = (tag: string) =>
  (probe.stdout.split("\n").find((l) => l.startsWith(`${tag} `) || l === tag) ?? tag)
    .slice(2)
    .split(/\s+/)
    .filter(Boolean);
if (probe.stdout.split("\n").includes("D")) {
  fail(
    `Docker is installed on ${where} but does not answer (docker info): dr cannot tell what the server holds; fix Docker first`,
  );
}
const held = notBlank({ containers: line("C"), volumes: line("V") });
/** The site's own volumes there, by their label (components/serviceSet.ts); another site's refuse even --force. */
const labelled = line("L").map((l) => l.split("=") as [string, string]);
const foreign = labelled.filter(([, site]) => site !== stack);
if (foreign.length > 0) {
  fail(
    `the server at ${where} holds volumes of site \`${foreign[0]![1]}\` (${foreign.map(([v]) => v).join(", ")}): it is another site's server; dr never touches it, --force or not`,
  );
}
if (held && !force && !checkOnly) {
  fail(
    `the server at ${where} is not blank: it holds ${held}. dr never overwrites a server that holds data: ` +
      "point --to at a new one, or give --force to remove this site's containers and volumes there first",
  );
}

const listed = keeper.run(`${BACKUP_SCRIPT} kept ${stack} snapshots --json`);
if (listed.status !== 0) {
  fail(
    `the repository of \`${stack}\` on \`${keeperName}\` (${keeper.address}:${keeper.port}) is unreachable:\n${(listed.stderr || listed.stdout).trim()}`,
  );
}
let plan: RecoveryPlan;
try {
  plan = recoveryPlan(model, JSON.parse(listed.stdout) as Snapshot[]);
} catch (e) {
  fail((e as Error).message);
}
const ids = plan.services.map((s) => plan.snapshots[s]!.id);
const sized = keeper.run(`${BACKUP_SCRIPT} kept ${stack} stats --json --mode restore-size ${ids.join(" ")}`);
const size = Number(/"total_size":([0-9]+)/.exec(sized.stdout)?.[1] ?? NaN);
const free = Number(line("F")[0]);
// Fetched once into scratch space, then copied into the volumes: twice, and a tenth more.
if (!Number.isNaN(size) && !Number.isNaN(free) && size * 2.1 > free) {
  fail(
    `the snapshots hold ${(size / 2 ** 20).toFixed(0)} MB; ${where} has ${(free / 2 ** 20).toFixed(0)} MB free under /var/lib (needs twice that, and a tenth more)`,
  );
}
say(
  `${stack} on ${where}, from its repository on ${keeperName}: ` +
    plan.services
      .map((s) => `${s} ${plan.snapshots[s]!.short_id} (${plan.snapshots[s]!.time.slice(0, 19)}Z)`)
      .join(", ") +
    (Number.isNaN(size) ? "" : `; ${(size / 2 ** 20).toFixed(1)} MB`),
);
if (checkOnly) {
  say(
    `check passed: the server is ${held ? `not blank (${held}; --force would remove them)` : "blank"}, every service has a snapshot`,
  );
  process.exit(0);
}
done("check");

// ------------------------------------------------------------------------------------------------ recover
void (async () => {
  if (stateFile) {
    // The secrets provider the export was made with: a passphrase, or the backend's own (Pulumi Cloud).
    const provider = (JSON.parse(fs.readFileSync(stateFile, "utf8")) as StateExport).deployment
      .secrets_providers as { type?: string } | undefined;
    pulumiOk("creating the stack", [
      ...["stack", "init", stack],
      ...(provider?.type === "passphrase" ? ["--secrets-provider", "passphrase"] : []),
    ]);
    const imported = pulumi(["stack", "import", "--stack", stack, "--file", path.resolve(stateFile)]);
    const opened = imported.status === 0 && decrypts().status === 0;
    if (!opened) {
      // Nothing half-made stays behind: the next try starts from the export again.
      if (pulumi(["stack", "rm", "--yes", "--force", "--preserve-config", "--stack", stack]).status !== 0)
        say(
          `WARNING: the half-imported stack ${stack} is still in the backend: pulumi stack rm --force ${stack}`,
        );
      fail(
        imported.status !== 0
          ? `importing ${stateFile} failed:\n${tail(imported.stdout + imported.stderr)}`
          : `the stack's secrets do not open: is PULUMI_CONFIG_PASSPHRASE(_FILE) the one the stack was made with? (the imported stack was removed again)`,
      );
    }
  }
  restoreStackFile = false;
  if (stateFile) done("state import");

  if (held) {
    const containers = model.services.flatMap((s) => s.containers.map((c) => c.name));
    // Only volumes labelled as this site's; never the repositories it keeps for other sites (their one copy
    // off those sites: the new backup-repository container takes them over as they are).
    const volumes = labelled.map(([v]) => v).filter((v) => v !== REPOSITORY_VOLUME);
    say(`--force: removing ${stack}'s containers, volumes and networks on ${where}`);
    const networks = model.networks.map(networkName);
    ssh(
      target,
      `docker rm -f ${containers.join(" ")} >/dev/null 2>&1 || true; docker volume rm -f ${volumes.join(" ")} >/dev/null 2>&1 || true; ` +
        `docker network rm ${networks.join(" ")} >/dev/null 2>&1 || true`,
      "--force",
    );
  }
  ssh(target, "sh -s", "the Docker bootstrap", renderDockerBootstrap());
  ssh(
    target,
    `set -e; umask 077; mkdir -p ${BACKUP_DIR}; cat >${BACKUP_SCRIPT}.tmp; chmod 755 ${BACKUP_SCRIPT}.tmp; mv ${BACKUP_SCRIPT}.tmp ${BACKUP_SCRIPT}`,
    "uploading the backup job",
    renderBackupScript(model),
  );
  done("bootstrap");

  // The server is blank (checked above, or emptied by --force): everything Docker held for the site is gone, and
  // the state is told so, as a refresh would conclude without needing the old server (nor its address) to answer.
  // The backup job's install lived on the lost disk too. Everything else (keys, passwords, the tailnet's pre-auth
  // keys in the restored registry) is still true.
  const exported = JSON.parse(
    pulumiOk("exporting the state", ["stack", "export", "--stack", stack]),
  ) as StateExport;
  const gone = forgetHost(exported, stack);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-dr-")), "state.json");
  fs.writeFileSync(file, JSON.stringify(exported), { mode: 0o600 });
  try {
    pulumiOk("importing the reconciled state", ["stack", "import", "--stack", stack, "--file", file]);
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
  say(`reconcile: ${gone} resources of the lost server are gone from the state`);
  done("reconcile");

  // The images and volumes, while the snapshots stream in.
  const urn = (t: string) => `urn:pulumi:${stack}::${PROJECT}::**${t}`;
  const images = runAsync("pulumi", [
    ...["--non-interactive", "-C", dir, "up", "--yes", "--skip-preview", "--stack", stack],
    ...[
      "docker:index/network:Network::*",
      "pulumi:providers:docker::*",
      `command:remote:Command::${stack}-docker`,
      "docker:index/volume:Volume::*",
      "docker:index/remoteImage:RemoteImage::*",
    ].flatMap((t) => ["--target", urn(t)]),
  ]);
  const fetches: Record<string, number> = {};
  const fetched = Promise.all(
    plan.services.map(async (svc) => {
      const t = Date.now();
      await pipe(
        keeper,
        `${BACKUP_SCRIPT} kept ${stack} dump ${plan.snapshots[svc]!.id} / --archive tar`,
        target,
        `rm -rf ${FETCHED}/${svc} && mkdir -p ${FETCHED}/${svc} && tar --numeric-owner -x -C ${FETCHED}/${svc}`,
        `fetching ${svc}'s snapshot`,
      );
      fetches[`fetch ${svc}`] = (Date.now() - t) / 1000;
    }),
  );
  // A failed fetch waits for the engine to finish: never a `pulumi up` left running (its lock) behind an exit.
  const [pulledOr, fetchedOr] = await Promise.allSettled([images, fetched]);
  if (fetchedOr.status === "rejected") fail((fetchedOr.reason as Error).message);
  const pulled = (pulledOr as PromiseFulfilledResult<{ code: number; out: string }>).value;
  if (pulled.code !== 0)
    fail(
      `creating the images and volumes failed (pulumi up --target, exit ${pulled.code}):\n${tail(pulled.out)}`,
    );
  done("images, volumes; snapshots fetched", fetches);

  const placed: Record<string, number> = {};
  for (const svc of plan.services) {
    const t = Date.now();
    ssh(target, `${BACKUP_SCRIPT} place ${svc} ${FETCHED}/${svc}`, `placing ${svc}'s volumes`);
    placed[svc] = (Date.now() - t) / 1000;
  }
  done("place", placed);

  // The databases before anything that uses them starts: their engines alone (created, healthy), the dumps in.
  const loaded: Record<string, number> = {};
  const engines = databaseEngines(
    model.services.filter((svc) => plan.databases.includes(svc.name)).flatMap((svc) => svc.containers),
  );
  if (engines.length > 0) {
    const t = Date.now();
    pulumiOk("creating the database engines", [
      ...["up", "--yes", "--skip-preview", "--stack", stack],
      ...engines.flatMap((c) => ["--target", urn(`docker:index/container:Container::${stack}-${c}`)]),
    ]);
    loaded["engines up, healthy"] = (Date.now() - t) / 1000;
  }
  for (const svc of plan.databases) {
    const t = Date.now();
    ssh(target, `${BACKUP_SCRIPT} load-dumps ${svc} ${FETCHED}/${svc}`, `loading ${svc}'s databases`);
    loaded[svc] = (Date.now() - t) / 1000;
  }
  done("databases", loaded);

  pulumiOk("the converge", ["up", "--yes", "--skip-preview", "--stack", stack]);
  ssh(target, `rm -rf ${FETCHED}`, "removing the fetched snapshots");
  done("converge");

  await healthy(model);
  done("health");
  if (model.tailnet.headscale) {
    // The control plane's registry is back: every node of every site comes back online with its old identity.
    await tailnetOnline(model.tailnet.headscale);
    done("tailnet: every node online");
  }
  const recovered = (Date.now() - t0) / 1000;

  // Everything else follows a new address: the stacks whose config names it.
  if (to) {
    const others = model.estate.sites
      .filter((s) => s.name !== stack)
      .sort((a, b) => Number(b.name === model.controlPlane) - Number(a.name === model.controlPlane));
    for (const other of others) {
      const r = pulumi(["preview", "--expect-no-changes", "--stack", other.name]);
      if (r.status === 0) continue;
      if (/no stack named/i.test(r.stderr)) {
        say(
          `WARNING: ${other.name}'s stack is not in this backend: run \`pulumi up --stack ${other.name}\` where it is`,
        );
        continue;
      }
      pulumiOk(`pulumi up --stack ${other.name} (it names ${stack}'s address)`, [
        "up",
        "--yes",
        "--skip-preview",
        "--stack",
        other.name,
      ]);
      say(`${other.name}: updated for ${stack}'s new address`);
    }
    done("followers");
  }

  // The repositories this site kept for others were not backed up (their second copy is not here): they start
  // again, empty. Each such site's first backup into its new one starts now, in the background (a big site takes
  // a while): its log and gauges say when it is done.
  let warned = false;
  for (const h of model.backup.hosted) {
    const other = new SiteSsh({ host: load(h.site).host, ...(key ? { key } : {}) });
    const r = other.run(`nohup ${BACKUP_SCRIPT} run >>${BACKUP_LOG} 2>&1 </dev/null &`);
    other.close();
    if (r.status === 0) {
      say(
        `${h.site}: its repository on ${stack} is new; its first backup into it runs now (${h.site}:${BACKUP_LOG})`,
      );
    } else {
      warned = true;
      say(
        `WARNING: could not start ${h.site}'s backup into its new repository on ${stack}: run \`qcloud-backup run\` there (${r.stderr.trim()})`,
      );
    }
  }

  const total = (Date.now() - t0) / 1000;
  console.log(
    `${formatReport(stack, phases, total)}\n  ${"recovered (healthy)".padEnd(44)} ${recovered.toFixed(1).padStart(7)} s`,
  );
  const json = flag(argv, "json");
  if (json) fs.writeFileSync(json, `${JSON.stringify({ site: stack, phases, recovered, total }, null, 2)}\n`);
  process.exitCode = warned ? 1 : 0;
})().catch((e: unknown) => fail((e as Error).message));

/** A command on a host that must succeed: else fails, saying what and with its output. */
function ssh(on: SiteSsh, command: string, what: string, input?: string): string {
  const r = on.run(command, input === undefined ? {} : { input });
  if (r.status !== 0) {
    fail(
      `${what} failed on ${on.address}:${on.port} (exit ${r.status}):\n${tail(r.stdout + r.stderr)}\n` +
        "The server is no longer blank: once the cause is fixed, run dr again with --force.",
    );
  }
  return r.stdout;
}

function runAsync(cmd: string, args: readonly string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.on("close", (code) => resolve({ code: code ?? 1, out }));
  });
}

/** Every node of the estate online again (each reconnects by itself): three minutes at most. */
async function tailnetOnline(headscale: string): Promise<void> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const r = target.run(`docker exec ${headscale} headscale nodes list -o json`);
    // The estate's own nodes, which carry tags (render/headscale.ts); people's devices come and go.
    const offline =
      r.status === 0
        ? (JSON.parse(r.stdout) as { given_name: string; online?: boolean; tags?: string[] }[])
            .filter((n) => (n.tags ?? []).length > 0 && !n.online)
            .map((n) => n.given_name)
        : ["(headscale does not answer)"];
    if (offline.length === 0) return;
    if (Date.now() > deadline) fail(`not back on the tailnet after 180 s: ${offline.join(", ")}`);
    await new Promise((res) => setTimeout(res, 2000));
  }
}

/** Every container of the model running, and healthy where it has a healthcheck: five minutes at most. */
async function healthy(site: SiteModel): Promise<void> {
  const names = site.services.flatMap((s) => s.containers.map((c) => c.name));
  await waitHealthy(target, names).catch((e: Error) => fail(e.message));
}
