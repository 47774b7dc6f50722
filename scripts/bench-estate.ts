import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO, SANDBOX, SITES, SandboxProject, run, startServers, toolchainEnv } from "./sandbox/sandbox";

/**
 * `npm run bench:estate [-- rounds]`: on the sandbox estate (converged first, untimed), side by side in each round:
 * the floor (a no-op preview of an empty program of the same runtime: engine, language host, TypeScript start-up),
 * each site's no-op `pulumi preview` in sequence, and `npm run estate -- preview` of all sites (with the policy pack).
 * Prints medians and the ratios the targets are set on: a site <= 2x the floor, the estate <= 1.2x its slowest site.
 */

const rounds = Number(process.argv[2] ?? 3);
const env = toolchainEnv();
startServers(SITES, false);
const project = new SandboxProject(path.join(SANDBOX, "work"), env);
project.init(SITES);
const estate = (...args: string[]) =>
  run("npx", ["ts-node", "--transpile-only", "scripts/estate.ts", ...args], {
    env: project.env,
    allowFail: true,
  });
const converge = estate("up");
if (converge.code !== 0) throw new Error(`estate up failed:\n${converge.stdout}${converge.stderr}`);

// The floor: the same runtime and backend, a program that registers nothing.
const floorDir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-floor-"));
fs.writeFileSync(
  path.join(floorDir, "Pulumi.yaml"),
  "name: qcloud-floor\nruntime:\n  name: nodejs\n  options:\n    typescript: true\n",
);
fs.writeFileSync(path.join(floorDir, "index.ts"), "export {};\n");
fs.copyFileSync(path.join(REPO, "tsconfig.json"), path.join(floorDir, "tsconfig.json"));
fs.symlinkSync(path.join(REPO, "node_modules"), path.join(floorDir, "node_modules"));
const floorEnv = { ...project.env, QCLOUD_PROJECT_DIR: floorDir };
const pulumi = (dir: string, e: NodeJS.ProcessEnv, args: string[]) =>
  run("pulumi", ["--non-interactive", "-C", dir, ...args], { env: e });
if (
  run("pulumi", ["-C", floorDir, "stack", "select", "floor"], { env: floorEnv, allowFail: true }).code !== 0
) {
  pulumi(floorDir, floorEnv, ["stack", "init", "floor", "--secrets-provider", "passphrase"]);
}

const seconds = (f: () => void) => {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
};
const samples: Record<string, number[]> = {};
const sample = (what: string, f: () => void) => (samples[what] ??= []).push(seconds(f));
for (let i = 0; i < rounds; i++) {
  sample("floor", () => pulumi(floorDir, floorEnv, ["preview", "--expect-no-changes", "--stack", "floor"]));
  for (const site of Object.keys(SITES)) {
    sample(site, () =>
      pulumi(path.join(project.dir, "project"), project.env, [
        "preview",
        "--expect-no-changes",
        "--stack",
        site,
      ]),
    );
  }
  sample("estate", () => {
    const r = estate("preview");
    if (r.code !== 0)
      throw new Error(`estate preview found changes or failed (exit ${r.code}):\n${r.stdout}`);
  });
}
fs.rmSync(floorDir, { recursive: true, force: true });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const m = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
const sites = Object.keys(SITES);
const slowest = Math.max(...sites.map((s) => m[s]!));
const sequence = sites.reduce((n, s) => n + m[s]!, 0);
console.log(`no-op previews, median of ${rounds} rounds (s):`);
for (const [k, v] of Object.entries(m)) console.log(`  ${k.padEnd(8)} ${v.toFixed(2)}`);
for (const s of sites) console.log(`${s} / floor: ${(m[s]! / m.floor!).toFixed(2)}x (target <= 2)`);
console.log(`estate / slowest site: ${(m.estate! / slowest).toFixed(2)}x (target <= 1.2)`);
console.log(`estate / the sites in sequence: ${(m.estate! / sequence).toFixed(2)}x`);
