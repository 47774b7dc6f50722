import * as fs from "node:fs";
import * as path from "node:path";
import { loadProjectSite } from "../model/estate";
import { renderSiteFiles } from "../render/site";
import { ROOT, flag, pulumiIn } from "./cli";
import {
  configSecrets,
  deploymentSecrets,
  findLeaks,
  readTree,
  undeclared,
  type ConfigValue,
  type Secret,
} from "./secretsAudit";

/**
 * `npm run audit:secrets -- --stack <a,b,...> [--preview] [--log <file>]...`: collects every secret the stacks know
 * (their state's secret values, their secret config) and looks for each, as is and base64-encoded, in what they
 * show: each stack's state export and outputs (without --show-secrets), the file backend's every file (history and
 * backups included), every file `npm run render` writes, the engine's output of a `pulumi preview --diff` (with
 * --preview) and any log given. Prints where each leak is, by a fingerprint, never the value; exit 1 on a leak.
 * Runs the `pulumi` on PATH in this checkout, or in QCLOUD_PROJECT_DIR (the sandbox's).
 */
const argv = process.argv.slice(2);
const stacks = flag(argv, "stack")?.split(",").filter(Boolean);
if (!stacks?.length) {
  console.error("usage: npm run audit:secrets -- --stack <site>[,<site>...] [--preview] [--log <file>]...");
  process.exit(2);
}
const dir = process.env.QCLOUD_PROJECT_DIR ?? ROOT;

function pulumi(args: readonly string[]): string {
  const r = pulumiIn(dir, 512)(args);
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.error(`audit:secrets: \`pulumi ${args.join(" ")}\` exited ${r.status}\n${r.stderr}`);
    process.exit(2);
  }
  return r.stdout + r.stderr;
}

let secrets: Secret[] = [];
const plainConfig: Record<string, ConfigValue> = {};
const texts = new Map<string, string>();
for (const stack of stacks) {
  const config = JSON.parse(pulumi(["config", "--show-secrets", "--json", "--stack", stack]));
  secrets.push(
    ...deploymentSecrets(JSON.parse(pulumi(["stack", "export", "--show-secrets", "--stack", stack]))),
  );
  secrets.push(...configSecrets(config));
  for (const [k, v] of Object.entries(config)) plainConfig[`${stack}: ${k}`] = v as ConfigValue;
  texts.set(`${stack}: pulumi stack export`, pulumi(["stack", "export", "--stack", stack]));
  texts.set(`${stack}: pulumi stack output --json`, pulumi(["stack", "output", "--json", "--stack", stack]));
  if (argv.includes("--preview")) {
    texts.set(`${stack}: pulumi preview --diff`, pulumi(["preview", "--diff", "--stack", stack]));
  }
  for (const [file, content] of Object.entries(renderSiteFiles(loadProjectSite(dir, stack)))) {
    texts.set(`${stack}: npm run render: ${file}`, content);
  }
}
const backend = process.env.PULUMI_BACKEND_URL;
if (backend?.startsWith("file://")) {
  for (const [file, content] of readTree(backend.slice("file://".length))) texts.set(file, content);
}
argv.forEach((a, i) => {
  if (a === "--log") {
    const file = path.resolve(argv[i + 1] ?? "");
    texts.set(file, fs.readFileSync(file, "utf8"));
  }
});

secrets = undeclared(secrets, plainConfig);
const leaks = findLeaks(secrets, texts);
for (const l of leaks)
  console.log(`LEAK ${l.fingerprint} (${l.encoding}) of ${l.source}\n     in ${l.where}`);
console.log(
  `audit:secrets: ${secrets.length} secret values of ${stacks.join(", ")} looked for in ${texts.size} texts: ${leaks.length} found`,
);
process.exit(leaks.length > 0 ? 1 : 0);
