import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { SITE_KEY } from "../config/schema";
import { fileSource, textSource } from "../config/source";
import { loadEstate, loadProjectSite, projectEstate } from "../model/estate";
import { loadSite } from "../model/site";
import {
  formatReport,
  heldNote,
  observations,
  parseVector,
  queryPath,
  resourceSettings,
  rightsize,
  rightsizeQueries,
  settable,
  settingPath,
  suggestCpus,
  suggestMemoryMb,
  unmet,
  windowSeconds,
  type Measure,
  type RightsizeReport,
} from "../scripts/rightsizePlan";
import { withResources, withoutResources } from "../scripts/stackFile";
import { BAD_DATA, LADY_ANSWERS } from "./fixtures/prometheus";

/** `npm run rightsize`'s decisions without Prometheus: queries, answers, the rule, the table, what --write writes. */

const ROOT = path.resolve(__dirname, "..");
const MIB = 2 ** 20;
const LADY_FILE = path.join(ROOT, "Pulumi.lady.yaml");
const ladyText = fs.readFileSync(LADY_FILE, "utf8");
const lady = loadProjectSite(ROOT, "lady");
const queries = rightsizeQueries("lady", "10m", 5);
const measures: Measure[] = ["memoryPeak", "memoryP95", "cpuPeak", "cpuP95"];
const answered = () =>
  observations(
    Object.fromEntries(measures.map((m) => [m, parseVector(LADY_ANSWERS[m], queries[m])])) as Record<
      Measure,
      Map<string, number>
    >,
  );
const report = () => rightsize(lady, answered(), "10m");

describe("the window", () => {
  test.each([
    ["10m", 600],
    ["2m", 120],
    ["6h", 21600],
    ["7d", 604800],
    ["2w", 1209600],
    ["1h30m", 5400],
  ])("`%s` is %d s", (w, s) => expect(windowSeconds(w)).toBe(s));

  test.each(["7x", "1m", "90s", "30m1h", "", "10 m", "-5m", "1.5h", "7D"])("`%s` is refused", (w) => {
    expect(() => windowSeconds(w)).toThrow(
      `--window \`${w}\`: expected a duration of at least 2 minutes such as \`10m\`, \`6h\` or \`7d\``,
    );
  });
});

describe("the queries", () => {
  test("select lady's containers in cAdvisor's series by the scrape's labels, the highest incarnation of each name", () => {
    const sel = 'site="lady",service="cadvisor",name!=""';
    const cpu = `rate(container_cpu_usage_seconds_total{${sel}}[120s])[10m:5s]`;
    expect(queries).toEqual({
      memoryPeak: `max by (name) (max_over_time(container_memory_working_set_bytes{${sel}}[10m]))`,
      memoryP95: `max by (name) (quantile_over_time(0.95, container_memory_working_set_bytes{${sel}}[10m]))`,
      cpuPeak: `max by (name) (max_over_time(${cpu}))`,
      cpuP95: `max by (name) (quantile_over_time(0.95, ${cpu}))`,
      up: 'up{site="lady",service="cadvisor"}',
      held: 'time() - min by (site) (min_over_time(timestamp(up{site="lady",service="cadvisor"})[10m:5s]))',
    });
  });

  test.each([
    [undefined, "7d", undefined],
    [604800, "7d", undefined],
    // Within two scrapes of the window: all of it.
    [604790, "7d", undefined],
    [
      259200,
      "7d",
      "note: Prometheus holds the last 3.0 days of the 7d asked for (its retention, or the site's cAdvisor scraped since then only): the peaks and p95s are of those",
    ],
    [
      21600,
      "2w",
      "note: Prometheus holds the last 6.0 hours of the 2w asked for (its retention, or the site's cAdvisor scraped since then only): the peaks and p95s are of those",
    ],
    [
      370,
      "10m",
      "note: Prometheus holds the last 6 minutes of the 10m asked for (its retention, or the site's cAdvisor scraped since then only): the peaks and p95s are of those",
    ],
  ])("Prometheus holding %s s of %s: %s", (held, window, note) => {
    expect(heldNote(held, window, 5)).toBe(note);
  });

  test("the CPU rate spans 4 scrapes when they are slower than 30 s", () => {
    expect(rightsizeQueries("lady", "7d", 60).cpuPeak).toContain("[240s])[7d:60s]");
  });

  test("URL-encoded whole: nothing a shell's single quotes or a URL would take apart, and it decodes back", () => {
    const p = queryPath(queries.cpuP95);
    expect(p.startsWith("/api/v1/query?query=")).toBe(true);
    const encoded = p.slice("/api/v1/query?query=".length);
    expect(encoded).toMatch(/^[A-Za-z0-9%._~-]+$/);
    expect(decodeURIComponent(encoded)).toBe(queries.cpuP95);
    expect(queryPath("a'(b)!*")).toBe("/api/v1/query?query=a%27%28b%29%21%2A");
  });
});

