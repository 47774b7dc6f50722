import { renderTextfile, textfileReadCommand, textfileWriteCommand, type Gauge } from "./textfile";

/**
 * The drift check's gauges (docs/metrics.md, `drift.prom`): after each site's check, `npm run estate -- drift`
 * writes them over SSH into that site's textfile directory, where its node-exporter serves them and Prometheus adds
 * `site`. The whole file each time; what a failed check cannot know is carried over from the file it replaces.
 */

/** The file's job name: `drift.prom`. */
export const DRIFT_JOB = "drift";

/** The gauges, with their help texts: docs/metrics.md says the same (a test holds them together). */
export const DRIFT_GAUGES = {
  qcloud_drift_resources:
    "Resources whose servers differ from the code at the last completed check (non-same steps of a preview after a refresh).",
  qcloud_drift_last_check_timestamp_seconds: "Unix time of the last completed drift check, drift or not.",
  qcloud_drift_last_check_success:
    "Whether the latest drift check completed (1) or failed before its result (0).",
} as const;

/**
 * One site's check as the estate command ends it: completed (refresh and preview ran; `resources` is the number of
 * the preview's steps that are not `same`, `at` the Unix time in seconds it completed), or failed before a result
 * (the refresh or the preview did not finish).
 */
export type DriftResult =
  | { readonly completed: true; readonly resources: number; readonly at: number }
  | { readonly completed: false };

/** A count or a Unix time: a whole number, 0 or more. */
const count = (what: string, v: number) => {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new Error(`drift check: \`${what}\` is ${String(v)}; expected a whole number, 0 or more`);
  return v;
};

/**
 * The last completed check's values in a `drift.prom` as read back from a site (`driftReadCommand`): only lines of
 * this file's own gauges with a plain whole number count; anything else (no file, a hand-edited one) is as if absent.
 */
export function previousDrift(text: string | undefined): { resources?: number; at?: number } {
  const read = (name: string) => {
    const m = new RegExp(`^${name} ([0-9]{1,15})$`, "m").exec(text ?? "");
    return m ? Number(m[1]) : undefined;
  };
  const resources = read("qcloud_drift_resources");
  const at = read("qcloud_drift_last_check_timestamp_seconds");
  return { ...(resources === undefined ? {} : { resources }), ...(at === undefined ? {} : { at }) };
}

/**
 * `drift.prom` after a check. A completed check writes its count and its time. A failed one writes success 0 and
 * keeps the count and time of the last completed check from `previous` (the file it replaces, read back with
 * `driftReadCommand`): so `DriftDetected` stays as it was and `DriftCheckStale` counts from the last real result.
 * With no previous time (a site's first check failed) the time is 0: stale, rather than absent.
 */
export function renderDriftTextfile(result: DriftResult, previous?: string): string {
  const last = result.completed
    ? { resources: count("resources", result.resources), at: count("at", result.at) }
    : previousDrift(previous);
  const gauge = (name: keyof typeof DRIFT_GAUGES, value: number | undefined): Gauge[] =>
    value === undefined ? [] : [{ name, help: DRIFT_GAUGES[name], samples: [{ value }] }];
  return renderTextfile([
    ...gauge("qcloud_drift_resources", last.resources),
    ...gauge("qcloud_drift_last_check_timestamp_seconds", last.at ?? 0),
    ...gauge("qcloud_drift_last_check_success", result.completed ? 1 : 0),
  ]);
}

/** The command, run over SSH on the site's host, that writes `drift.prom` (`renderDriftTextfile`'s text) atomically. */
export function driftWriteCommand(content: string, dir?: string): string {
  return textfileWriteCommand(DRIFT_JOB, content, dir);
}

/** The command, run over SSH on the site's host, that prints its `drift.prom` (nothing before the first check). */
export function driftReadCommand(dir?: string): string {
  return textfileReadCommand(DRIFT_JOB, dir);
}
