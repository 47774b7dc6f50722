import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import YAML from "yaml";
import { SITE_KEY } from "../config/schema";
import { fileSource } from "../config/source";
import { projectEstate, stackFilesIn } from "../model/estate";
import { loadSite } from "../model/site";
import { SECRET_PATHS } from "../render/alertmanager";
import type { Estate } from "../render/estate";
import { DATASOURCES } from "../render/grafana";
import { MESH_PROXY, RULES_DIR } from "../render/prometheus";
import { RUNBOOKS_PATH, renderRuleTests, ruleFiles } from "../render/rules";
import { renderSiteFiles } from "../render/site";
import { servicesSite } from "./fixtures";

/**
 * The generated monitoring files, checked by the real tools (promtool, amtool from scripts/monitoring-tools.sh)
 * for the committed estate and for one with a third site added as a stack file only.
 */

const ROOT = path.resolve(__dirname, "..");
const TOOLS = "scripts/monitoring-tools.sh";

/** The tools' bin dir; `npm test` fetches them first (pretest). Missing tools fail every test, never skip. */
function toolsDir(): string {
  const r = spawnSync("bash", [path.join(ROOT, TOOLS), "--check"], { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`promtool/amtool are missing: run \`bash ${TOOLS}\` (npm test does). ${r.stderr.trim()}`);
  }
  return r.stdout.trim();
}

