import type { ServiceName } from "../catalog";
import type { SiteModel } from "../render/siteModel";
import { table } from "./markdown";
import { ConfigError, joinPath } from "../config/errors";
import { SITE_KEY } from "../config/schema";
import { textSource, type ConfigSource } from "../config/source";
import { loadEstate } from "../model/estate";
import { loadSite } from "../model/site";
import { withResources, type ResourceSetting } from "./stackFile";

/**
 * `npm run rightsize`'s decisions, without Prometheus or SSH: the queries, their answers parsed, the answers joined
 * with the site's model, the suggested limits, the table, and what `--write` changes in the stack file.
 */

const MIB = 2 ** 20;
/** The service whose metrics are read: cAdvisor, scraped on every site (render/prometheus.ts labels its series). */
const CADVISOR: ServiceName = "cadvisor";

/** Prometheus' duration units, largest first: a range names them in this order, each once. */
const UNITS = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 } as const;

/**
 * A window as Prometheus writes a range (`10m`, `6h`, `7d`, `1h30m`) in seconds, at least 2 minutes (a CPU rate
 * needs that much); throws saying what is expected.
 */
export function windowSeconds(window: string): number {
  const m = /^(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$/.exec(window);
  const total = m ? Object.values(UNITS).reduce((n, unit, i) => n + Number(m[i + 1] ?? 0) * unit, 0) : 0;
  if (total < 120)
    throw new Error(
      `--window \`${window}\`: expected a duration of at least 2 minutes such as \`10m\`, \`6h\` or \`7d\``,
    );
  return total;
}

export type Measure = "memoryPeak" | "memoryP95" | "cpuPeak" | "cpuP95";

/**
 * The PromQL of each measure over `window`, for the site's containers as cAdvisor names them (`name`; the
 * series without one are cgroups, not containers), and `up` of the site's cAdvisor. A container replaced in the
 * window has a series per incarnation (its cgroup `id`): the highest of them counts. CPU is the rate over
 * `max(2m, 4 scrapes)`, sampled every scrape in the window (a subquery): its peak and p95. `held`: how many seconds
 * of the window Prometheus has samples of (from the oldest scrape of the site's cAdvisor in it).
 */
export function rightsizeQueries(
  site: string,
  window: string,
  scrapeSeconds: number,
): Record<Measure | "up" | "held", string> {
  const target = `site="${site}",service="${CADVISOR}"`;
  const memory = `container_memory_working_set_bytes{${target},name!=""}[${window}]`;
  const rate = `rate(container_cpu_usage_seconds_total{${target},name!=""}[${Math.max(120, 4 * scrapeSeconds)}s])`;
  const cpu = `${rate}[${window}:${scrapeSeconds}s]`;
  return {
    memoryPeak: `max by (name) (max_over_time(${memory}))`,
    memoryP95: `max by (name) (quantile_over_time(0.95, ${memory}))`,
    cpuPeak: `max by (name) (max_over_time(${cpu}))`,
    cpuP95: `max by (name) (quantile_over_time(0.95, ${cpu}))`,
    up: `up{${target}}`,
    held: `time() - min by (site) (min_over_time(timestamp(up{${target}})[${window}:${scrapeSeconds}s]))`,
  };
}

/** The query string of Prometheus' HTTP API for `query`, safe inside single quotes of a shell. */
export const queryPath = (query: string) =>
  `/api/v1/query?query=${encodeURIComponent(query).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;

/** What `/api/v1/query` answers (https://prometheus.io/docs/prometheus/latest/querying/api/), as far as read here. */
interface QueryResponse {
  readonly status?: string;
  readonly errorType?: string;
  readonly error?: string;
  readonly data?: {
    readonly resultType?: string;
    readonly result?: readonly {
      readonly metric?: Record<string, string>;
      readonly value?: [number, string];
    }[];
  };
}

/**
 * An instant vector's values by one label (`name`: the container), from the API's JSON answer to `query`. Throws on
 * anything but a successful vector, with Prometheus' own error. `NaN` (no sample to take a quantile of) is no value.
 */
export function parseVector(json: string, query: string, label = "name"): Map<string, number> {
  let r: QueryResponse;
  try {
    r = JSON.parse(json) as QueryResponse;
  } catch {
    throw new Error(`Prometheus answered \`${query}\` with no JSON: ${json.trim().slice(0, 200)}`);
  }
  if (r.status !== "success")
    throw new Error(`Prometheus refused \`${query}\`: ${r.errorType ?? "error"}: ${r.error ?? r.status}`);
  if (r.data?.resultType !== "vector" || !Array.isArray(r.data.result))
    throw new Error(
      `Prometheus answered \`${query}\` with a ${r.data?.resultType ?? "no"} result: expected a vector`,
    );
  const out = new Map<string, number>();
  for (const s of r.data.result) {
    const key = s.metric?.[label];
    const value = Number(s.value?.[1]);
    if (key !== undefined && Number.isFinite(value)) out.set(key, value);
  }
  return out;
}

