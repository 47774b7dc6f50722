import * as fs from "node:fs";
import * as path from "node:path";
import {
  REPO,
  SANDBOX,
  SITES,
  SandboxProject,
  ensureHcloudApi,
  onServer,
  run,
  startServers,
  toolchainEnv,
} from "./sandbox/sandbox";
import { hcloudSites } from "./sandbox/stackConfig";

/**
 * `npm run bench:expand`: on the sandbox estate (master and lady converged first, untimed; a madam left from an
 * earlier run destroyed), the time from `Pulumi.madam.yaml` added to madam healthy and scraped, phase by phase:
 * the control plane's `up` (keys, policy, scrapes for madam), madam's server created through the hcloud stand-in
 * (its cloud-init's early stages done: SSH answers with the made host key), Docker bootstrapped over SSH (after
 * cloud-init's late stages), the converge, the join (its node online on Headscale) and the first scrape (`up` of
 * its node-exporter on master's Prometheus). Phases come from the engine's events (`up --json`, whole seconds). Target: madam
 * healthy and scraped in under 5 minutes. Then UISP moves there from lady (`npm run move`): its phases, and its
 * downtime from the move's prober (target: under 60 s). Run again, it starts over: the sandbox's lady as committed
 * (with UISP, on the volumes the move kept there), madam destroyed and made anew.
 */

const SITE = hcloudSites(REPO)[0];
if (SITE === undefined) throw new Error("no committed stack file with `host.kind: hcloud` to add");
const env = toolchainEnv();
startServers(SITES, false);
const project = new SandboxProject(path.join(SANDBOX, "work"), env);
const pulumi = (args: string[]) => project.pulumi(args, { allowFail: true });
// A madam of an earlier run goes first, before the twins are written again (its stack file may hold a service that
// lady's twin, as committed, holds too): the bench starts from master and lady alone.
if (fs.existsSync(project.stackFile(SITE))) {
  const gone = pulumi(["destroy", "--run-program", "--yes", "--skip-preview", "--stack", SITE]);
  if (gone.code !== 0)
    throw new Error(`destroying the last run's ${SITE} failed:\n${gone.stdout}${gone.stderr}`);
  // Also removes its stack file.
  pulumi(["stack", "rm", "--yes", "--stack", SITE]);
}
// Its nodes stay on Headscale, offline, as after any destroy (README, "Removing a Hetzner site"): deleted here, or
// the new server's node would be `<site>-1` and the site's MagicDNS name the old node's.
const hs = (args: string) => onServer("master", `docker exec headscale headscale ${args}`);
const nodes = () =>
  JSON.parse(hs("nodes list -o json").stdout) as {
    id: number;
    given_name: string;
    online?: boolean;
    tags?: string[];
  }[];
for (const n of nodes()) {
  if (n.tags?.some((t) => t === `tag:site-${SITE}` || t.startsWith(`tag:${SITE}-`)))
    hs(`nodes delete --force --identifier ${n.id}`);
}
project.init(SITES);
for (const site of Object.keys(SITES)) {
  const r = pulumi(["up", "--yes", "--skip-preview", "--stack", site]);
  if (r.code !== 0) throw new Error(`converging ${site} failed:\n${r.stdout}${r.stderr}`);
}

const now = () => Date.now() / 1000;
const phases: [string, number][] = [];
let last = now();
const phase = (name: string, at = now()) => {
  phases.push([name, at - last]);
  last = at;
};
const t0 = last;
project.initHcloud(SITE, ensureHcloudApi());
phase("stack file added (stack init, config)");
const cp = pulumi(["up", "--yes", "--skip-preview", "--stack", "master"]);
if (cp.code !== 0) throw new Error(`master's up failed:\n${cp.stdout}${cp.stderr}`);
phase("control plane up (keys, policy, scrapes)");

// `--json`: the engine's events, a JSON object a line, each with its time (whole seconds).
const up = pulumi(["up", "--yes", "--skip-preview", "--stack", SITE, "--json"]);
if (up.code !== 0) throw new Error(`${SITE}'s up failed:\n${up.stdout}${up.stderr}`);
const upEnd = now();
const events = up.stdout
  .split("\n")
  .filter((l) => l.startsWith("{"))
  .map(
    (l) =>
      JSON.parse(l) as { timestamp?: number; resOutputsEvent?: { metadata: { urn: string; type: string } } },
  );
/** When the engine finished a resource of this type (and name). */
const doneAt = (type: string, name?: string): number => {
  const e = events.find((x) => {
    const m = x.resOutputsEvent?.metadata;
    return m?.type === type && (name === undefined || m.urn.endsWith(`::${name}`));
  });
  if (e?.timestamp === undefined) throw new Error(`no ${type} ${name ?? ""} in ${SITE}'s engine events`);
  return e.timestamp;
};
phase(
  "server created, cloud-init's early stages (SSH with the made host key)",
  doneAt("hcloud:index/server:Server"),
);
phase("Docker bootstrapped over SSH (after cloud-init)", doneAt("command:remote:Command", `${SITE}-docker`));
phase("converge (images, volumes, containers healthy)", upEnd);

const wait = (what: string, f: () => boolean) => {
  while (!f()) {
    if (now() - t0 > 900) throw new Error(`${what}: not within 15 minutes`);
    run("sleep", ["0.5"]);
  }
};
wait("the node online", () => nodes().some((n) => n.given_name === SITE && n.online));
phase("joined the tailnet (node online on Headscale)");
wait("the first scrape", () => {
  const q = `up%7Bsite%3D%22${SITE}%22%2Cservice%3D%22node-exporter%22%7D`;
  const r = onServer(
    "master",
    `docker exec prometheus wget -q -O - 'http://127.0.0.1:9090/api/v1/query?query=${q}'`,
    true,
  );
  return r.code === 0 && r.stdout.includes('"1"]');
});
phase("scraped by master's Prometheus");

console.log(`${SITE}: from its stack file added to healthy and scraped, phase by phase (s):`);
for (const [name, s] of phases) console.log(`  ${s.toFixed(1).padStart(6)}  ${name}`);
const total = now() - t0;
console.log(`  ${total.toFixed(1).padStart(6)}  total (target < 300)`);

// Then UISP moves there from lady (`npm run move`), with its prober: its phases and its downtime.
const move = run(
  "npx",
  [
    "ts-node",
    "--transpile-only",
    "scripts/move.ts",
    ...["--service", "uisp", "--from", "lady", "--to", SITE],
  ],
  { env: project.env, allowFail: true },
);
if (move.code !== 0) throw new Error(`npm run move failed:\n${move.stdout}${move.stderr}`);
const report = move.stdout.slice(move.stdout.indexOf("uisp: lady ->"));
console.log(
  report
    .split("\n")
    .filter((l) => !l.startsWith("point ") && !l.includes("keeps uisp"))
    .join("\n"),
);
console.log("(downtime target < 60 s)");
