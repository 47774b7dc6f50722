/** restic snapshots as `restic snapshots --json` lists them, and which one a restore takes. */

export interface Snapshot {
  readonly id: string;
  readonly short_id: string;
  readonly time: string;
  readonly hostname: string;
  readonly tags?: readonly string[];
}

/** The service a snapshot holds (the job tags each `service=<name>`). */
export const serviceOf = (s: Snapshot): string | undefined =>
  s.tags?.find((t) => t.startsWith("service="))?.slice("service=".length);

/**
 * The snapshot of `service` to restore: the one named (an id or its prefix), else the newest taken before
 * `before`, else the newest. Throws a message that says why none fits, changing nothing.
 */
export function chooseSnapshot(
  all: readonly Snapshot[],
  site: string,
  service: string,
  pick: { readonly snapshot?: string; readonly before?: string },
): Snapshot {
  const mine = all.filter((s) => s.hostname === site);
  const ofService = mine
    .filter((s) => serviceOf(s) === service)
    .sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  if (pick.snapshot !== undefined) {
    const id = pick.snapshot;
    if (!/^[0-9a-f]{8,64}$/.test(id))
      throw new Error(`--snapshot \`${id}\`: expected a snapshot id (8-64 hex digits)`);
    const found = mine.filter((s) => s.id.startsWith(id));
    if (found.length === 0) throw new Error(`no snapshot \`${id}\` of site \`${site}\` in its repository`);
    if (found.length > 1)
      throw new Error(`--snapshot \`${id}\` names ${found.length} snapshots: give more digits`);
    const held = serviceOf(found[0]!);
    if (held !== service) {
      throw new Error(
        `snapshot \`${id}\` holds service \`${held ?? "(none)"}\`, not \`${service}\`: pick one of ${service}'s (${ofService.map((s) => s.short_id).join(", ") || "none"})`,
      );
    }
    return found[0]!;
  }
  if (ofService.length === 0)
    throw new Error(
      `no snapshot of \`${service}\` on site \`${site}\` yet: run \`qcloud-backup run ${service}\` there`,
    );
  if (pick.before !== undefined) {
    const t = Date.parse(pick.before);
    if (Number.isNaN(t))
      throw new Error(`--before \`${pick.before}\`: expected a time such as \`2026-11-30T03:00:00Z\``);
    const taken = ofService.filter((s) => Date.parse(s.time) < t);
    if (taken.length === 0) {
      throw new Error(
        `no snapshot of \`${service}\` before ${pick.before}: the oldest is ${ofService[0]!.short_id} (${ofService[0]!.time})`,
      );
    }
    return taken.at(-1)!;
  }
  return ofService.at(-1)!;
}
