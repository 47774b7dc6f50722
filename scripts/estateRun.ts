import { LocalWorkspace, type EngineEvent, type Stack } from "@pulumi/pulumi/automation";
import type { Estate } from "../render/estate";
import {
  changesOf,
  emptyCounts,
  urnName,
  violationsOf,
  type Counts,
  type SiteReport,
  type SiteResult,
} from "./review";

/**
 * Runs one command over the sites of an estate with the Pulumi Automation API: the control planes first (the other
 * sites read their outputs), then the others, a few at a time. `up` leaves alone the sites whose control plane
 * failed, and says so.
 */

export type EstateCommand = "preview" | "up" | "drift";

export interface EstateRunOptions {
  readonly command: EstateCommand;
  /** The Pulumi project directory (Pulumi.yaml and the stack files). */
  readonly projectDir: string;
  readonly estate: Estate;
  /** The sites to run, by name; all when empty. */
  readonly sites: readonly string[];
  /** How many sites run at once after the control planes. */
  readonly parallel: number;
  /** Per site: the policy packs and their config files to run with (none when empty). */
  readonly policy: (site: string) => { packs: string[]; configs: string[] };
  /**
   * `up` refreshes first, putting back what was changed by hand. Not the default: on a state whose resources still
   * go by an alias (the first `up` after a release that moves them) the engine panics in a refreshing update
   * (`assertSeen`, engine/deployment.go; CLI 3.276, seen in the e2e), and a deploy must not depend on that.
   */
  readonly refresh: boolean;
  /** The engine's text diff is kept for the review (`--markdown`). */
  readonly keepDiff: boolean;
  readonly progress: Progress;
  /** After a site's drift check (drift or not), e.g. to export its gauges: the report, failed if that failed. */
  readonly afterDrift?: (report: SiteReport, stack: Stack) => Promise<SiteReport>;
}

/** Live progress: a line per site. */
export interface Progress {
  start(site: string): void;
  event(site: string, what: string): void;
  finish(report: SiteReport): void;
}

/** `npm run estate`'s exit codes (README: Reviews and deploys). */
export const EXIT = { ok: 0, failed: 1, changes: 2, drift: 3 } as const;

/** The exit code of a run: a failure first, then drift, then a preview's changes. */
export function exitCode(command: EstateCommand, reports: readonly SiteReport[]): number {
  if (reports.some((r) => r.result === "failed" || r.result === "skipped")) return EXIT.failed;
  if (reports.some((r) => r.result === "drift")) return EXIT.drift;
  if (command === "preview" && reports.some((r) => r.result === "changes")) return EXIT.changes;
  return EXIT.ok;
}

/** The run order: control planes first, then the rest; each group by name. */
export function order(estate: Estate, wanted: readonly string[]): { first: string[]; then: string[] } {
  const known = estate.sites.map((s) => s.name);
  const unknown = wanted.filter((w) => !known.includes(w));
  if (unknown.length) {
    throw new Error(
      `--sites: expected sites of the estate (${known.join(", ")}); unknown: ${unknown.join(", ")}`,
    );
  }
  const picked = estate.sites.filter((s) => wanted.length === 0 || wanted.includes(s.name));
  return {
    first: picked.filter((s) => s.controlPlane === s.name).map((s) => s.name),
    then: picked.filter((s) => s.controlPlane !== s.name).map((s) => s.name),
  };
}

/** Runs `tasks` with at most `limit` at once; results in the tasks' order. */
async function limited<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

const countsOf = (events: readonly EngineEvent[]): Counts => {
  const summary = events.find((e) => e.summaryEvent)?.summaryEvent?.resourceChanges ?? {};
  const counts = emptyCounts();
  for (const k of Object.keys(counts) as (keyof Counts)[]) counts[k] = summary[k] ?? 0;
  return counts;
};

