import { joinPath, type ConfigIssue } from "../config/errors";
import { HCLOUD_SERVER_TYPES } from "../config/hcloudTypes";
import { SITE_KEY, type HostConfig } from "../config/schema";
import type { ServiceModel } from "../render/siteModel";

/**
 * Do a site's container limits fit its host? The sums of every container's memory and CPU limits against the host's
 * size (declared for an existing host, from config/hcloudTypes.ts for an hcloud server): above the host, `npm run
 * check` warns; above it by more than the overcommit factor, the site is refused (loadSite), before any resource.
 */

/**
 * How far the memory limits may add up past the host's memory. A memory limit is where the kernel OOM-kills the
 * container; containers sit well below theirs most of the time, so the sum may pass the host a little, but when
 * several peak at once (a backup during Nextcloud's cron) it is the host's OOM killer that picks, and it may pick
 * dockerd or sshd. Small on purpose.
 */
export const MEMORY_OVERCOMMIT = 1.25;
/**
 * How far the CPU limits may add up past the host's CPUs. A CPU limit is a quota ceiling: past the host, busy
 * containers are throttled, nothing is killed. 4: each container keeps its burst ceiling while a quarter of them
 * are busy at once.
 */
export const CPU_OVERCOMMIT = 4;

/** How many containers a warning names, largest first. */
export const TOP_CONSUMERS = 5;

/** What a host has to give. */
export interface HostSize {
  readonly memoryMb: number;
  readonly cpus: number;
  /** `cx22` for an hcloud server, `declared` for an existing host. */
  readonly from: string;
}

/** The host's size, or undefined: an existing host that declares neither `memory` nor `cpus` (one alone is refused). */
export function hostSize(host: HostConfig): HostSize | undefined {
  if (host.kind === "hcloud") {
    const t = HCLOUD_SERVER_TYPES[host.serverType];
    // The schema refuses an unknown type; a model built by hand may not have gone through it.
    if (!t) throw new Error(`unknown Hetzner server type \`${host.serverType}\` (config/hcloudTypes.ts)`);
    return { memoryMb: t.memoryGb * 1024, cpus: t.cores, from: host.serverType };
  }
  if (host.memory === undefined || host.cpus === undefined) return undefined;
  return { memoryMb: host.memory, cpus: host.cpus, from: "declared" };
}

/** One container's limits. */
export interface Consumer {
  readonly container: string;
  readonly memoryMb: number;
  readonly cpus: number;
}

/** The sums of a site's container limits, and its largest consumers of each (largest first, then by name). */
export interface SiteLimits {
  readonly memoryMb: number;
  readonly cpus: number;
  readonly topMemory: readonly Consumer[];
  readonly topCpu: readonly Consumer[];
}

export function siteLimits(services: readonly ServiceModel[], top = TOP_CONSUMERS): SiteLimits {
  const all = services
    .flatMap((s) => s.containers)
    .map((c) => ({ container: c.name, memoryMb: c.memoryMb, cpus: c.cpus }));
  const by = (k: "memoryMb" | "cpus") =>
    [...all].sort((a, b) => b[k] - a[k] || a.container.localeCompare(b.container)).slice(0, top);
  return {
    memoryMb: all.reduce((n, c) => n + c.memoryMb, 0),
    // Summed in hundredths: 0.1 + 0.2 is not 0.3 in floating point.
    cpus: all.reduce((n, c) => n + Math.round(c.cpus * 100), 0) / 100,
    topMemory: by("memoryMb"),
    topCpu: by("cpus"),
  };
}

/** `ok` fits; `warn` passes the host; `fail` passes it by more than the overcommit factor; `unknown`: no size. */
export type CapacityLevel = "ok" | "warn" | "fail" | "unknown";

export interface Capacity {
  readonly limits: SiteLimits;
  readonly host?: HostSize;
  /** Limits over host, memory and CPU; undefined without a host size. */
  readonly memoryRatio?: number;
  readonly cpuRatio?: number;
  readonly memory: CapacityLevel;
  readonly cpu: CapacityLevel;
}

const level = (ratio: number, factor: number): CapacityLevel =>
  ratio > factor ? "fail" : ratio > 1 ? "warn" : "ok";

/** Limits over host (ratios) and what the check makes of them. */
export interface Levels {
  readonly memoryRatio: number;
  readonly cpuRatio: number;
  readonly memory: CapacityLevel;
  readonly cpu: CapacityLevel;
}