/** Runs a tool; fails the test with its output when it fails. */
function run(bin: string, args: string[], cwd: string): string {
  const r = spawnSync(bin, args, { cwd, encoding: "utf8" });
  if (r.status !== 0)
    throw new Error(`${path.basename(bin)} ${args.join(" ")}: exit ${r.status}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "monitoring-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/**
 * The committed stacks, with `madam` replaced by a services site made from the fixture, as an operator would add it:
 * on an existing server, running UniFi under a host name of its own (lady's UniFi has `unifi.qui3tly.cloud`).
 */
function threeSiteDir(): string {
  const dir = fs.mkdtempSync(path.join(tmp, "estate3-"));
  for (const f of stackFilesIn(ROOT)) fs.copyFileSync(f, path.join(dir, path.basename(f)));
  const madam = servicesSite({
    host: { kind: "existing", address: "madam.qui3tly.cloud" },
    services: {
      unifi: { routes: { ui: { host: "unifi-madam.qui3tly.cloud" } } },
      // A secondary: its sync alerts come from the model (CrossSiteSyncMissing), and are tested here.
      pihole: { follows: "master" },
    },
    mesh: { ingressSubnet: "10.255.255.240/29" },
  });
  fs.writeFileSync(path.join(dir, "Pulumi.madam.yaml"), YAML.stringify({ config: madam }));
  // The control plane with every receiver set, its secrets stored encrypted as Pulumi writes them.
  const master = YAML.parse(fs.readFileSync(path.join(dir, "Pulumi.master.yaml"), "utf8"));
  master.config[SITE_KEY].monitoring = {
    retention: { time: "90d", size: "50GB" },
    runbookUrl: "https://git.qui3tly.cloud/ops/qui3tly-cloud/src/branch/main/docs/runbooks.md",
    receivers: {
      email: {
        smarthost: "smtp.qui3tly.cloud:587",
        from: "alerts@qui3tly.cloud",
        to: ["ops@qui3tly.cloud"],
        passwordSecret: "smtpPassword",
      },
      ntfy: { url: "https://ntfy.qui3tly.cloud/alerts", tokenSecret: "ntfyToken" },
      webhook: { url: "https://chat.qui3tly.cloud/hooks/alerts", bearerSecret: "chatToken" },
    },
  };
  for (const k of ["smtpPassword", "ntfyToken", "chatToken"])
    master.config[`qui3tly-cloud:${k}`] = { secure: "v1:c2VjcmV0" };
  fs.writeFileSync(path.join(dir, "Pulumi.master.yaml"), YAML.stringify(master));
  return dir;
}

interface Rendered {
  readonly estate: Estate;
  /** Every generated file of each site, by path. */
  readonly files: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Where the control plane's files are written. */
  readonly out: string;
}

function renderEstate(name: string, dir: string): Rendered {
  const estate = projectEstate(dir);
  const files = Object.fromEntries(
    estate.sites.map((s) => [
      s.name,
      renderSiteFiles(loadSite(fileSource(path.join(dir, `Pulumi.${s.name}.yaml`)), estate)),
    ]),
  );
  const out = path.join(tmp, name);
  for (const [rel, content] of Object.entries(files.master!)) {
    fs.mkdirSync(path.dirname(path.join(out, rel)), { recursive: true });
    fs.writeFileSync(path.join(out, rel), content);
  }
  return { estate, files, out };
}

const ESTATES: [string, () => Rendered][] = [
  ["master, lady and madam (committed)", () => renderEstate("estate-committed", ROOT)],
  ["master, lady and a new madam", () => renderEstate("estate3", threeSiteDir())],
];

describe.each(ESTATES)("%s: the control plane's monitoring files", (_name, render) => {
  let bin: string;
  let r: Rendered;
  const promDir = () => path.join(r.out, "files/prometheus/etc/prometheus");
  const master = (p: string) => r.files.master![`files/${p}`]!;
  beforeAll(() => {
    bin = toolsDir();
    r = render();
  });

  test("promtool check config (and the rules files it loads)", () => {
    expect(run(`${bin}/promtool`, ["check", "config", "prometheus.yml"], promDir())).toContain(
      // Every file of ruleFiles, loaded by prometheus.yml's rule_files.
      `SUCCESS: ${Object.keys(ruleFiles({ sites: [] })).length} rule files found`,
    );
  });

  test.each(Object.keys(ruleFiles({ sites: [] })))(
    "%s: promtool check rules; promtool test rules: every alert fires when it should and stays silent when not",
    (file) => {
      const rel = `${RULES_DIR}/${file}`;
      run(`${bin}/promtool`, ["check", "rules", rel], promDir());
      const rules = YAML.parse(master(`prometheus/etc/prometheus/${rel}`)).groups[0].rules;
      const runbooks = rules[0].annotations.runbook_url.split("#")[0];
      const defs = ruleFiles(r.estate)[file]!;
      fs.writeFileSync(path.join(promDir(), `${file}.tests`), renderRuleTests(defs, rel, runbooks));
      expect(run(`${bin}/promtool`, ["test", "rules", `${file}.tests`], promDir())).toContain("SUCCESS");
      // Both cases of every alert in the file, and nothing else in it.
      const names = [...new Set(rules.map((x: { alert: string }) => x.alert))].sort();
      expect(defs.map((d) => d.alert).sort()).toEqual(names);
      for (const d of defs)
        expect([d.alert, d.fires.fires.length > 0, d.silent.fires.length]).toEqual([d.alert, true, 0]);
    },
  );

  test("amtool check-config", () => {
    run(
      `${bin}/amtool`,
      ["check-config", "alertmanager.yml"],
      path.join(r.out, "files/alertmanager/etc/alertmanager"),
    );
  });

  test("every site's endpoints: its own by container name, the others' by MagicDNS name through the mesh proxy", () => {
    const prom = YAML.parse(master("prometheus/etc/prometheus/prometheus.yml"));
    for (const site of r.estate.sites) {
      for (const e of site.metrics) {
        // master's egress nodes share no network with Prometheus: through master's node, a job of their own.
        const local = site.name === "master" && !e.throughNode;
        const job = prom.scrape_configs.find(
          (j: { job_name: string }) =>
            j.job_name === `${site.name}/${e.service}${site.name === "master" && !local ? "/tailnet" : ""}`,
        );
        expect([job.job_name, job.proxy_url, job.honor_labels]).toEqual([
          job.job_name,
          local ? undefined : MESH_PROXY,
          false,
        ]);
        expect(job.static_configs).toContainEqual({
          targets: [local ? `${e.container}:${e.port}` : `${site.meshHost}:${e.port}`],
          labels: { site: site.name, role: site.role, service: e.service, container: e.container },
        });
      }
    }
    const probed = prom.scrape_configs
      .filter((j: { job_name: string }) => j.job_name.startsWith("probe-"))
      .flatMap((j: { static_configs: { targets: string[] }[] }) =>
        j.static_configs.flatMap((s) => s.targets),
      );
    const routed = r.estate.sites.flatMap((s) => s.routes.map((x) => `https://${x.host}${x.probePath}`));
    expect(probed).toEqual(expect.arrayContaining(routed));
    expect(probed).toEqual(
      expect.arrayContaining(["http://loki:3100/ready", "http://headscale:8080/health"]),
    );
  });

  test("other sites ship logs to the control plane's Loki through their mesh proxy, each with its own password", () => {
    const others = r.estate.sites.filter((s) => s.name !== "master");
    expect(others.length).toBeGreaterThan(0);
    for (const site of others) {
      const files = r.files[site.name]!;
      const promtail = YAML.parse(files["files/promtail/etc/promtail/config.yml"]!);
      expect(promtail.clients).toEqual([
        {
          url: "http://master.mesh.qui3tly.cloud:3100/loki/api/v1/push",
          // Its own egress node: the logs flow is the shipper's identity's alone.
          proxy_url: "http://tailscale-egress-promtail:1055",
          // The user is the site; the password a file, never in the rendered config.
          basic_auth: { username: site.name, password_file: "/etc/promtail/secrets/loki-password" },
          external_labels: { site: site.name },
        },
      ]);
      const c = JSON.parse(files["site.json"]!).containers.find(
        (x: { name: string }) => x.name === "promtail",
      );
      expect(c.secretFiles).toEqual({
        "/etc/promtail/secrets/loki-password": "<secret input: lokiPassword>",
      });
    }
    // The control plane's own shipper pushes to Loki directly, as its own tenant.
    expect(YAML.parse(master("promtail/etc/promtail/config.yml")).clients).toEqual([
      { url: "http://loki:3100/loki/api/v1/push", tenant_id: "master", external_labels: { site: "master" } },
    ]);
  });

  test("Loki: a tenant per site; Grafana reads every site's, by the tenant no site can forge", () => {
    const loki = YAML.parse(master("loki/etc/loki/config.yaml"));
    expect([loki.auth_enabled, loki.querier]).toEqual([true, { multi_tenant_queries_enabled: true }]);
    const tenants = r.estate.sites.map((s) => s.name).sort();
    const ds = YAML.parse(master("grafana/etc/grafana/provisioning/datasources/qcloud.yml")).datasources;
    expect(ds.find((d: { uid: string }) => d.uid === "loki")).toEqual({
      name: "Loki",
      uid: "loki",
      type: "loki",
      url: "http://loki:3100",
      access: "proxy",
      jsonData: { httpHeaderName1: "X-Scope-OrgID" },
      secureJsonData: { httpHeaderValue1: tenants.join("|") },
    });
    // Traefik takes the pushes: the shippers' users from a secret file, never the plain dynamic config.
    const traefik = JSON.parse(r.files.master!["site.json"]!).containers.find(
      (x: { name: string }) => x.name === "traefik",
    );
    expect(traefik.secretFiles).toEqual({ "/etc/traefik/secrets/logs-users": "<secret input: logsUsers>" });
    expect(master("traefik/etc/traefik/dynamic/routes.yml")).not.toMatch(/\$2[aby]\$/);
  });

  test("dashboards: every panel's datasource is provisioned, every PromQL expression valid", () => {
    const provisioned = YAML.parse(master("grafana/etc/grafana/provisioning/datasources/qcloud.yml"));
    const uids = new Set(provisioned.datasources.map((d: { uid: string }) => d.uid));
    expect([...uids].sort()).toEqual(["loki", "prometheus"]);
    const dir = "grafana/etc/grafana/dashboards";
    const dashboards = Object.keys(r.files.master!).filter((f) => f.startsWith(`files/${dir}/`));
    expect(dashboards.map((f) => path.basename(f)).sort()).toEqual([
      "estate.json",
      "service.json",
      "site.json",
    ]);
    const exprs: string[] = [];
    for (const f of dashboards) {
      const d = JSON.parse(r.files.master![f]!);
      for (const p of d.panels) {
        for (const t of [p, ...p.targets])
          expect([d.uid, p.title, uids.has(t.datasource.uid)]).toEqual([d.uid, p.title, true]);
        for (const t of p.targets) {
          // The site dashboard selects by tenant (who pushed), the service one by the shipper's label.
          if (t.datasource.uid === DATASOURCES.loki.uid)
            expect(t.expr).toMatch(/^\{(__tenant_id__="\$site"|service="\$service")\}$/);
          else exprs.push(t.expr);
        }
      }
    }
    // Grafana's variables, substituted, then promtool parses each expression as a recording rule.
    const concrete = exprs.map((e) =>
      e.replace(/\$__rate_interval/g, "5m").replace(/\$(site|service)/g, "x"),
    );
    fs.writeFileSync(
      path.join(tmp, "dashboards.rules.yml"),
      YAML.stringify({
        groups: [
          { name: "dashboards", rules: concrete.map((expr, i) => ({ record: `dashboard:expr${i}`, expr })) },
        ],
      }),
    );
    run(`${bin}/promtool`, ["check", "rules", "dashboards.rules.yml"], tmp);
    const estate = JSON.parse(master(`${dir}/estate.json`));
    for (const s of r.estate.sites) {
      expect(estate.panels.map((p: { title: string }) => p.title)).toContain(`${s.name}: mesh node`);
    }
  });
});