/** One site: the command through the Automation API, its events collected into a report. */
async function runSite(site: string, o: EstateRunOptions): Promise<SiteReport> {
  const t0 = Date.now();
  const events: EngineEvent[] = [];
  let diff = "";
  o.progress.start(site);
  const onEvent = (e: EngineEvent) => {
    events.push(e);
    const m = e.resourcePreEvent?.metadata;
    if (m) o.progress.event(site, `${m.op} ${urnName(m.urn)}`);
  };
  const onOutput = (out: string) => {
    if (o.keepDiff) diff += out;
  };
  let stack: Stack | undefined;
  let error: string | undefined;
  try {
    stack = await LocalWorkspace.selectStack({ stackName: site, workDir: o.projectDir });
    const { packs, configs } = o.policy(site);
    const common = {
      onEvent,
      onOutput,
      color: "never" as const,
      ...(packs.length ? { policyPacks: packs, policyPackConfigs: configs } : {}),
    };
    // A refresh needs the program: it writes the SSH client files Docker's ssh reads (components/host.ts).
    if (o.command === "up") await stack.up({ ...common, refresh: o.refresh, runProgram: o.refresh });
    else if (o.command === "drift")
      await stack.preview({ ...common, diff: o.keepDiff, refresh: true, runProgram: true });
    else await stack.preview({ ...common, diff: o.keepDiff });
  } catch (e) {
    error = lastLines(e instanceof Error ? e.message : String(e));
  }
  const counts = countsOf(events);
  const changes = changesOf(events);
  const changed = changes.length > 0;
  const result: SiteResult = error
    ? "failed"
    : o.command === "up" || !changed
      ? "ok"
      : o.command === "drift"
        ? "drift"
        : "changes";
  let report: SiteReport = {
    site,
    result,
    counts,
    durationMs: Date.now() - t0,
    changes,
    policy: violationsOf(events),
    ...(error ? { error } : {}),
    ...(o.keepDiff && diff ? { diff } : {}),
  };
  if (o.command === "drift" && stack && o.afterDrift) {
    try {
      report = await o.afterDrift(report, stack);
    } catch (e) {
      const why = `its drift gauges were not written: ${e instanceof Error ? e.message : String(e)}`;
      report = { ...report, result: "failed", error: [report.error, why].filter(Boolean).join("\n") };
    }
  }
  o.progress.finish(report);
  return report;
}

/** The end of a long engine error: what went wrong, not the command line (which names files, never secrets). */
function lastLines(message: string): string {
  const lines = message.split("\n").filter((l) => l.trim());
  const stderr = lines.findIndex((l) => l.trimStart().startsWith("stderr:"));
  return (stderr >= 0 ? lines.slice(stderr) : lines).slice(-30).join("\n");
}

const skipped = (site: string, why: string): SiteReport => ({
  site,
  result: "skipped",
  counts: emptyCounts(),
  durationMs: 0,
  changes: [],
  policy: [],
  error: why,
});

/**
 * Runs the command over the estate; a report per site, in run order. Only `up` waits for the control planes: a
 * preview reads their outputs as they are, so every site previews at once (within the limit).
 */
export async function runEstate(o: EstateRunOptions): Promise<SiteReport[]> {
  const { first, then } = order(o.estate, o.sites);
  if (o.command !== "up") {
    return limited(
      [...first, ...then].map((s) => () => runSite(s, o)),
      o.parallel,
    );
  }
  const reports = await limited(
    first.map((s) => () => runSite(s, o)),
    o.parallel,
  );
  const failed = new Set(reports.filter((r) => r.result === "failed").map((r) => r.site));
  const cpOf = (site: string) => o.estate.sites.find((s) => s.name === site)!.controlPlane;
  const rest = await limited(
    then.map((s) => async () => {
      if (failed.has(cpOf(s))) {
        const report = skipped(s, `not touched: its control plane \`${cpOf(s)}\` failed`);
        o.progress.finish(report);
        return report;
      }
      return runSite(s, o);
    }),
    o.parallel,
  );
  return [...reports, ...rest];
}
