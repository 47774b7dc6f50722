import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError } from "../config/errors";
import type { OutputMap, Stack } from "@pulumi/pulumi/automation";
import { SSH_KEY_KEY } from "../config/schema";
import { fileSource } from "../config/source";
import { projectEstate, siteOf } from "../model/estate";
import { loadSite } from "../model/site";
import { POLICY_PACK, policyConfig } from "../policy";
import { driftReadCommand, driftWriteCommand, renderDriftTextfile, type DriftResult } from "../render/drift";
import type { Estate } from "../render/estate";
import { SiteSsh } from "./siteSsh";
import { ROOT, flag } from "./cli";
import { EXIT, exitCode, runEstate, type EstateCommand, type Progress } from "./estateRun";
import { GITHUB_COMMENT_LIMIT, reviewMarkdown, table, urnName, type SiteReport } from "./review";

/**
 * `npm run estate -- preview|up|drift [--sites a,b] [--parallel N] [--json out.json] [--markdown out.md] [--key FILE]`
 *
 * Every site's stack, in order (control planes first, then the others `--parallel` at a time), through the
 * Automation API, with a live line per site and one table at the end. The project is the repository's
 * (`--project DIR` or QCLOUD_PROJECT_DIR for another, such as the sandbox's); the backend, passphrase and SSH
 * come from the environment as for `pulumi` itself.
 *
 * `up --refresh` refreshes first (opt-in: see estateRun.ts); preview and up run the policy pack (policy/) with each site's facts;
 * drift (a refresh, then a preview that expects nothing to change) writes each site's drift gauges on its host.
 *
 * Exit codes (EXIT): 0 done, nothing to change (preview) or no drift (drift); 1 a site failed, a policy refused, or bad
 * input; 2 preview found changes; 3 drift found.
 */

const COMMANDS: readonly EstateCommand[] = ["preview", "up", "drift"];

function usage(message: string): never {
  console.error(`estate: ${message}`);
  console.error(
    "usage: npm run estate -- preview|up|drift [--sites a,b] [--parallel N] [--json out.json] [--markdown out.md] [--project DIR] [--refresh] [--key FILE]",
  );
  process.exit(EXIT.failed);
}

