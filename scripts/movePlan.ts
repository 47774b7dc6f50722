import * as path from "node:path";
import YAML from "yaml";
import { ROLE_SERVICES, isServiceName } from "../catalog";
import { ConfigError, joinPath } from "../config/errors";
import { SITE_KEY } from "../config/schema";
import { textSource } from "../config/source";
import { loadEstate } from "../model/estate";
import { loadSite } from "../model/site";
import { PLACED, backupPlan, startOrder } from "../render/backup";
import type { SiteModel } from "../render/siteModel";

/** A stack file of the estate: its path and text. */
export interface StackText {
  readonly file: string;
  readonly text: string;
}

/** What `npm run move` does, decided before anything is touched. */
export interface MovePlan {
  readonly service: string;
  readonly from: string;
  readonly to: string;
  /** The two stack files as they will be: the service gone from `from`, on `to` with its overrides. */
  readonly texts: Readonly<Record<string, string>>;
  /** The site models after the move (`from` without the service, `to` with it), within the new estate. */
  readonly models: { readonly from: SiteModel; readonly to: SiteModel };
  /** The service's containers on `from` now, in their start order. */
  readonly containers: readonly string[];
  /**
   * Its containers that depend on nothing and hold no data placed from the snapshot (its databases, which take their
   * dumps once they run; queues, caches): created on the target, healthy, before anything stops, so the downtime
   * waits only for what needs the data.
   */
  readonly early: readonly string[];
  /** Whether the backups carry any of its data (else there is nothing to carry). */
  readonly backedUp: boolean;
  /** The site that keeps `from`'s backup repository, where the final snapshot is read from. */
  readonly keeper?: SiteModel;
  /** The service's own volumes: `from` keeps them (retained) until they are pruned by hand. */
  readonly volumes: readonly string[];
}

const SERVICE = (svc: string) => joinPath([SITE_KEY, "services", svc]);
const sourceOf = (s: StackText) => textSource(s.file, s.text);

/**
 * Plans moving `service` from one site to another: every refusal (no such site or service, not running there,
 * already on the target, a per-site agent, and whatever the estate refuses once the files are edited: a port
 * clash, a service it needs missing, a role that may not run it) names the file and the field.
 */
export function planMove(
  stacks: Readonly<Record<string, StackText>>,
  service: string,
  from: string,
  to: string,
): MovePlan {
  const refuse: (file: string, field: string, message: string) => never = (file, field, message) => {
    throw new ConfigError([{ file, path: field, message }]);
  };
  for (const [flag, site] of [
    ["--from", from],
    ["--to", to],
  ] as const) {
    if (!stacks[site])
      refuse(
        `Pulumi.${site}.yaml`,
        "(file)",
        `${flag}: expected a site of the estate (${Object.keys(stacks).join(", ")})`,
      );
  }
  const src = stacks[from]!;
  const dst = stacks[to]!;
  const before = loadEstate(Object.values(stacks).map(sourceOf));
  // The capacity check holds only where the move adds load (the target, after): a move is how an overcommitted
  // site gets relief, so neither site's load before, nor the source's after, may refuse it.
  const fromModel = loadSite(sourceOf(src), before, { capacity: false });
  const toModel = loadSite(sourceOf(dst), before, { capacity: false });
  const file = (s: StackText) => path.basename(s.file);
  if (from === to) refuse(file(src), "(file)", "--to: expected another site than --from");
  if (!isServiceName(service)) refuse(file(src), SERVICE(service), "expected a service of the catalog");
  const running = fromModel.services.find((s) => s.name === service);
  if (!running)
    refuse(
      file(src),
      SERVICE(service),
      `expected a service that runs on \`${from}\` (it runs: ${fromModel.services.map((s) => s.name).join(", ")})`,
    );
  if (Object.values(ROLE_SERVICES).every((list) => list.includes(service)))
    refuse(
      file(src),
      SERVICE(service),
      `\`${service}\` runs on every site (a per-site agent): there is nothing to move`,
    );
  if (toModel.services.some((s) => s.name === service))
    refuse(
      file(dst),
      SERVICE(service),
      `\`${service}\` already runs on \`${to}\`: expected a site without it`,
    );

  // The source's setting goes with the service (its overrides); a role's own service is switched off there.
  const srcDoc = YAML.parseDocument(src.text);
  const dstDoc = YAML.parseDocument(dst.text);
  const key = ["config", SITE_KEY, "services", service];
  const setting: unknown = srcDoc.getIn(key) ?? true;
  if (ROLE_SERVICES[fromModel.role].includes(service)) srcDoc.setIn(key, false);
  else srcDoc.deleteIn(key);
  if (!ROLE_SERVICES[toModel.role].includes(service) || setting !== true) dstDoc.setIn(key, setting);
  else dstDoc.deleteIn(key);
  // No reflowing of long lines: the files are committed as they are written.
  const texts = { [from]: srcDoc.toString({ lineWidth: 0 }), [to]: dstDoc.toString({ lineWidth: 0 }) };
  const after = Object.entries(stacks).map(([site, s]) =>
    texts[site] === undefined ? s : { file: s.file, text: texts[site] },
  );
  const estate = loadEstate(after.map(sourceOf));
  const models = {
    from: loadSite(sourceOf(after.find((s) => s.file === src.file)!), estate, { capacity: false }),
    to: loadSite(sourceOf(after.find((s) => s.file === dst.file)!), estate),
  };
  const backedUp = backupPlan(fromModel).services.includes(service);
  if (backedUp && fromModel.backup.target === undefined)
    refuse(
      file(src),
      joinPath([SITE_KEY, "backup", "target"]),
      `\`${from}\` has no backup repository: the data would have no way to \`${to}\``,
    );
  const keeper = fromModel.backup.target;
  // Volumes a restore writes from files: whatever mounts one (its owner or a sharer) waits for the data.
  const placed = running.containers.flatMap((c) =>
    c.volumes.filter((v) => PLACED.has(v.backup.method)).map((v) => v.volume),
  );
  return {
    service,
    from,
    to,
    texts,
    models,
    containers: startOrder(running.containers),
    early: running.containers
      .filter((c) => c.dependsOn.length === 0 && !c.mounts.some((m) => placed.includes(m.volume)))
      .map((c) => c.name),
    backedUp,
    ...(keeper && stacks[keeper]
      ? { keeper: loadSite(sourceOf(stacks[keeper]), estate, { capacity: false }) }
      : {}),
    volumes: running.containers.flatMap((c) => c.ownedVolumes),
  };
}