/** Where `limits` sit on `host`: the one comparison the check and the cheapest fit (model/cost.ts) make. */
export function levels(
  limits: Pick<SiteLimits, "memoryMb" | "cpus">,
  host: Pick<HostSize, "memoryMb" | "cpus">,
): Levels {
  const memoryRatio = limits.memoryMb / host.memoryMb;
  const cpuRatio = limits.cpus / host.cpus;
  return {
    memoryRatio,
    cpuRatio,
    memory: level(memoryRatio, MEMORY_OVERCOMMIT),
    cpu: level(cpuRatio, CPU_OVERCOMMIT),
  };
}

export function capacity(site: {
  readonly host: HostConfig;
  readonly services: readonly ServiceModel[];
}): Capacity {
  const limits = siteLimits(site.services);
  const host = hostSize(site.host);
  if (!host) return { limits, memory: "unknown", cpu: "unknown" };
  return { limits, host, ...levels(limits, host) };
}

const HOST = (...rest: PropertyKey[]) => joinPath([SITE_KEY, "host", ...rest]);
const x = (ratio: number) => `${ratio.toFixed(2)}x`;
const cpus = (n: number) => `${Number(n.toFixed(2))}`;

/** `nextcloud 3072 MiB, ...`: the containers to look at first, for memory or CPU. */
function largest(c: Capacity, memory: boolean, cpu: boolean): string {
  const list = (top: readonly Consumer[], unit: (c: Consumer) => string) =>
    top.map((t) => `${t.container} ${unit(t)}`).join(", ");
  return [
    memory ? `largest memory limits: ${list(c.limits.topMemory, (t) => `${t.memoryMb} MiB`)}` : "",
    cpu ? `largest CPU limits: ${list(c.limits.topCpu, (t) => cpus(t.cpus))}` : "",
  ]
    .filter(Boolean)
    .join("; ");
}

function sums(c: Capacity, h: HostSize): string {
  return (
    `memory limits ${c.limits.memoryMb} MiB on ${h.memoryMb} MiB (${x(c.memoryRatio!)}), ` +
    `CPU limits ${cpus(c.limits.cpus)} on ${cpus(h.cpus)} CPUs (${x(c.cpuRatio!)}) of the host (${h.from})`
  );
}

/**
 * The warning `npm run check` prints for a site whose limits pass its host but within the factors, or whose host
 * has no size; undefined when they fit (or fail: that is an issue, capacityIssue).
 */
export function capacityWarning(file: string, c: Capacity): string | undefined {
  if (!c.host) {
    return (
      `${file}: \`${HOST("memory")}\` and \`${HOST("cpus")}\` are not set: the capacity of this site is not ` +
      `checked (its limits: ${c.limits.memoryMb} MiB, ${cpus(c.limits.cpus)} CPUs); declare the host's size from ` +
      "the provider's bill, such as `memory: 8g` and `cpus: 4`"
    );
  }
  if (c.memory === "fail" || c.cpu === "fail") return undefined;
  if (c.memory === "ok" && c.cpu === "ok") return undefined;
  const [memory, cpu] = [c.memory === "warn", c.cpu === "warn"];
  return (
    `${file}: \`${HOST()}\`: the limits add up to more ${list([memory ? "memory" : "", cpu ? "CPU" : ""].filter(Boolean))} ` +
    `than the host has: ${sums(c, c.host)}; refused past ${MEMORY_OVERCOMMIT}x memory or ${CPU_OVERCOMMIT}x CPU; ` +
    largest(c, memory, cpu)
  );
}

const list = (words: readonly string[]) => words.join(" and ");

/** The problem that refuses a site whose limits pass its host by more than an overcommit factor; else undefined. */
export function capacityIssue(file: string, c: Capacity): ConfigIssue | undefined {
  if (!c.host || (c.memory !== "fail" && c.cpu !== "fail")) return undefined;
  const [memory, cpu] = [c.memory === "fail", c.cpu === "fail"];
  const over = list(
    [
      memory ? `memory past ${MEMORY_OVERCOMMIT}x (MEMORY_OVERCOMMIT)` : "",
      cpu ? `CPU past ${CPU_OVERCOMMIT}x (CPU_OVERCOMMIT)` : "",
    ].filter(Boolean),
  );
  return {
    file,
    path: HOST(),
    message:
      `the containers' limits overcommit the host: ${sums(c, c.host)}, ${over} of model/capacity.ts; expected ` +
      `a larger host, a service moved to another site (\`npm run move\`), or lower \`resources\` on the ` +
      largest(c, memory, cpu),
  };
}