/**
 * What to say when Prometheus holds less of the window than asked (its retention is shorter, or the site's cAdvisor
 * was first scraped within it): the peaks and p95s are of what it holds. Nothing within two scrapes of the window.
 */
export function heldNote(
  heldSeconds: number | undefined,
  window: string,
  scrapeSeconds: number,
): string | undefined {
  if (heldSeconds === undefined || heldSeconds >= windowSeconds(window) - 2 * scrapeSeconds) return undefined;
  const held =
    heldSeconds >= 2 * 86400
      ? `${(heldSeconds / 86400).toFixed(1)} days`
      : heldSeconds >= 7200
        ? `${(heldSeconds / 3600).toFixed(1)} hours`
        : `${Math.floor(heldSeconds / 60)} minutes`;
  return `note: Prometheus holds the last ${held} of the ${window} asked for (its retention, or the site's cAdvisor scraped since then only): the peaks and p95s are of those`;
}

/** Peak and p95 of one measure over the window: bytes for memory, CPUs for CPU. */
export interface Usage {
  readonly peak: number;
  readonly p95: number;
}
export interface Observed {
  readonly memory?: Usage;
  readonly cpu?: Usage;
}

/** The four measures' vectors joined by container name; a measure is there only with both its peak and p95. */
export function observations(
  vectors: Readonly<Record<Measure, ReadonlyMap<string, number>>>,
): Map<string, Observed> {
  const usage = (peak: number | undefined, p95: number | undefined): Usage | undefined =>
    peak === undefined || p95 === undefined ? undefined : { peak, p95 };
  // The four measures only: the caller's record may hold more (rightsize.ts's `up`, keyed by site).
  const names = new Set(
    [vectors.memoryPeak, vectors.memoryP95, vectors.cpuPeak, vectors.cpuP95].flatMap((v) => [...v.keys()]),
  );
  return new Map(
    [...names].sort().map((n) => {
      const memory = usage(vectors.memoryPeak.get(n), vectors.memoryP95.get(n));
      const cpu = usage(vectors.cpuPeak.get(n), vectors.cpuP95.get(n));
      return [n, { ...(memory ? { memory } : {}), ...(cpu ? { cpu } : {}) }];
    }),
  );
}

/** Memory headroom over the peak, its rounding step and floor (MiB): Docker's minimum is 6 MiB. */
export const MEMORY_RULE = { headroom: 1.3, stepMb: 32, floorMb: 32 } as const;
/** CPU headroom over the p95, its rounding step and floor (CPUs). */
export const CPU_RULE = { headroom: 1.5, step: 0.05, floor: 0.05 } as const;

/**
 * The memory limit to suggest, in MiB: the peak working set (what the kernel counts against the limit) x 1.3,
 * rounded up to 32 MiB, at least 32 MiB. From the peak, not the p95: a container over its memory limit is killed.
 */
export function suggestMemoryMb(peakBytes: number): number {
  const { headroom, stepMb, floorMb } = MEMORY_RULE;
  return Math.max(floorMb, Math.ceil((peakBytes * headroom) / MIB / stepMb) * stepMb);
}

/**
 * The CPU limit to suggest: the p95 x 1.5, but never under the peak, rounded up to 0.05, at least 0.05. Over its
 * CPU limit a container is only throttled, so a short burst over the p95 may wait; its peak is still met.
 */
export function suggestCpus(usage: Usage): number {
  const { headroom, step, floor } = CPU_RULE;
  // In hundredths: 0.05 steps without binary fractions' drift (0.15000000000000002).
  const hundredths = Math.ceil(Math.max(usage.p95 * headroom, usage.peak) / step - 1e-9) * step * 100;
  return Math.max(floor, Math.round(hundredths) / 100);
}