describe("a new site is picked up with no code change", () => {
  test("madam: scraped, probed, watched for its containers, on the overview", () => {
    const r = renderEstate("estate3-madam", threeSiteDir());
    const master = (p: string) => r.files.master![`files/${p}`]!;
    const madam = r.estate.sites.find((s) => s.name === "madam")!;
    expect(master("prometheus/etc/prometheus/prometheus.yml")).toContain("- job_name: madam/node-exporter");
    expect(master("prometheus/etc/prometheus/prometheus.yml")).toContain(`- ${madam.meshHost}:9100`);
    expect(master("prometheus/etc/prometheus/prometheus.yml")).toContain(
      "- https://unifi-madam.qui3tly.cloud/",
    );
    expect(master(`prometheus/etc/prometheus/${RULES_DIR}/containers.yml`)).toContain(
      'absent(container_last_seen{site="madam",name="unifi"})',
    );
    expect(master("grafana/etc/grafana/dashboards/estate.json")).toContain(
      `"madam: containers running (of ${madam.containers.length})"`,
    );
  });
});

describe("Alertmanager from the stack file", () => {
  const am = (dir: string) => {
    const estate = projectEstate(dir);
    const files = renderSiteFiles(loadSite(fileSource(path.join(dir, "Pulumi.master.yaml")), estate));
    return { doc: YAML.parse(files["files/alertmanager/etc/alertmanager/alertmanager.yml"]!), files };
  };

  test("nothing configured: every alert goes to the ntfy bridge", () => {
    const { doc } = am(ROOT);
    expect(doc.receivers).toEqual([
      {
        name: "ntfy-bridge",
        webhook_configs: [{ url: "http://alertmanager-ntfy:8080", send_resolved: true }],
      },
    ]);
    expect(doc.route.routes.map((x: { receiver: string }) => x.receiver)).toEqual([
      "ntfy-bridge",
      "ntfy-bridge",
    ]);
  });

  test("critical pages (ntfy), warnings as an email digest, everything to the webhook; secrets as file paths only", () => {
    const { doc, files } = am(threeSiteDir());
    expect(doc.route).toMatchObject({ receiver: "ntfy", group_by: ["alertname", "site"] });
    expect(doc.route.routes).toEqual([
      { receiver: "webhook", matchers: ['severity=~"critical|warning"'], continue: true },
      { receiver: "ntfy", matchers: ['severity="critical"'], repeat_interval: "1h" },
      {
        receiver: "email",
        matchers: ['severity="warning"'],
        group_wait: "5m",
        group_interval: "1h",
        repeat_interval: "24h",
      },
    ]);
    expect(doc.inhibit_rules[0]).toEqual({
      source_matchers: ['alertname="SiteDown"'],
      target_matchers: ['alertname!~"SiteDown|MeshNodeOffline"'],
      equal: ["site"],
    });
    // Only the control plane's node and Prometheus' egress node darken the other sites: not its backup node's.
    expect(doc.inhibit_rules[1]).toEqual({
      source_matchers: [
        'alertname="MeshNodeOffline"',
        'role="control-plane"',
        'container=~"tailscale|tailscale-egress-prometheus"',
      ],
      target_matchers: ['alertname="SiteDown"', 'role!="control-plane"'],
    });
    const byName = Object.fromEntries(doc.receivers.map((x: { name: string }) => [x.name, x]));
    expect(byName.email.email_configs[0].auth_password_file).toBe(SECRET_PATHS.email);
    expect(byName.ntfy.webhook_configs[0].http_config.authorization.credentials_file).toBe(SECRET_PATHS.ntfy);
    expect(byName.webhook.webhook_configs[0].http_config.authorization.credentials_file).toBe(
      SECRET_PATHS.webhook,
    );
    const ntfyUrl = new URL(byName.ntfy.webhook_configs[0].url);
    expect([ntfyUrl.origin + ntfyUrl.pathname, ntfyUrl.searchParams.get("tpl")]).toEqual([
      "https://ntfy.qui3tly.cloud/alerts",
      "yes",
    ]);
    // The review output names each secret file's source; the container gets them as secret files, not files.
    const alertmanager = JSON.parse(files["site.json"]!).containers.find(
      (c: { name: string }) => c.name === "alertmanager",
    );
    expect(alertmanager.secretFiles).toEqual({
      [SECRET_PATHS.email]: "<secret config: smtpPassword>",
      [SECRET_PATHS.ntfy]: "<secret config: ntfyToken>",
      [SECRET_PATHS.webhook]: "<secret config: chatToken>",
    });
    const prometheus = JSON.parse(files["site.json"]!).containers.find(
      (c: { name: string }) => c.name === "prometheus",
    );
    expect(prometheus.command).toEqual(
      expect.arrayContaining(["--storage.tsdb.retention.time=90d", "--storage.tsdb.retention.size=50GB"]),
    );
    expect(files[`files/prometheus/etc/prometheus/${RULES_DIR}/qcloud.yml`]).toContain(
      "runbook_url: https://git.qui3tly.cloud/ops/qui3tly-cloud/src/branch/main/docs/runbooks.md#sitedown",
    );
  });
});

describe("docs", () => {
  test(`${RUNBOOKS_PATH} has a section for every alert, which its runbook_url anchors`, () => {
    const doc = fs.readFileSync(path.join(ROOT, RUNBOOKS_PATH), "utf8");
    const sections = [...doc.matchAll(/^## (\w+)$/gm)].map((m) => m[1]);
    // The committed estate's, and those only an estate with a secondary has.
    const alerts = [ROOT, threeSiteDir()].flatMap((dir) =>
      Object.values(ruleFiles(projectEstate(dir))).flatMap((defs) => defs.map((d) => d.alert)),
    );
    expect(sections.sort()).toEqual([...new Set(alerts)].sort());
  });

  test("the tools script is idempotent and fast when warm", () => {
    toolsDir();
    const start = Date.now();
    const env = execFileSync("bash", [path.join(ROOT, TOOLS), "--print-env"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    expect([env.startsWith("export PATH="), Date.now() - start < 1000]).toEqual([true, true]);
  });
});
