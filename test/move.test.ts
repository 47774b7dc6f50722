import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { ConfigError } from "../config/errors";
import { SITE_KEY } from "../config/schema";
import { textSource } from "../config/source";
import { loadEstate } from "../model/estate";
import { loadSite } from "../model/site";
import { planMove, type StackText } from "../scripts/movePlan";

/** `npm run move`'s plan on the committed estate: the edited stack files, and every refusal before anything runs. */

const ROOT = path.resolve(__dirname, "..");
const committed = (): Record<string, StackText> =>
  Object.fromEntries(
    ["master", "lady", "madam"].map((s) => {
      const file = path.join(ROOT, `Pulumi.${s}.yaml`);
      return [s, { file, text: fs.readFileSync(file, "utf8") }];
    }),
  );
/** The committed estate with madam on a cx23 (4 GB, 2 vCPUs): UISP's limits overcommit it past the capacity check. */
const onCx23 = (): Record<string, StackText> => {
  const stacks = committed();
  return {
    ...stacks,
    madam: { ...stacks.madam!, text: stacks.madam!.text.replace("serverType: cx33", "serverType: cx23") },
  };
};
const services = (text: string) =>
  (YAML.parse(text) as { config: Record<string, { services?: Record<string, unknown> }> }).config[SITE_KEY]!
    .services ?? {};
