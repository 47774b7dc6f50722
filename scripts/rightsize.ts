import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError } from "../config/errors";
import { DEFAULT_MONITORING } from "../config/schema";
import { fileSource, textSource } from "../config/source";
import { loadEstate, projectEstate, siteOf, stackFilesIn } from "../model/estate";
import { loadSite, seconds } from "../model/site";
import { ROOT, flag, pulumiIn } from "./cli";
import {
  formatReport,
  heldNote,
  observations,
  parseVector,
  queryPath,
  resourceSettings,
  settable,
  rightsize,
  rightsizeQueries,
  settingPath,
  unmet,
  windowSeconds,
  type Measure,
} from "./rightsizePlan";
import { SiteSsh, stackSsh, tail } from "./siteSsh";
import { withResources, withoutResources } from "./stackFile";

/**
 * `npm run rightsize -- --stack <site> [--window 7d] [--write] [--ssh-key <file>]`: each of the site's containers'
 * peak and p95 memory and CPU over the window, from the control plane's Prometheus (cAdvisor's metrics), beside its
 * declared limits and the suggested ones (the rule: scripts/rightsizePlan.ts); `--write` sets the suggestions as the
 * stack file's overrides. Prometheus is asked on the control plane's server, over SSH as its stack reaches it (the
 * operator's machine has no route to it). The project is this checkout, or QCLOUD_PROJECT_DIR (the sandbox's).
 * Every refusal comes before anything is written.
 */
const argv = process.argv.slice(2);
const usage =
  "usage: npm run rightsize -- --stack <site> [--window <duration, default 7d>] [--write] [--ssh-key <file>]";
const stack = flag(argv, "stack");
const window = flag(argv, "window") ?? "7d";
const write = argv.includes("--write");
const keyFlag = flag(argv, "ssh-key");
const dir = process.env.QCLOUD_PROJECT_DIR ?? ROOT;

function fail(message: string, code = 1): never {
  console.error(`rightsize: ${message}`);
  process.exit(code);
}
if (!stack) fail(usage, 2);
try {
  windowSeconds(window);
} catch (e) {
  fail((e as Error).message);
}

const file = path.join(dir, `Pulumi.${stack}.yaml`);
if (!fs.existsSync(file))
  fail(
    `${file}: no such stack file (the sites there: ${stackFilesIn(dir)
      .map((f) => /^Pulumi\.(.+)\.ya?ml$/.exec(path.basename(f))![1])
      .join(", ")})`,
  );
let estate;
let model;
let controlPlane;
try {
  estate = projectEstate(dir);
  siteOf(estate, stack);
  // No capacity check on the site as it is: rightsizing is how an overcommitted site is brought back within its
  // host. What --write would write is checked as `check` and `pulumi up` would, capacity included.
  model = loadSite(fileSource(file), estate, { capacity: false });
  controlPlane = loadSite(fileSource(path.join(dir, `Pulumi.${model.controlPlane}.yaml`)), estate, {
    capacity: false,
  });
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  fail(e.message);
}
const prometheus = controlPlane.services
  .find((s) => s.name === "prometheus")
  ?.containers.find((c) => c.key === "main")?.name;
if (!prometheus)
  fail(`${controlPlane.file}: the control plane \`${controlPlane.name}\` runs no Prometheus to ask`);
const scrape = seconds((controlPlane.monitoring ?? DEFAULT_MONITORING).interval);

// One SSH connection, one query after another; each answer is one line of JSON.
const queries = rightsizeQueries(stack, window, scrape);
const names = Object.keys(queries) as (keyof typeof queries)[];
const keys = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-rightsize-"));
const opened: SiteSsh[] = [];
process.on("exit", () => {
  for (const s of opened) s.close();
  fs.rmSync(keys, { recursive: true, force: true });
});
let ssh: SiteSsh;
try {
  ssh = stackSsh(pulumiIn(dir), controlPlane.name, controlPlane, {
    ...(keyFlag ? { key: keyFlag } : {}),
    keys,
  });
  opened.push(ssh);
} catch (e) {
  fail(`cannot reach \`${controlPlane.name}\`: ${(e as Error).message}`);
}
const r = ssh.run(
  names
    .map((n) => `docker exec ${prometheus} wget -q -O - 'http://127.0.0.1:9090${queryPath(queries[n])}'`)
    .join(" && echo && "),
);
const answers = r.stdout.split("\n").filter((l) => l.trim() !== "");
if (r.status !== 0 || answers.length !== names.length)
  fail(
    `cannot query Prometheus on \`${controlPlane.name}\` (${ssh.address}:${ssh.port}, \`docker exec ${prometheus}\`, exit ${r.status}):\n${tail(r.stderr || r.stdout) || "(no output)"}`,
  );

let vectors: Record<Measure | "up" | "held", Map<string, number>>;
try {
  vectors = Object.fromEntries(
    names.map((n, i) => [
      n,
      parseVector(answers[i]!, queries[n], n === "up" || n === "held" ? "site" : "name"),
    ]),
  ) as typeof vectors;
} catch (e) {
  fail((e as Error).message);
}
const observed = observations(vectors);
const report = rightsize(model, observed, window);
const cadvisor = vectors.up.get(stack);
const why =
  cadvisor === undefined
    ? `\`${controlPlane.name}\`'s Prometheus has no cAdvisor target for \`${stack}\` (\`${queries.up}\`)`
    : cadvisor === 1
      ? `its cAdvisor is up`
      : `its cAdvisor is down (\`${queries.up}\` is ${cadvisor})`;
if (observed.size === 0)
  fail(
    `no cAdvisor samples of any container of \`${stack}\` in the last ${window}: ${why}; nothing to suggest`,
  );
console.log(formatReport(report));
const held = heldNote(vectors.held.get(stack), window, scrape);
if (held) console.log(held);
if (cadvisor !== 1) console.log(`warning: ${why}: the numbers may be old or partial`);
if (!write) process.exit(0);

// --write: the stack file edited in memory, checked within its estate and against the suggestions, then written.
const text = fs.readFileSync(file, "utf8");
try {
  const defaults = loadSite(textSource(file, withoutResources(text)), estate, { capacity: false });
  const others = stackFilesIn(dir)
    .filter((f) => f !== file)
    .map((f) => fileSource(f));
  const split = settable(resourceSettings(report.rows, defaults), file, text, others);
  const settings = split.settings;
  if (split.placed.length > 0)
    console.log(
      `--write: not settable in a stack file (the program places them), left as they are: ${split.placed.join(", ")}`,
    );
  if (settings.length === 0) {
    console.log(
      `--write: nothing to change in ${path.basename(file)}: every suggestion it can hold is the declared limit`,
    );
    process.exit(0);
  }
  const next = withResources(text, settings);
  const after = loadEstate([...others, textSource(file, next)]);
  const wrong = unmet(
    report.rows.filter((x) => !split.placed.includes(x.container)),
    loadSite(textSource(file, next), after),
  );
  if (wrong.length > 0)
    throw new Error(`the edited stack file does not give the suggestions:\n${wrong.join("\n")}`);
  fs.writeFileSync(file, next);
  console.log(`--write: ${path.basename(file)}:`);
  for (const s of settings) console.log(`  ${settingPath(s)}: ${s.from} -> ${s.to}`);
} catch (e) {
  if (!(e instanceof Error)) throw e;
  fail(`--write: ${e.message}\nnothing was written`);
}
