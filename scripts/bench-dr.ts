import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { dropBenchData, makeBenchData } from "./benchData";
import type { Phase } from "./drPlan";
import {
  SANDBOX,
  SITES,
  SSH_KEY,
  SandboxProject,
  onServer,
  run,
  startServers,
  toolchainEnv,
} from "./sandbox/sandbox";

/**
 * `npm run bench:dr`: the disaster-recovery drill, timed, on the sandbox estate (converged first, as `npm run
 * sandbox` does). Lady with the benchmarks' data set (scripts/benchData.ts) is backed up, her server destroyed
 * (container and Docker volume) and a blank one started at the same address, and `npm run dr` rebuilds her; then
 * the same for master (lady's data set dropped first: it is lady's). Prints each phase for both sites side by side.
 */
const env = toolchainEnv();
startServers(SITES, false);
const project = new SandboxProject(path.join(SANDBOX, "work"), env);
project.init(SITES);
for (const site of Object.keys(SITES)) project.pulumi(["up", "--yes", "--skip-preview", "--stack", site]);

const data = makeBenchData();
const reports: Record<string, { phases: Phase[]; recovered: number; total: number }> = {};
for (const site of ["lady", "master"]) {
  if (site === "master") dropBenchData();
  const backup = onServer(site, "qcloud-backup run 2>&1", true);
  if (backup.code !== 0) throw new Error(`${site}'s backup failed:\n${backup.stdout}`);
  run("bash", ["scripts/sandbox/server.sh", "down", site]);
  run("bash", ["scripts/sandbox/server.sh", "up", site, String(SITES[site])]);
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-bench-dr-")), "report.json");
  const r = run(
    "npx",
    ["ts-node", "--transpile-only", "scripts/dr.ts", "--stack", site, "--ssh-key", SSH_KEY, "--json", out],
    { env: project.env, allowFail: true },
  );
  if (r.code !== 0) throw new Error(`npm run dr --stack ${site} failed:\n${r.stdout}\n${r.stderr}`);
  reports[site] = JSON.parse(fs.readFileSync(out, "utf8"));
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
}

const cell = (s: number | undefined) => (s === undefined ? "" : `${s.toFixed(1)} s`).padStart(10);
const names = [...new Set(Object.values(reports).flatMap((r) => r.phases.map((p) => p.name)))];
console.log(
  `\nnpm run dr, blank server at the same address; lady with ${(data.bytes / 2 ** 20).toFixed(0)} MB of data (${data.files} random files, ${data.rows} rows)`,
);
console.log(`  ${"phase".padEnd(40)} ${"lady".padStart(10)} ${"master".padStart(10)}`);
for (const name of names) {
  const of = (site: string) => reports[site]!.phases.find((p) => p.name === name);
  console.log(`  ${name.padEnd(40)} ${cell(of("lady")?.seconds)} ${cell(of("master")?.seconds)}`);
  const parts = [...new Set(["lady", "master"].flatMap((s) => Object.keys(of(s)?.parts ?? {})))];
  for (const part of parts)
    console.log(
      `    ${part.padEnd(38)} ${cell(of("lady")?.parts?.[part])} ${cell(of("master")?.parts?.[part])}`,
    );
}
console.log(
  `  ${"recovered (healthy)".padEnd(40)} ${cell(reports.lady!.recovered)} ${cell(reports.master!.recovered)}`,
);
console.log(`  ${"total".padEnd(40)} ${cell(reports.lady!.total)} ${cell(reports.master!.total)}`);
console.log(
  `  target: under 300 s a site -> lady ${(reports.lady!.recovered / 300).toFixed(2)}x, master ${(reports.master!.recovered / 300).toFixed(2)}x of it`,
);