describe("Prometheus' answers", () => {
  test("a vector by container name; NaN (no p95 of one sample) is no value", () => {
    expect(parseVector(LADY_ANSWERS.memoryP95, queries.memoryP95)).toEqual(
      new Map([
        ["nextcloud", 700 * MIB],
        ["nextcloud-db", 150 * MIB],
        ["cadvisor", 150 * MIB],
        ["unifi", 1000 * MIB],
        ["qcloud-backup", 30 * MIB],
      ]),
    );
    expect(parseVector(LADY_ANSWERS.up, queries.up, "site")).toEqual(new Map([["lady", 1]]));
  });

  test.each([
    [
      BAD_DATA,
      'Prometheus refused `q`: bad_data: invalid parameter "query": 1:5: parse error: unexpected "}"',
    ],
    ["<html>502 Bad Gateway</html>", "Prometheus answered `q` with no JSON: <html>502 Bad Gateway</html>"],
    [
      JSON.stringify({ status: "success", data: { resultType: "matrix", result: [] } }),
      "Prometheus answered `q` with a matrix result: expected a vector",
    ],
  ])("refuses anything but a vector, with Prometheus' own words: %s", (json, message) => {
    expect(() => parseVector(json, "q")).toThrow(message);
  });

  test("joined by name: a measure only with both its peak and its p95", () => {
    const o = answered();
    expect([...o.keys()]).toEqual([
      "cadvisor",
      "nextcloud",
      "nextcloud-db",
      "qcloud-backup",
      "uisp-netflow",
      "unifi",
    ]);
    expect(o.get("nextcloud")).toEqual({
      memory: { peak: 900 * MIB, p95: 700 * MIB },
      cpu: { peak: 0.8, p95: 0.3 },
    });
    expect(o.get("uisp-netflow")).toEqual({ cpu: { peak: 0.01, p95: 0.004 } });
    expect(o.get("qcloud-backup")).toEqual({ memory: { peak: 40 * MIB, p95: 30 * MIB } });
  });

  test("the CLI's `up` vector beside the measures (keyed by site) is no container", () => {
    const vectors = Object.fromEntries(
      [...measures, "up" as const].map((m) => [
        m,
        parseVector(LADY_ANSWERS[m], queries[m], m === "up" ? "site" : "name"),
      ]),
    ) as Record<Measure | "up", Map<string, number>>;
    expect([...observations(vectors).keys()]).toEqual([...answered().keys()]);
  });
});

