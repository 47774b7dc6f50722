import { backupCommandName } from "../components/backup/backups";
import { backupPlan } from "../render/backup";
import type { SiteModel } from "../render/siteModel";
import { chooseSnapshot, type Snapshot } from "./snapshots";

/** What `npm run dr` restores: each service's newest snapshot, databases first, or why it cannot. */
export interface RecoveryPlan {
  /** Services with something kept, in restore order: those holding a database first, then by name. */
  readonly services: readonly string[];
  readonly snapshots: Readonly<Record<string, Snapshot>>;
  /** Services that hold a database dump (loaded once their engine runs). */
  readonly databases: readonly string[];
}

/**
 * The newest snapshot of every service the site backs up, from its repository's listing. Throws with every service
 * that has none (a recovery without one would bring that service back empty), changing nothing.
 */
export function recoveryPlan(site: SiteModel, listed: readonly Snapshot[]): RecoveryPlan {
  const { lines, services } = backupPlan(site);
  const databases = [...new Set(lines.filter((l) => l.method === "postgres").map((l) => l.service))];
  const missing: string[] = [];
  const snapshots: Record<string, Snapshot> = {};
  for (const service of services) {
    try {
      snapshots[service] = chooseSnapshot(listed, site.name, service, {});
    } catch {
      missing.push(service);
    }
  }
  if (missing.length > 0) {
    throw new Error(
      `no snapshot of ${missing.map((s) => `\`${s}\``).join(", ")} of site \`${site.name}\` in its repository on \`${site.backup.target}\`: ` +
        `nothing to bring ${missing.length === 1 ? "it" : "them"} back from (a site recovered without ${missing.length === 1 ? "it" : "them"} would start empty)`,
    );
  }
  const order = [...databases.sort(), ...services.filter((s) => !databases.includes(s))];
  return { services: order, snapshots, databases: databases.sort() };
}

/** What a server holds, as `npm run dr`'s blank check reads it: `docker ps -aq` and `docker volume ls -q` names. */
export interface ServerContents {
  readonly containers: readonly string[];
  readonly volumes: readonly string[];
}

/** Why a server is not blank, or undefined when it is (no container, no volume). */
export function notBlank(c: ServerContents): string | undefined {
  const list = (what: string, names: readonly string[]) =>
    names.length === 0
      ? []
      : [
          `${names.length} ${what}${names.length === 1 ? "" : "s"} (${names.slice(0, 5).join(", ")}${names.length > 5 ? ", ..." : ""})`,
        ];
  const held = [...list("container", c.containers), ...list("volume", c.volumes)];
  return held.length === 0 ? undefined : held.join(" and ");
}

/** One timed step of a recovery. */
export interface Phase {
  readonly name: string;
  readonly seconds: number;
  /** Steps inside it that ran at the same time, by name (each service's fetch). */
  readonly parts?: Readonly<Record<string, number>>;
}

/** The report `npm run dr` prints: each phase and its parts, then the total from the first phase's start. */
export function formatReport(site: string, phases: readonly Phase[], total: number): string {
  const row = (name: string, s: number, indent = "") =>
    `  ${`${indent}${name}`.padEnd(44)} ${s.toFixed(1).padStart(7)} s`;
  return [
    `dr: site ${site} recovered`,
    ...phases.flatMap((p) => [
      row(p.name, p.seconds),
      ...Object.entries(p.parts ?? {}).map(([n, s]) => row(n, s, "  ")),
    ]),
    row("total", total),
  ].join("\n");
}

/** The parts of `pulumi stack export` a reconcile changes. */
export interface StateExport {
  readonly deployment: {
    resources?: StateResource[];
    pending_operations?: { resource: { urn: string }; [k: string]: unknown }[];
    [k: string]: unknown;
  };
  readonly [k: string]: unknown;
}
interface StateResource {
  readonly urn: string;
  readonly type: string;
  dependencies?: string[];
  propertyDependencies?: Record<string, string[]>;
  deletedWith?: string;
  [k: string]: unknown;
}

/**
 * Removes from a stack's exported state what a lost server held: every Docker resource (containers, volumes,
 * networks, images; not the provider) and the backup job's install, a command whose work was on its disk; and every
 * reference to them, so the state stays whole. Returns how many resources went. Secrets stay as the export has them
 * (encrypted).
 */
export function forgetHost(state: StateExport, site: string): number {
  const resources = state.deployment.resources ?? [];
  const gone = new Set(
    resources
      .filter(
        (r) =>
          r.type.startsWith("docker:index/") ||
          (r.type === "command:remote:Command" && r.urn.endsWith(`::${backupCommandName(site)}`)),
      )
      .map((r) => r.urn),
  );
  const kept = (urns: readonly string[] | undefined) => urns?.filter((u) => !gone.has(u));
  state.deployment.resources = resources
    .filter((r) => !gone.has(r.urn))
    .map((r) => {
      const next: StateResource = { ...r };
      if (r.dependencies) next.dependencies = kept(r.dependencies)!;
      if (r.propertyDependencies) {
        next.propertyDependencies = Object.fromEntries(
          Object.entries(r.propertyDependencies).map(([k, v]) => [k, kept(v)!]),
        );
      }
      if (r.deletedWith && gone.has(r.deletedWith)) delete next.deletedWith;
      return next;
    });
  if (state.deployment.pending_operations) {
    state.deployment.pending_operations = state.deployment.pending_operations.filter(
      (o) => !gone.has(o.resource.urn),
    );
  }
  return gone.size;
}