/** A line per site: redrawn in place on a terminal, printed on each start and finish (and every 30 s) elsewhere. */
function progress(command: EstateCommand): Progress {
  const tty = process.stderr.isTTY;
  const lines = new Map<string, { t0: number; steps: number; last: string; done?: string }>();
  let drawn = 0;
  let lastDraw = 0;
  const draw = (force = false) => {
    if (!tty || (!force && Date.now() - lastDraw < 200)) return;
    lastDraw = Date.now();
    const text = [...lines].map(([site, l]) => {
      const s = ((Date.now() - l.t0) / 1000).toFixed(0);
      return `${site.padEnd(10)} ${l.done ?? `${command} ${s}s, ${l.steps} steps: ${l.last}`}`.slice(
        0,
        process.stderr.columns - 1,
      );
    });
    process.stderr.write(`${drawn ? `\x1b[${drawn}A` : ""}${text.map((t) => `\x1b[2K${t}\n`).join("")}`);
    drawn = text.length;
  };
  const timer = tty
    ? undefined
    : setInterval(() => {
        for (const [site, l] of lines) {
          if (!l.done)
            console.error(
              `${site}: ${command} running ${((Date.now() - l.t0) / 1000).toFixed(0)}s, ${l.steps} steps`,
            );
        }
      }, 30_000);
  timer?.unref();
  return {
    start(site) {
      lines.set(site, { t0: Date.now(), steps: 0, last: "starting" });
      if (!tty) console.error(`${site}: ${command} started`);
      draw(true);
    },
    event(site, what) {
      const l = lines.get(site)!;
      l.steps++;
      l.last = what;
      draw();
    },
    finish(r) {
      const l = lines.get(r.site) ?? { t0: Date.now(), steps: 0, last: "" };
      l.done = `${r.result} in ${(r.durationMs / 1000).toFixed(1)}s${r.error && r.result === "skipped" ? ` (${r.error})` : ""}`;
      lines.set(r.site, l);
      if (!tty) console.error(`${r.site}: ${l.done}`);
      draw(true);
    },
  };
}

function printTable(reports: readonly SiteReport[]): void {
  const rows = table(reports);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows)
    console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
  for (const r of reports) {
    for (const p of r.policy) console.log(`${r.site}: policy ${p.level} \`${p.policy}\`: ${p.message}`);
  }
  for (const r of reports.filter((x) => x.error)) {
    console.log(`\n${r.site}: ${r.result}\n${r.error}`);
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const command = argv[0] as EstateCommand;
  if (!COMMANDS.includes(command))
    usage(`expected a command (${COMMANDS.join(", ")}), got ${argv[0] ?? "none"}`);
  // A mistyped option must not widen what runs (`--site lady` would otherwise mean every site).
  const withValue = ["--sites", "--parallel", "--json", "--markdown", "--project", "--key"];
  for (let i = 1; i < argv.length; i++) {
    if (withValue.includes(argv[i]!)) i++;
    else if (argv[i] !== "--refresh") usage(`unknown option or argument \`${argv[i]}\``);
  }
  const projectDir = path.resolve(flag(argv, "project") ?? process.env.QCLOUD_PROJECT_DIR ?? ROOT);
  if (!fs.existsSync(path.join(projectDir, "Pulumi.yaml")))
    usage(`--project: no Pulumi.yaml in ${projectDir}`);
  const parallel = Number(flag(argv, "parallel") ?? 4);
  if (!Number.isInteger(parallel) || parallel < 1) usage("--parallel: expected a whole number of 1 or more");
  const sites = (flag(argv, "sites") ?? "").split(",").filter(Boolean);
  const json = flag(argv, "json");
  const markdown = flag(argv, "markdown");

  // Every stack file is read and checked before any stack runs: bad input touches nothing.
  let estate;
  try {
    estate = projectEstate(projectDir);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`FAIL ${e.message.split("\n").join("\nFAIL ")}`);
    return EXIT.failed;
  }
  const key = flag(argv, "key");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-estate-"));
  let reports: SiteReport[];
  try {
    reports = await runEstate({
      command,
      projectDir,
      estate,
      sites,
      parallel,
      policy: (site) => {
        const file = path.join(tmp, `policy-${site}.json`);
        fs.writeFileSync(file, JSON.stringify(policyConfig(siteModel(projectDir, estate, site))));
        return { packs: [POLICY_PACK], configs: [file] };
      },
      refresh: argv.includes("--refresh"),
      keepDiff: markdown !== undefined,
      progress: progress(command),
      afterDrift: (report, stack) => exportDrift(report, stack, projectDir, estate, key),
    });
  } catch (e) {
    usage(e instanceof Error ? e.message : String(e));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  printTable(reports);
  if (json) {
    const doc = {
      command,
      sites: reports.map((r) => ({
        site: r.site,
        result: r.result,
        counts: r.counts,
        durationMs: r.durationMs,
        resources: r.changes.map((c) => ({
          urn: c.urn,
          type: c.type,
          name: urnName(c.urn),
          op: c.op,
        })),
        policy: r.policy,
        ...(r.error ? { error: r.error } : {}),
      })),
    };
    fs.writeFileSync(json, `${JSON.stringify(doc, null, 2)}\n`);
  }
  if (markdown) {
    const title = command === "drift" ? "Estate drift" : "Estate preview";
    // Room for the header a workflow puts above it (the PR comment, the drift issue).
    fs.writeFileSync(markdown, reviewMarkdown(title, reports, GITHUB_COMMENT_LIMIT - 4096));
  }
  return exitCode(command, reports);
}

/** A site of the project's estate, from its stack file there. */
const siteModel = (projectDir: string, estate: Estate, site: string) =>
  loadSite(fileSource(path.join(projectDir, path.basename(siteOf(estate, site).file))), estate);

/**
 * Writes a site's drift gauges on its host (`drift.prom`, docs/metrics.md), over SSH as its stack reaches it: the
 * address and host key its stack exports, the key of `--key`, else its stack's `sshPrivateKey`, else the agent.
 */
async function exportDrift(
  report: SiteReport,
  stack: Stack,
  projectDir: string,
  estate: Estate,
  keyFile?: string,
): Promise<SiteReport> {
  const model = siteModel(projectDir, estate, report.site);
  const outputs = await stack.outputs().catch(() => ({}) as OutputMap);
  const text = (k: string) =>
    typeof outputs[k]?.value === "string" ? (outputs[k].value as string) : undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-drift-"));
  let ssh: SiteSsh | undefined;
  try {
    let key = keyFile;
    if (!key) {
      const configured = await stack.getConfig(SSH_KEY_KEY).catch(() => undefined);
      // OpenSSH refuses a key file without its final newline, which config values lose.
      if (configured)
        fs.writeFileSync((key = path.join(dir, "key")), `${configured.value.trimEnd()}\n`, { mode: 0o600 });
    }
    const address = text("hostAddress");
    const hostKey = text("hostKey");
    ssh = new SiteSsh({
      host: model.host,
      ...(address ? { address } : {}),
      ...(hostKey ? { hostKey } : {}),
      ...(key ? { key } : {}),
    });
    const result: DriftResult =
      report.result === "failed"
        ? { completed: false }
        : { completed: true, resources: report.changes.length, at: Math.floor(Date.now() / 1000) };
    const previous = result.completed ? undefined : ssh.run(driftReadCommand()).stdout;
    const w = ssh.run(driftWriteCommand(renderDriftTextfile(result, previous)));
    if (w.status === 0) return report;
    const why = `could not write its drift gauges (drift.prom) over SSH: ${(w.stderr || w.error?.message || "").trim()}`;
    return { ...report, result: "failed", error: [report.error, why].filter(Boolean).join("\n") };
  } finally {
    ssh?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exit(EXIT.failed);
  },
);