describe("the rule", () => {
  test.each([
    [0, 32],
    [1 * MIB, 32],
    [(32 * MIB) / 1.3, 32],
    [(32 * MIB) / 1.3 + 1, 64],
    [100 * MIB, 160],
    [900 * MIB, 1184],
    [(256 * MIB) / 1.3, 256],
    [3000 * MIB, 3904],
  ])("memory: peak %d bytes x 1.3, up to 32 MiB steps, at least 32: %d MiB", (peak, mb) => {
    expect(suggestMemoryMb(peak)).toBe(mb);
  });

  test.each([
    [0, 0, 0.05],
    [0.004, 0.01, 0.05],
    [0.1, 0.12, 0.15],
    [0.1, 0.4, 0.4],
    [0.3, 0.8, 0.8],
    [0.66, 0.9, 1],
    [0.2, 0.25, 0.3],
    [1.01, 1.2, 1.55],
  ])("CPU: p95 %d x 1.5, never under the peak %d, up to 0.05: %d", (p95, peak, cpus) => {
    expect(suggestCpus({ peak, p95 })).toBe(cpus);
  });
});

describe("lady's report", () => {
  test("every container of the model, in its order; suggestions only from data", () => {
    const r = report();
    expect(r.rows.map((x) => x.container)).toEqual(
      lady.services.flatMap((s) => s.containers.map((c) => c.name)),
    );
    const row = (name: string) => r.rows.find((x) => x.container === name)!;
    expect(row("nextcloud")).toEqual({
      service: "nextcloud",
      key: "main",
      container: "nextcloud",
      declared: { memoryMb: 3072, cpus: 2 },
      memory: { peak: 900 * MIB, p95: 700 * MIB },
      cpu: { peak: 0.8, p95: 0.3 },
      suggested: { memoryMb: 1184, cpus: 0.8 },
    });
    expect(row("uisp-netflow").suggested).toEqual({ cpus: 0.05 });
    expect(row("uisp").suggested).toEqual({});
    expect(row("uisp").memory).toBeUndefined();
    expect(r.unknown).toEqual([{ container: "qcloud-backup", memory: { peak: 40 * MIB, p95: 30 * MIB } }]);
  });

  test("the table: aligned, no data said so; the totals; who has no samples; what Prometheus has beyond the model", () => {
    const text = formatReport(report());
    const lines = text.split("\n");
    const tableLines = lines.filter((l) => l.startsWith("|"));
    expect(tableLines).toHaveLength(2 + lady.services.flatMap((s) => s.containers).length);
    expect(new Set(tableLines.map((l) => l.length)).size).toBe(1);
    const cells = (name: string) =>
      tableLines
        .find((l) => l.split("|")[2]!.trim() === name)!
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim());
    expect(cells("nextcloud")).toEqual([
      "nextcloud",
      "nextcloud",
      "3072m",
      "900.0m",
      "700.0m",
      "1184m",
      "2",
      "0.800",
      "0.300",
      "0.8",
    ]);
    expect(cells("uisp")).toEqual(["uisp", "uisp", "2048m", "no data", "", "", "1.5", "no data", "", ""]);
    expect(cells("uisp-netflow")).toEqual([
      "uisp",
      "uisp-netflow",
      "256m",
      "no data",
      "",
      "",
      "0.5",
      "0.010",
      "0.004",
      "0.05",
    ]);
    // With data: nextcloud 3072 -> 1184, nextcloud-db 1024 -> 256, cadvisor 256 -> 256, unifi 1536 -> 1504.
    expect(lines).toContain(
      "total memory: declared 15936m, suggested 13248m: rightsizing frees 2688m (27 without data counted at their declared limits)",
    );
    expect(lines).toContain("total CPUs: declared 17.65, suggested 15.2");
    expect(lines.find((l) => l.startsWith("no samples in the last 10m"))).toMatch(
      /: backup-repository, cadvisor-docker-api, /,
    );
    expect(lines).toContain(
      "in Prometheus for lady but not in its model (nothing suggested): qcloud-backup (peak 40.0m)",
    );
  });

  test("a site that needs more than it declares says so", () => {
    const r: RightsizeReport = {
      site: "s",
      window: "1h",
      unknown: [],
      rows: [
        {
          service: "a",
          key: "main",
          container: "a",
          declared: { memoryMb: 64, cpus: 0.1 },
          memory: { peak: 100 * MIB, p95: 90 * MIB },
          cpu: { peak: 0.2, p95: 0.1 },
          suggested: { memoryMb: 160, cpus: 0.2 },
        },
      ],
    };
    expect(formatReport(r).split("\n")).toEqual([
      "s: 1 container(s) over the last 1h (memory in MiB; peak and p95 of the working set and of the CPU rate)",
      "",
      "| service | container | memory |   peak |   p95 | suggested | CPUs |  peak |   p95 | suggested |",
      "| ------- | --------- | -----: | -----: | ----: | --------: | ---: | ----: | ----: | --------: |",
      "| a       | a         |    64m | 100.0m | 90.0m |      160m |  0.1 | 0.200 | 0.100 |       0.2 |",
      "",
      "total memory: declared 64m, suggested 160m: rightsizing needs 96m more",
      "total CPUs: declared 0.1, suggested 0.2",
    ]);
  });
});