function refusal(stacks: Record<string, StackText>, service: string, from: string, to: string): string {
  try {
    planMove(stacks, service, from, to);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error("accepted");
}
/** madam's stack file with its `services` set to these. */
const madamWith = (svcs: Record<string, unknown>): Record<string, StackText> => {
  const stacks = committed();
  const doc = YAML.parseDocument(stacks.madam!.text);
  doc.setIn(["config", SITE_KEY, "services"], svcs);
  return { ...stacks, madam: { file: stacks.madam!.file, text: String(doc) } };
};

/** `site` loaded within the estate of `stacks`, as `pulumi up` loads it (the capacity check included). */
function loadEstateSite(stacks: Record<string, StackText>, site: string) {
  const source = (t: StackText) => textSource(t.file, t.text);
  return loadSite(source(stacks[site]!), loadEstate(Object.values(stacks).map(source)));
}

describe("npm run move: the plan", () => {
  const plan = planMove(committed(), "uisp", "lady", "madam");

  test("uisp leaves lady's file and lands in madam's; the rest of each file, comments too, is as it was", () => {
    expect(services(plan.texts.lady!)).toEqual({ nextcloud: { resources: { memory: "3g" } }, unifi: true });
    expect(services(plan.texts.madam!)).toEqual({ uisp: true });
    expect(plan.texts.madam).toContain("# Another location than master's and lady's");
    expect(plan.models.to.services.map((s) => s.name)).toContain("uisp");
    expect(plan.models.from.services.map((s) => s.name)).not.toContain("uisp");
  });

  test("its containers in start order, its volumes, and the site that keeps lady's repository", () => {
    expect(plan.containers[0]).toBe("uisp-postgres");
    expect(plan.containers).toContain("uisp-nginx");
    expect(plan.containers.indexOf("uisp")).toBeLessThan(plan.containers.indexOf("uisp-nginx"));
    expect([plan.backedUp, plan.keeper?.name]).toEqual([true, "master"]);
    // Ahead of the stop: the database (its dump is loaded into it running) and what keeps no data; not UISP itself
    // (its backups are placed into its volume) nor netflow, which writes to the database.
    expect([...plan.early].sort()).toEqual(["uisp-fluentd", "uisp-postgres", "uisp-rabbitmq", "uisp-siridb"]);
    expect(plan.volumes).toEqual(expect.arrayContaining(["uisp-data", "uisp-postgres-data"]));
  });

  test("the edited files keep their long lines as they were (no reflow to a diff of their own)", () => {
    const long = (text: string) => text.split("\n").filter((l) => l.length > 80);
    expect(long(plan.texts.madam!)).toEqual(long(committed().madam!.text));
  });

  test("a source past its host's capacity may still move a service off (the move is its relief)", () => {
    const stacks = committed();
    const doc = YAML.parseDocument(stacks.lady!.text);
    doc.setIn(["config", SITE_KEY, "host", "memory"], "12g");
    doc.setIn(["config", SITE_KEY, "host", "cpus"], 16);
    const overcommitted = { ...stacks, lady: { file: stacks.lady!.file, text: String(doc) } };
    // As it stands, lady is refused: 15936 MiB of limits on 12 GiB.
    expect(() => loadEstateSite(overcommitted, "lady")).toThrow(
      "Pulumi.lady.yaml: `qui3tly-cloud:site.host`: the containers' limits overcommit the host: memory limits 15936 MiB on 12288 MiB (1.30x)",
    );
    expect(services(planMove(overcommitted, "uisp", "lady", "madam").texts.lady!)).toEqual({
      nextcloud: { resources: { memory: "3g" } },
      unifi: true,
    });
  });

  test("a service's overrides go with it (nextcloud's memory)", () => {
    const p = planMove(committed(), "nextcloud", "lady", "madam");
    expect(services(p.texts.madam!)).toEqual({ nextcloud: { resources: { memory: "3g" } } });
    // Ahead of the stop: its database, cache and office; not Nextcloud nor its cron, which mount its placed files.
    expect([...p.early].sort()).toEqual(["nextcloud-db", "nextcloud-office", "nextcloud-redis"]);
  });

  test.each([
    [
      "a site that is not in the estate",
      committed(),
      ["uisp", "lady", "nowhere"],
      "Pulumi.nowhere.yaml: `(file)`: --to: expected a site of the estate (master, lady, madam)",
    ],
    [
      "the same site",
      committed(),
      ["uisp", "lady", "lady"],
      "Pulumi.lady.yaml: `(file)`: --to: expected another site than --from",
    ],
    [
      "a service that does not run there",
      committed(),
      ["uisp", "madam", "lady"],
      "Pulumi.madam.yaml: `qui3tly-cloud:site.services.uisp`: expected a service that runs on `madam` (it runs: ",
    ],
    [
      "a service already on the target",
      // On a host name of its own there (else the estate refuses the two routes first).
      madamWith({ uisp: { routes: { web: { host: "uisp-madam.qui3tly.cloud" } } } }),
      ["uisp", "lady", "madam"],
      "Pulumi.madam.yaml: `qui3tly-cloud:site.services.uisp`: `uisp` already runs on `madam`: expected a site without it",
    ],
    [
      "a per-site agent",
      committed(),
      ["node-exporter", "lady", "madam"],
      "Pulumi.lady.yaml: `qui3tly-cloud:site.services.node-exporter`: `node-exporter` runs on every site (a per-site agent): there is nothing to move",
    ],
    [
      "a target without a service it needs (Traefik, for its route)",
      madamWith({ traefik: false }),
      ["uisp", "lady", "madam"],
      "Pulumi.madam.yaml: `qui3tly-cloud:site.services.traefik`: expected Traefik on a site with routes: do not set it to `false`",
    ],
    [
      "a target too small for it: madam on a cx23 (4 GB, 2 vCPUs)",
      onCx23(),
      ["uisp", "lady", "madam"],
      "Pulumi.madam.yaml: `qui3tly-cloud:site.host`: the containers' limits overcommit the host: memory limits 7040 MiB on 4096 MiB (1.72x), CPU limits 9.75 on 2 CPUs (4.88x) of the host (cx23), memory past 1.25x (MEMORY_OVERCOMMIT) and CPU past 4x (CPU_OVERCOMMIT) of model/capacity.ts; expected a larger host, a service moved to another site (`npm run move`), or lower `resources` on the largest memory limits: uisp 2048 MiB, ",
    ],
    [
      "a stack file that is not YAML",
      { ...committed(), madam: { file: committed().madam!.file, text: "config: [unclosed" } },
      ["uisp", "lady", "madam"],
      "`(file)`: expected a readable YAML file: ",
    ],
  ])("refused: %s", (_name, stacks, [svc, from, to], message) => {
    expect(refusal(stacks, svc!, from!, to!)).toContain(message);
  });
});