export interface RightsizeRow {
  readonly service: string;
  /** The container's catalog key (`main`, `db` ...). */
  readonly key: string;
  /** The container's name, as Docker and cAdvisor know it. */
  readonly container: string;
  readonly declared: { readonly memoryMb: number; readonly cpus: number };
  /** Bytes. Absent: no sample in the window. */
  readonly memory?: Usage;
  /** CPUs. Absent: no sample in the window. */
  readonly cpu?: Usage;
  readonly suggested: { readonly memoryMb?: number; readonly cpus?: number };
}

export interface RightsizeReport {
  readonly site: string;
  readonly window: string;
  /** Every container of the site's model, in its order. */
  readonly rows: readonly RightsizeRow[];
  /** Containers Prometheus has for the site that its model does not (a job's, one made by hand, a leftover). */
  readonly unknown: readonly { readonly container: string; readonly memory?: Usage }[];
}

/** Every container of the model beside what was observed of it, with its suggested limits. */
export function rightsize(
  model: SiteModel,
  observed: ReadonlyMap<string, Observed>,
  window: string,
): RightsizeReport {
  const rows = model.services.flatMap((s) =>
    s.containers.map((c): RightsizeRow => {
      const o = observed.get(c.name) ?? {};
      return {
        service: s.name,
        key: c.key,
        container: c.name,
        declared: { memoryMb: c.memoryMb, cpus: c.cpus },
        ...o,
        suggested: {
          ...(o.memory ? { memoryMb: suggestMemoryMb(o.memory.peak) } : {}),
          ...(o.cpu ? { cpus: suggestCpus(o.cpu) } : {}),
        },
      };
    }),
  );
  const known = new Set(rows.map((r) => r.container));
  const unknown = [...observed]
    .filter(([n]) => !known.has(n))
    .map(([container, o]) => ({ container, ...(o.memory ? { memory: o.memory } : {}) }));
  return { site: model.name, window, rows, unknown };
}

/** MiB as a stack file writes memory: `2g` when whole gigabytes, else `1184m`. */
export const memoryValue = (mb: number) => (mb % 1024 === 0 ? `${mb / 1024}g` : `${mb}m`);
const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)}m`;
const cores = (n: number) => n.toFixed(3);
const NO_DATA = "no data";

/** The table and the summary: plain text, numbers aligned right. */
export function formatReport(r: RightsizeReport): string {
  const header = [
    "service",
    "container",
    "memory",
    "peak",
    "p95",
    "suggested",
    "CPUs",
    "peak",
    "p95",
    "suggested",
  ];
  const rows = r.rows.map((x) => [
    x.service,
    x.container,
    `${x.declared.memoryMb}m`,
    x.memory ? mib(x.memory.peak) : NO_DATA,
    x.memory ? mib(x.memory.p95) : "",
    x.suggested.memoryMb === undefined ? "" : `${x.suggested.memoryMb}m`,
    String(x.declared.cpus),
    x.cpu ? cores(x.cpu.peak) : NO_DATA,
    x.cpu ? cores(x.cpu.p95) : "",
    x.suggested.cpus === undefined ? "" : String(x.suggested.cpus),
  ]);
  const sum = (f: (x: RightsizeRow) => number) => r.rows.reduce((n, x) => n + f(x), 0);
  const declaredMb = sum((x) => x.declared.memoryMb);
  const suggestedMb = sum((x) => x.suggested.memoryMb ?? x.declared.memoryMb);
  const declaredCpus = sum((x) => x.declared.cpus);
  const suggestedCpus = sum((x) => x.suggested.cpus ?? x.declared.cpus);
  const missing = r.rows.filter((x) => !x.memory || !x.cpu).map((x) => x.container);
  const freed = declaredMb - suggestedMb;
  const lines = [
    `${r.site}: ${r.rows.length} container(s) over the last ${r.window} (memory in MiB; peak and p95 of the working set and of the CPU rate)`,
    "",
    table(header, rows, [2, 3, 4, 5, 6, 7, 8, 9]),
    "",
    `total memory: declared ${declaredMb}m, suggested ${suggestedMb}m: rightsizing ${freed >= 0 ? `frees ${freed}m` : `needs ${-freed}m more`}` +
      (missing.length ? ` (${missing.length} without data counted at their declared limits)` : ""),
    `total CPUs: declared ${+declaredCpus.toFixed(2)}, suggested ${+suggestedCpus.toFixed(2)}`,
  ];
  if (missing.length)
    lines.push(`no samples in the last ${r.window} (not running, or not scraped): ${missing.join(", ")}`);
  if (r.unknown.length)
    lines.push(
      `in Prometheus for ${r.site} but not in its model (nothing suggested): ${r.unknown
        .map((u) => `${u.container}${u.memory ? ` (peak ${mib(u.memory.peak)})` : ""}`)
        .join(", ")}`,
    );
  return lines.join("\n");
}

/**
 * What `--write` sets in the stack file: each suggestion that differs from the declared limit. One equal to the
 * catalog's default (`defaults`: the site's model without its `resources` overrides) removes the override instead
 * of repeating the default; a suggestion equal to the declared limit, or none (no data), changes nothing.
 */
export function resourceSettings(rows: readonly RightsizeRow[], defaults: SiteModel): Setting[] {
  const catalog = new Map(defaults.services.flatMap((s) => s.containers.map((c) => [c.name, c])));
  return rows.flatMap((x) => {
    const def = catalog.get(x.container);
    if (!def) throw new Error(`\`${x.container}\` is not in the site's model without its overrides`);
    const fields = [
      ["memory", x.declared.memoryMb, x.suggested.memoryMb, def.memoryMb, memoryValue],
      ["cpus", x.declared.cpus, x.suggested.cpus, def.cpus, (n: number) => n],
    ] as const;
    return fields.flatMap(([field, declared, suggested, dflt, value]) =>
      suggested === undefined || suggested === declared
        ? []
        : [
            {
              container: x.container,
              service: x.service,
              key: x.key,
              field,
              ...(suggested === dflt ? {} : { value: value(suggested) }),
              from: String(field === "memory" ? memoryValue(declared) : declared),
              to: `${field === "memory" ? memoryValue(suggested) : suggested}${suggested === dflt ? " (the catalog's default)" : ""}`,
            },
          ],
    );
  });
}