describe("--write", () => {
  const estate = projectEstate(ROOT);
  const defaults = loadSite(textSource(LADY_FILE, withoutResources(ladyText)), estate);
  const services = (text: string) =>
    (YAML.parse(text) as { config: Record<string, { services: Record<string, unknown> }> }).config[SITE_KEY]!
      .services;

  test("a container the program places (no override in the schema) is left out, every other one is written", () => {
    // Every container of lady seen at 100 MiB and 0.1 CPUs: a suggestion for each.
    const seen = { peak: 100 * MIB, p95: 100 * MIB };
    const all = new Map(
      lady.services.flatMap((s) =>
        s.containers.map((c) => [c.name, { memory: seen, cpu: { peak: 0.1, p95: 0.1 } }] as const),
      ),
    );
    const wanted = resourceSettings(rightsize(lady, all, "10m").rows, defaults);
    const others = ["master", "madam"].map((s) => fileSource(path.join(ROOT, `Pulumi.${s}.yaml`)));
    const split = settable(wanted, LADY_FILE, ladyText, others);
    expect(split.placed).toEqual([
      "backup-repository",
      "tailscale-egress-backup",
      "tailscale-egress-promtail",
    ]);
    expect(split.settings).toEqual(wanted.filter((w) => !split.placed.includes(w.container)));
    expect(new Set(split.settings.map((w) => w.container)).size).toBe(
      lady.services.flatMap((s) => s.containers).length - 3,
    );
    // What is left loads within the estate and gives every suggestion.
    const text = withResources(ladyText, split.settings);
    const rows = rightsize(lady, all, "10m").rows.filter((x) => !split.placed.includes(x.container));
    const written = textSource(LADY_FILE, text);
    expect(unmet(rows, loadSite(written, loadEstate([...others, written]), { capacity: false }))).toEqual([]);
  });

  test("a value the schema refuses is thrown, not taken for a placed container; so is a broken file", () => {
    const others = ["master", "madam"].map((s) => fileSource(path.join(ROOT, `Pulumi.${s}.yaml`)));
    const tooMany = {
      container: "nextcloud",
      service: "nextcloud",
      key: "main",
      field: "cpus",
      value: 65,
      from: "2",
      to: "65",
    } as const;
    expect(() => settable([tooMany], LADY_FILE, ladyText, others)).toThrow(
      "`qui3tly-cloud:site.services.nextcloud.resources.cpus`: expected at most 64 CPUs",
    );
    const broken = ladyText.replace("      port: 22\n", "      port: 22\n      bogus: 1\n");
    expect(() => settable([], LADY_FILE, broken, others)).toThrow("`qui3tly-cloud:site.host`");
  });

  test("only what differs: an override for each, nothing where the suggestion is the declared limit", () => {
    const r = report();
    const settings = resourceSettings(r.rows, defaults);
    expect(settings).toEqual([
      {
        container: "nextcloud",
        service: "nextcloud",
        key: "main",
        field: "memory",
        value: "1184m",
        from: "3g",
        to: "1184m",
      },
      {
        container: "nextcloud",
        service: "nextcloud",
        key: "main",
        field: "cpus",
        value: 0.8,
        from: "2",
        to: "0.8",
      },
      {
        container: "nextcloud-db",
        service: "nextcloud",
        key: "db",
        field: "memory",
        value: "256m",
        from: "1g",
        to: "256m",
      },
      {
        container: "nextcloud-db",
        service: "nextcloud",
        key: "db",
        field: "cpus",
        value: 0.2,
        from: "1",
        to: "0.2",
      },
      {
        container: "uisp-netflow",
        service: "uisp",
        key: "netflow",
        field: "cpus",
        value: 0.05,
        from: "0.5",
        to: "0.05",
      },
      {
        container: "unifi",
        service: "unifi",
        key: "main",
        field: "memory",
        value: "1504m",
        from: "1536m",
        to: "1504m",
      },
    ]);
    expect(settings.map(settingPath)).toContain("services.nextcloud.containers.db.resources.memory");

    const text = withResources(ladyText, settings);
    // Comments and the rest of the file as they were; `unifi: true` became its overrides.
    expect(text.split("\n").slice(0, 20)).toEqual(ladyText.split("\n").slice(0, 20));
    expect(services(text)).toEqual({
      nextcloud: {
        resources: { memory: "1184m", cpus: 0.8 },
        containers: { db: { resources: { memory: "256m", cpus: 0.2 } } },
      },
      unifi: { resources: { memory: "1504m" } },
      uisp: { containers: { netflow: { resources: { cpus: 0.05 } } } },
    });
    // What `npm run check` loads, within the estate: every container at its suggestion, else as declared.
    const after = loadEstate(
      ["master", "madam", "lady"].map((s) =>
        s === "lady" ? textSource(LADY_FILE, text) : fileSource(path.join(ROOT, `Pulumi.${s}.yaml`)),
      ),
    );
    expect(unmet(r.rows, loadSite(textSource(LADY_FILE, text), after))).toEqual([]);
    expect(unmet(r.rows, lady)).toContain("nextcloud: expected 1184m and 0.8 CPUs, got 3072m and 2");
  });

  test("a suggestion equal to the catalog's default removes the override instead; emptied maps go", () => {
    const r = report();
    const rows = r.rows.map((x) =>
      x.container === "nextcloud"
        ? { ...x, suggested: { memoryMb: 2048, cpus: 2 } }
        : { ...x, suggested: {} },
    );
    const settings = resourceSettings(rows, defaults);
    expect(settings).toEqual([
      {
        container: "nextcloud",
        service: "nextcloud",
        key: "main",
        field: "memory",
        from: "3g",
        to: "2g (the catalog's default)",
      },
    ]);
    const text = withResources(ladyText, settings);
    expect(services(text)).toEqual({ nextcloud: true, unifi: true, uisp: true });
    expect(unmet(rows, loadSite(textSource(LADY_FILE, text), estate))).toEqual([]);
  });

  test("a container override removed leaves its service's other overrides", () => {
    const text = withResources(
      withResources(ladyText, [{ service: "uisp", key: "postgres", field: "memory", value: "384m" }]),
      [{ service: "uisp", key: "postgres", field: "memory" }],
    );
    expect(services(text)).toEqual({ nextcloud: { resources: { memory: "3g" } }, unifi: true, uisp: true });
  });

  test("the catalog's limits: the file without any `resources`", () => {
    expect(services(withoutResources(ladyText))).toEqual({ nextcloud: {}, unifi: true, uisp: true });
    expect(defaults.services.find((s) => s.name === "nextcloud")!.containers[0]!.memoryMb).toBe(2048);
  });
});