/** A change `--write` makes, with the container it is for and what it was and becomes, as printed. */
export type Setting = ResourceSetting & {
  readonly container: string;
  readonly from: string;
  readonly to: string;
};

/**
 * `settings` split by whether the stack file can hold them: a container the program places (the repository the
 * estate puts where other sites back up, a tailnet egress node per flow) has no entry a stack file may set. Found
 * by loading the estate (`others`: its other stack files) with each container's settings alone, as `check` and
 * `pulumi up` would: a container is placed when every problem is its entry itself (not a value in it), exact by
 * construction whatever the schema allows next. Any other problem is thrown, as is one of the unedited file.
 */
export function settable(
  settings: readonly Setting[],
  file: string,
  text: string,
  others: readonly ConfigSource[],
): { readonly settings: Setting[]; readonly placed: string[] } {
  const load = (source: ConfigSource) =>
    loadSite(source, loadEstate([...others, source]), { capacity: false });
  load(textSource(file, text));
  const containers = [...new Map(settings.map((s) => [s.container, s])).values()];
  const placed = containers
    .filter(({ container, service, key }) => {
      try {
        load(
          textSource(
            file,
            withResources(
              text,
              settings.filter((s) => s.container === container),
            ),
          ),
        );
        return false;
      } catch (e) {
        const entry = joinPath([
          SITE_KEY,
          "services",
          service,
          ...(key === "main" ? [] : ["containers", key]),
        ]);
        if (e instanceof ConfigError && e.issues.every((i) => i.path === entry)) return true;
        throw e;
      }
    })
    .map((s) => s.container);
  return { settings: settings.filter((s) => !placed.includes(s.container)), placed };
}

/** The field a setting edits, as a stack file's path below the site (`services.nextcloud.containers.db.resources.memory`). */
export const settingPath = (s: Pick<ResourceSetting, "service" | "key" | "field">) =>
  `services.${s.service}${s.key === "main" ? "" : `.containers.${s.key}`}.resources.${s.field}`;

/**
 * What the model of the written stack file does not give as suggested (each container's suggestion, else its
 * declared limit): empty when `--write` did what it says.
 */
export function unmet(rows: readonly RightsizeRow[], written: SiteModel): string[] {
  const now = new Map(written.services.flatMap((s) => s.containers.map((c) => [c.name, c])));
  return rows.flatMap((x) => {
    const c = now.get(x.container);
    const memoryMb = x.suggested.memoryMb ?? x.declared.memoryMb;
    const cpus = x.suggested.cpus ?? x.declared.cpus;
    return c?.memoryMb === memoryMb && c.cpus === cpus
      ? []
      : [
          `${x.container}: expected ${memoryMb}m and ${cpus} CPUs, got ${c ? `${c.memoryMb}m and ${c.cpus}` : "no container"}`,
        ];
  });
}
