import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import YAML from "yaml";
import { backupCommandName } from "../../components/backup/backups";
import { SITE_KEY } from "../../config/schema";
import { loadProjectSite } from "../../model/estate";
import { BACKUP_LOG } from "../../render/backup";
import { ingressAddresses } from "../../render/traefik";
import { wireguardPrivateKey } from "../../render/wireguard";
import { SANDBOX_ADMIN, SANDBOX_HEADSCALE_PORT } from "../../scripts/sandbox/stackConfig";
import { PREVIOUS_RELEASE } from "../fixtures/upgrade/release";
import {
  REPO,
  SITES,
  SSH_KEY,
  SandboxProject,
  ensureHcloudApi,
  hostKey,
  moveSite,
  onPort,
  onServer,
  run,
  serverAddress,
  startServers,
  toolchainEnv,
} from "../../scripts/sandbox/sandbox";

/**
 * The real engine against the sandbox: converge, idempotence, the tailnet (join, policy, scrapes, rightsizing from
 * them, an alert,
 * failover), the WireGuard tunnel, an attacker's view of the estate (Loki, flows, keys, the Docker API, secrets in
 * plain text, a changed host key), backups (append-only, a restore, restore tests, their alerts), disaster
 * recovery (lady rebuilt on a new server at a new address, then master from a fresh project and a state export:
 * `npm run dr`), drift repair, a
 * one-container change that keeps its data, destroy that keeps data, and the two ways bad input must fail (config,
 * unreachable host) before anything changes. The steps build on each other, in order.
 */

/** A checkout of this repository at `commit`, sharing its node_modules: from its history, so a clone's. */
function checkout(commit: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-release-"));
  const tar = path.join(dir, "release.tar");
  // The clone may be another user's: git refuses it without `safe.directory`.
  const archive = run("git", ["-c", "safe.directory=*", "-C", REPO, "archive", "-o", tar, commit], {
    allowFail: true,
  });
  if (archive.code !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `the upgrade steps (a., a1.) run the program of ${commit} from this repository's history, which this checkout lacks: run from a clone with its history (\`git clone\`, not shallow)\n${archive.stderr}`,
    );
  }
  run("tar", ["-xf", tar, "-C", dir]);
  fs.rmSync(tar);
  fs.symlinkSync(path.join(REPO, "node_modules"), path.join(dir, "node_modules"));
  return dir;
}

const timings: Record<string, number> = {};
function timed<T>(what: string, f: () => T): T {
  const t0 = Date.now();
  const r = f();
  timings[what] = (Date.now() - t0) / 1000;
  return r;
}

let project: SandboxProject;
/** The previous release's program (test/fixtures/upgrade/release.ts), which step a. converges with. */
let previous: string;
const up = (site: string, ...extra: string[]) =>
  project.pulumi(["up", "--yes", "--skip-preview", "--stack", site, ...extra], { allowFail: true });

interface EstateReport {
  sites: {
    site: string;
    result: string;
    resources: { name: string; type: string; op: string }[];
    policy: unknown[];
  }[];
}

/** `npm run estate -- <args>` on the sandbox project (its stack files, state and SSH key), with its JSON report. */
function estate(...args: string[]): { code: number; output: string; report: EstateReport } {
  const json = path.join(project.dir, "estate.json");
  fs.rmSync(json, { force: true });
  const r = run("npx", ["ts-node", "--transpile-only", "scripts/estate.ts", ...args, "--json", json], {
    env: project.env,
    allowFail: true,
  });
  const report = fs.existsSync(json)
    ? (JSON.parse(fs.readFileSync(json, "utf8")) as EstateReport)
    : { sites: [] };
  return { code: r.code, output: r.stdout + r.stderr, report };
}
/** Each site's result and its changes, as `op name`. */
const results = (r: EstateReport) =>
  Object.fromEntries(
    r.sites.map((s) => [s.site, [s.result, ...s.resources.map((x) => `${x.op} ${x.name}`)]]),
  );

/** `name status health` of every container on a site's server. */
function containers(site: string): Map<string, string> {
  const out = onServer(
    site,
    "docker ps -a --filter label=cloud.qui3tly.managed-by=pulumi --format '{{.Names}}' | xargs -r docker inspect --format '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}'",
  ).stdout;
  return new Map(
    out
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [name, ...rest] = l.replace(/^\//, "").split(" ");
        return [name!, rest.join(" ")];
      }),
  );
}

/** The model of a sandbox stack, within its estate: what should run there. */
const model = (site: string) => loadProjectSite(path.dirname(project.stackFile(site)), site);

function editSite(site: string, edit: (s: Record<string, any>) => void): string {
  const file = project.stackFile(site);
  const before = fs.readFileSync(file, "utf8");
  const doc = YAML.parse(before);
  edit(doc.config[SITE_KEY]);
  fs.writeFileSync(file, YAML.stringify(doc));
  return before;
}

beforeAll(() => {
  const env = timed("toolchain", () => toolchainEnv());
  // First: without the history it needs, the run stops here, not after the servers are up.
  previous = checkout(PREVIOUS_RELEASE);
  // A fresh estate: no server, volume or state left from an earlier run.
  timed("sandbox down", () => run("bash", ["scripts/sandbox/down.sh"]));
  timed("servers up", () => startServers(SITES, false));
  project = new SandboxProject(fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-e2e-")), env);
  timed("stacks init", () => project.init(SITES));
});

afterAll(() => {
  console.log(`e2e timings (s): ${JSON.stringify(timings)}`);
  if (project) fs.rmSync(project.dir, { recursive: true, force: true });
  if (previous) fs.rmSync(previous, { recursive: true, force: true });
  // The servers hold containers of a state just deleted: they go too, or `npm run sandbox` would collide with
  // them. Images and caches stay, so the next start is quick.
  run("bash", ["scripts/sandbox/down.sh"], { allowFail: true });
});

describe("the sandbox estate under the real engine", () => {
  test("a. up master, then lady, with the previous release's program: every container of the model runs, and is healthy where it has a healthcheck", () => {
    project.useProgram(previous);
    for (const site of ["master", "lady"]) {
      const r = timed(`up ${site}`, () => up(site));
      expect([site, r.code, r.code === 0 ? "" : r.stdout + r.stderr]).toEqual([site, 0, ""]);
      const running = containers(site);
      const expected = model(site).services.flatMap((s) => s.containers);
      expect([...running.keys()].sort()).toEqual(expected.map((c) => c.name).sort());
      for (const c of expected) {
        expect([c.name, running.get(c.name)]).toEqual([c.name, `running ${c.healthcheck ? "healthy" : "-"}`]);
      }
    }
  });

  test("a1. this program adopts the previous release's stacks: its preview creates and deletes nothing real and replaces only what this release changes; the new components are the only creates", () => {
    project.useProgram();
    for (const site of ["master", "lady"]) {
      const r = timed(`upgrade preview ${site}`, () =>
        project.pulumi(["preview", "--json", "--stack", site], { allowFail: true }),
      );
      expect([site, r.code, r.code === 0 ? "" : r.stdout + r.stderr]).toEqual([site, 0, ""]);
      const steps = (JSON.parse(r.stdout) as { steps: { op: string; urn: string }[] }).steps.map((s) => ({
        op: s.op,
        type: s.urn.split("::")[2]!.split("$").pop()!,
        name: s.urn.split("::").pop()!,
      }));
      const real = steps.filter((s) => !s.type.startsWith("qcloud:"));
      // `read`: the stack reference to master, read on every run. The real changes: the containers that add
      // capabilities now name them as Docker reads them back (`CAP_NET_ADMIN`, so a refresh sees no drift), the
      // probed ones are probed every 10 s (was 30 s), and the tailnet address follows its node.
      const replaced = model(site)
        .services.flatMap((s) => s.containers)
        .filter((c) => c.capabilities.length || c.healthcheck)
        .map((c) => `${site}-${c.name}`);
      // And the control plane's Prometheus takes a new rules file (drift.yml: the drift alerts).
      if (site === "master") replaced.push("master-prometheus");
      const changed = real.filter((s) => s.op !== "same" && s.op !== "read").map((s) => `${s.op} ${s.name}`);
      // The one update: the backup job's script (restores check only the containers that would touch the data). The
      // one create: the command that drops peers' stale UDP flows once the containers publishing UDP are replaced.
      const expectedOps = [`update ${backupCommandName(site)}`, `create ${site}-udp-flows`];
      expect([
        site,
        changed.filter((c) => !c.startsWith("replace ") && !expectedOps.includes(c)),
        changed.includes(`replace ${site}-tailscale`),
        changed.includes(`create ${site}-udp-flows`),
      ]).toEqual([site, [], true, true]);
      for (const c of changed.filter((x) => x.startsWith("replace "))) {
        expect([site, c]).toEqual([
          site,
          expect.stringMatching(
            new RegExp(`^replace (${[...replaced, `${site}-tailnet-address`].join("|")})$`),
          ),
        ]);
      }
      const components = steps.filter((s) => s.type.startsWith("qcloud:") && s.op !== "same");
      expect([site, [...new Set(components.map((s) => `${s.op} ${s.type}`))].sort()]).toEqual([
        site,
        [
          "create qcloud:mesh:MeshNode",
          ...(site === "master" ? ["create qcloud:mesh:Tailnet"] : []),
          "create qcloud:monitoring:Monitoring",
          "create qcloud:service:Service",
        ],
      ]);
    }
    // The whole estate in order, as CI deploys it: the control plane, then the others.
    const moved = timed("upgrade: estate up", () => estate("up"));
    expect([moved.code, moved.code === 0 ? "" : moved.output]).toEqual([0, ""]);
    expect(moved.report.sites.map((s) => `${s.site} ${s.result}`)).toEqual(["master ok", "lady ok"]);
    // The previous release's components are gone from the states: aliased, not left behind.
    for (const site of ["master", "lady"]) {
      const state = JSON.parse(project.pulumi(["stack", "export", "--stack", site]).stdout) as {
        deployment: { resources: { type: string }[] };
      };
      const types = state.deployment.resources.map((r) => r.type);
      expect([site, types.includes("qcloud:site:ServiceSet"), types.includes("qcloud:site:Site")]).toEqual([
        site,
        false,
        true,
      ]);
    }
  });

  test("b. a second preview finds nothing to change: `estate preview` of every site at once, the policy pack passing them", () => {
    const r = timed("estate no-op preview", () => estate("preview"));
    expect([r.code, results(r.report)]).toEqual([0, { master: ["ok"], lady: ["ok"] }]);
    // The policy pack ran on both and found nothing (a violation would also fail the run).
    expect(r.report.sites.map((x) => [x.site, x.policy])).toEqual([
      ["master", []],
      ["lady", []],
    ]);
  });

  test("c. the tailnet: master runs Headscale, both sites' nodes joined with their tags; the time to join", () => {
    const nodes = JSON.parse(
      onServer("master", "docker exec headscale headscale nodes list -o json").stdout,
    ) as {
      given_name: string;
      online: boolean;
      tags?: string[];
      created_at: { seconds: number; nanos?: number };
    }[];
    const bySite = new Map(nodes.map((n) => [n.given_name, n]));
    // Each site's node with the site's tags; each egress node (one per flow consumer) with its consumer's one tag,
    // never the site's (it must not inherit the site's flows).
    const expected: Record<string, string[]> = {
      master: ["tag:role-control-plane", "tag:site-master"],
      "master-egress-backup": ["tag:master-backup"],
      "master-egress-prometheus": ["tag:master-prometheus"],
      lady: ["tag:role-services", "tag:site-lady"],
      "lady-egress-backup": ["tag:lady-backup"],
      "lady-egress-promtail": ["tag:lady-promtail"],
    };
    for (const [node, tags] of Object.entries(expected)) {
      expect([node, bySite.get(node)?.online, bySite.get(node)?.tags?.sort()]).toEqual([node, true, tags]);
    }
    // From lady's node container starting to Headscale registering it.
    const started = Date.parse(
      onServer("lady", "docker inspect -f '{{.State.StartedAt}}' tailscale").stdout.trim(),
    );
    const registered = bySite.get("lady")!.created_at;
    timings["lady joins the tailnet"] = registered.seconds + (registered.nanos ?? 0) / 1e9 - started / 1000;
    expect(timings["lady joins the tailnet"]).toBeLessThan(120);
  });

  /** lady's shipper's way out: the egress node whose proxy it uses. */
  const LADY_LOGS_EGRESS = "tailscale-egress-promtail";
  /**
   * Fetches a URL from one of a site's egress nodes, through its own proxy (as its consumer does): the HTTP status
   * (`000`: no answer), then the body. A refused connection is never answered: curl gives up after 20 s.
   */
  const overTailnet = (from: string, node: string, url: string) => {
    const r = onServer(
      from,
      `timeout 40 docker exec ${node} sh -c 'curl -sS -m 20 -x http://127.0.0.1:1055 -o /tmp/body -w "%{http_code}" ${url}; echo; cat /tmp/body 2>/dev/null; rm -f /tmp/body'`,
      true,
    );
    const [status, ...body] = r.stdout.split("\n");
    return { status: status!.trim(), body: body.join("\n") };
  };
  /** A node's tailnet IPv4 address. */
  const tailnetIp = (site: string, node: string) =>
    onServer(site, `docker exec ${node} tailscale ip -4`).stdout.trim();
  /** The server's clock, for `docker logs --since`. */
  const serverNow = (site: string) => onServer(site, "date -u +%Y-%m-%dT%H:%M:%SZ").stdout.trim();
  /**
   * The policy's refusal, as the receiving node logs it: its packet filter drops the connection (`Drop:
   * TCP{src:port > dst:port} ... no rules matched`), which says the policy refused it, not a dead node or a
   * missing forward.
   */
  const dropLogged = (site: string, src: string, port: number, since: string) => {
    const dst = tailnetIp(site, "tailscale").replace(/\./g, "\\.");
    const re = `Drop: TCP\\{${src.replace(/\./g, "\\.")}:[0-9]+ > ${dst}:${port}\\}`;
    return onServer(
      site,
      `docker logs --since ${since} tailscale 2>&1 | grep -E '${re}'`,
      true,
    ).stdout.trim();
  };

  test("d. a declared flow works across the tailnet (master scrapes lady); an undeclared one is refused by the policy", () => {
    const declared = overTailnet(
      "master",
      "tailscale-egress-prometheus",
      "http://lady.mesh.qui3tly.cloud:9100/metrics",
    );
    expect(declared.status).toBe("200");
    expect(declared.body).toMatch(/^node_uname_info\{/m);
    // lady's shipper reaches master's Loki port: Traefik's logs entrypoint answers (a 404 off the push path).
    expect(overTailnet("lady", LADY_LOGS_EGRESS, "http://master.mesh.qui3tly.cloud:3100/ready").status).toBe(
      "404",
    );
    // The same identity, master's exporter (served to the tailnet, but not to it): no answer, and master's node
    // logs its packet filter dropping exactly that connection.
    const since = serverNow("master");
    const refused = overTailnet("lady", LADY_LOGS_EGRESS, "http://master.mesh.qui3tly.cloud:9100/metrics");
    // No answer from the far side: curl's timeout (000), or the proxy giving up on its dial (502), never a 2xx.
    expect(["000", "502"]).toContain(refused.status);
    expect(dropLogged("master", tailnetIp("lady", LADY_LOGS_EGRESS), 9100, since)).toMatch(
      /no rules matched/,
    );
    // And the same fetch from the identity the policy gives it to: master's Prometheus, of master's own node.
    expect(
      overTailnet("master", "tailscale-egress-prometheus", "http://master.mesh.qui3tly.cloud:9003/metrics")
        .status,
    ).toBe("200");
  });

  /** Prometheus' API on master. */
  const prometheus = (query: string) =>
    JSON.parse(
      onServer("master", `docker exec prometheus wget -q -O - 'http://127.0.0.1:9090/api/v1/${query}'`)
        .stdout,
    ).data;
  /** Seconds until `f` holds; past `seconds`, an error that says what, and what `detail` then tells. */
  const until = (what: string, f: () => boolean, seconds: number, detail?: () => string): number => {
    const t0 = Date.now();
    while (!f()) {
      if (Date.now() - t0 > seconds * 1000) {
        throw new Error(`${what}: not within ${seconds} s${detail ? `; ${detail()}` : ""}`);
      }
      run("sleep", ["1"]);
    }
    return (Date.now() - t0) / 1000;
  };

  test("e. Prometheus on master scrapes both sites over the tailnet: every site's heartbeat is up", () => {
    const upOf = () =>
      new Map(
        (
          prometheus("query?query=up%7Bservice%3D%22node-exporter%22%7D").result as {
            metric: { site: string };
            value: [number, string];
          }[]
        ).map((r) => [r.metric.site, r.value[1]]),
      );
    timings["both sites scraped"] = until(
      "up{service=node-exporter} is 1 for master and lady",
      () => upOf().get("master") === "1" && upOf().get("lady") === "1",
      90,
    );
  });

  test("e1. npm run rightsize on lady: master's Prometheus (cAdvisor) gives every running container of lady a real peak memory, and the totals", () => {
    // lady has run since step a.: ten minutes of samples, or as many as there are; read only, no converge.
    const r = timed("rightsize lady (10m)", () =>
      run(
        "npx",
        [
          ...["ts-node", "--transpile-only", "scripts/rightsize.ts"],
          ...["--stack", "lady", "--window", "10m", "--ssh-key", SSH_KEY],
        ],
        { env: project.env, allowFail: true },
      ),
    );
    expect([r.code, r.code === 0 ? "" : r.stdout + r.stderr]).toEqual([0, ""]);
    // Table rows: | service | container | memory | peak | p95 | suggested | CPUs | peak | p95 | suggested |
    const peaks = new Map(
      r.stdout
        .split("\n")
        .filter((l) => l.startsWith("| "))
        .map((l) => l.split("|").map((c) => c.trim()))
        .map((c) => [c[2]!, c[4]!]),
    );
    const running = [...containers("lady")].filter(([, s]) => s.startsWith("running")).map(([n]) => n);
    expect(running.length).toBeGreaterThan(0);
    for (const name of running) {
      const peak = peaks.get(name);
      expect([name, /^[0-9]+\.[0-9]m$/.test(peak ?? "") && Number(peak!.slice(0, -1)) > 0]).toEqual([
        name,
        true,
      ]);
    }
    expect(r.stdout).toMatch(
      /^total memory: declared [0-9]+m, suggested [0-9]+m: rightsizing (frees|needs) /m,
    );

    // --write, on a copy of the stack files (the estate's own stay as they are): what it writes passes `check`.
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-rightsize-"));
    try {
      const stackDir = path.join(project.dir, "project");
      for (const f of fs.readdirSync(stackDir).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f)))
        fs.copyFileSync(path.join(stackDir, f), path.join(copy, f));
      const w = run(
        "npx",
        [
          ...["ts-node", "--transpile-only", "scripts/rightsize.ts"],
          ...["--stack", "lady", "--window", "10m", "--ssh-key", SSH_KEY, "--write"],
        ],
        { env: { ...project.env, QCLOUD_PROJECT_DIR: copy }, allowFail: true },
      );
      expect([w.code, w.code === 0 ? "" : w.stdout + w.stderr]).toEqual([0, ""]);
      // What the program places is named and left alone; each setting printed is in the written file.
      expect(w.stdout).toMatch(/^--write: not settable in a stack file .*: backup-repository, /m);
      const printed = w.stdout.slice(w.stdout.indexOf("--write: Pulumi.lady.yaml:"));
      const written = fs.readFileSync(path.join(copy, "Pulumi.lady.yaml"), "utf8");
      const site = (YAML.parse(written) as { config: Record<string, unknown> }).config["qui3tly-cloud:site"];
      const settings = [...printed.matchAll(/^ {2}(services\.[^:]+): \S+ -> (\S+)$/gm)];
      expect(settings.length).toBeGreaterThan(0);
      for (const [, at, to] of settings)
        expect([at, YAML.stringify(at!.split(".").reduce<any>((o, k) => o?.[k], site)).trim()]).toEqual([
          at,
          to,
        ]);
      const checked = run(
        "npx",
        ["ts-node", "--transpile-only", "scripts/check.ts", path.join(copy, "Pulumi.lady.yaml")],
        {
          allowFail: true,
        },
      );
      expect([checked.code, checked.stderr.split("\n").filter((l) => l.startsWith("FAIL"))]).toEqual([0, []]);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  test("f. lady's exporter stopped: SiteDown fires for lady; the time it takes", () => {
    const firing = () =>
      (prometheus("alerts").alerts as { labels: Record<string, string>; state: string }[]).some(
        (a) => a.labels.alertname === "SiteDown" && a.labels.site === "lady" && a.state === "firing",
      );
    expect(firing()).toBe(false);
    onServer("lady", "docker stop node-exporter");
    timings["exporter stopped -> SiteDown firing"] = until("SiteDown firing for lady", firing, 180);
    // And Alertmanager has it, to route.
    const inAlertmanager = () =>
      onServer(
        "master",
        "docker exec alertmanager wget -q -O - 'http://127.0.0.1:9093/api/v2/alerts?filter=alertname=\"SiteDown\"'",
      ).stdout.includes('"site":"lady"');
    timings["-> in Alertmanager"] = until("SiteDown in Alertmanager", inAlertmanager, 60);
    onServer("lady", "docker start node-exporter");
  });

  test("g. failover: with Headscale stopped, the existing tunnel still carries master's scrapes of lady", () => {
    // Direct, not through the DERP relay Headscale embeds (which stops with it): lady's node is reachable on its
    // published UDP port, which she advertises as she learns it by STUN through Headscale, replaced in a1 (its
    // peers' flows, stale across the replacement, dropped by the stack's `udp-flows` command: else Docker 20.10's
    // proxy answers, and lady advertises its address instead).
    const published = `${serverAddress("lady")}:41641`;
    let lady: { Endpoints?: string[] }[] = [];
    const advertised = () => {
      const netmap = JSON.parse(
        onServer("master", "docker exec tailscale-egress-prometheus tailscale debug netmap", true).stdout ||
          "{}",
      ) as { Peers?: { Name: string; Endpoints?: string[] }[] };
      lady = (netmap.Peers ?? []).filter((p) => p.Name.startsWith("lady."));
      return lady.some((p) => p.Endpoints?.includes(published));
    };
    timings["lady advertises her published port"] = until(
      `lady's endpoint ${published} in master's netmap`,
      advertised,
      60,
      () => `lady's endpoints there: ${JSON.stringify(lady.map((p) => p.Endpoints))}`,
    );
    let ping = "";
    const direct = () => {
      ping = onServer(
        "master",
        "docker exec tailscale-egress-prometheus tailscale ping -c 1 --timeout 5s lady",
        true,
      ).stdout;
      return /via \d+\.\d+\.\d+\.\d+:41641/.test(ping);
    };
    timings["tailnet path master -> lady direct"] = until(
      "a direct path from master to lady",
      direct,
      60,
      () => `the last \`tailscale ping\`: ${ping}`,
    );
    // A flow from lady to Headscale's STUN port that keeps sending through Headscale's restart, as a node's does: stale
    // after it (delivered to docker-proxy) until master's minute job (`qcloud-udp-flows`) drops it, after which it
    // takes Docker's DNAT to Headscale again. From lady's host: her nodes STUN from their own namespaces.
    const master = serverAddress("master");
    const sender = onServer(
      "lady",
      `setsid nohup timeout 300 bash -c 'exec 3<>/dev/udp/${master}/3478; while :; do printf x >&3 2>/dev/null; sleep 1; done' >/dev/null 2>&1 </dev/null & echo $!`,
    ).stdout.trim();
    try {
      let sport = "";
      until(
        "the sender's flow",
        () => {
          sport =
            /:(\d+)\s+\S+:3478\b/.exec(onServer("lady", `ss -Hnu dst ${master}:3478`).stdout)?.[1] ?? "";
          return sport !== "";
        },
        10,
      );
      /** Where master's conntrack sends that flow: Headscale's container address, or master's own (stale). */
      const answeredBy = () =>
        new RegExp(` sport=${sport} dport=3478 (?:\\[UNREPLIED\\] )?src=(\\S+) `).exec(
          onServer(
            "master",
            `grep ' src=${serverAddress("lady")} dst=${master} ' /proc/net/nf_conntrack`,
            true,
          ).stdout,
        )?.[1];
      until("lady's flow to Headscale's STUN port, DNAT'd", () => (answeredBy() ?? master) !== master, 30);
      onServer("master", "docker stop headscale");
      let started = 0;
      try {
        run("sleep", ["5"]);
        expect(
          overTailnet("master", "tailscale-egress-prometheus", "http://lady.mesh.qui3tly.cloud:9100/metrics")
            .body,
        ).toMatch(/^node_uname_info\{/m);
      } finally {
        // Its time before the start: the job's minute is the one after it.
        started = Number(onServer("master", "date +%s; docker start headscale >/dev/null").stdout.trim());
      }
      const stale = answeredBy();
      const seen = Number(onServer("master", "date +%s").stdout.trim());
      // Before the next minute's job (cron runs it at the minute's start), the flow is still the proxy's.
      if (Math.floor(seen / 60) === Math.floor(started / 60) && started % 60 >= 5) expect(stale).toBe(master);
      timings["stale STUN flow -> dropped by the minute job"] =
        until("the flow DNAT'd to Headscale again", () => (answeredBy() ?? master) !== master, 150) +
        (seen - started);
    } finally {
      onServer("lady", `kill ${sender}`, true);
    }
    until("headscale healthy again", () => containers("master").get("headscale") === "running healthy", 90);
  });

  test("h. WireGuard site-to-site: master reaches lady's SSH through the tunnel, which needs no Headscale", () => {
    // The sandbox's kernel has no WireGuard module: wg-quick falls back to wireguard-go, in userspace.
    for (const site of ["master", "lady"]) {
      expect([site, containers(site).get("wireguard")]).toEqual([site, "running healthy"]);
    }
    onServer("master", "docker stop headscale");
    try {
      onServer("master", "timeout 10 bash -c '</dev/tcp/10.90.0.2/22'");
      const handshake = onServer("master", "docker exec wireguard wg show wg0 latest-handshakes")
        .stdout.trim()
        .split(/\s+/)[1];
      expect(Number(handshake)).toBeGreaterThan(0);
    } finally {
      onServer("master", "docker start headscale");
    }
    until("headscale healthy again", () => containers("master").get("headscale") === "running healthy", 90);
  });

  test("i. an admin's device on the tailnet reaches every site's SSH and private routes, and nothing the policy does not give admins", () => {
    // The admin: a Headscale user in the control plane's `group:admins`, with a key of their own.
    const hs = (args: string) => onServer("master", `docker exec headscale headscale ${args}`).stdout;
    onServer("master", `docker exec headscale headscale users create ${SANDBOX_ADMIN}`, true); // or it exists
    const users = JSON.parse(hs("users list -o json")) as { id: number; name: string }[];
    const user = users.find((u) => u.name === SANDBOX_ADMIN)!;
    expect(user).toBeDefined();
    const key = (
      JSON.parse(hs(`preauthkeys create --user ${user.id} --expiration 1h -o json`)) as { key: string }
    ).key;
    // Their laptop: this machine, with the real tailscaled in userspace (no TUN), and a SOCKS5 proxy into the tailnet.
    const bin = run("bash", ["scripts/mesh-tools.sh"]).stdout.trim();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-admin-"));
    const socks = "127.0.0.1:21080";
    const log = fs.openSync(path.join(dir, "tailscaled.log"), "w");
    const daemon = spawn(
      path.join(bin, "tailscaled"),
      [
        "--tun=userspace-networking",
        `--socket=${dir}/sock`,
        `--statedir=${dir}`,
        "--port=0",
        "--no-logs-no-support",
        `--socks5-server=${socks}`,
      ],
      // The sandbox's Headscale speaks plain HTTP, and its relay with it.
      { env: { ...process.env, TS_DEBUG_USE_DERP_HTTP: "1" }, stdio: ["ignore", log, log] },
    );
    const tailscale = (args: string[], allowFail = false) =>
      run(path.join(bin, "tailscale"), [`--socket=${dir}/sock`, ...args], { allowFail });
    try {
      until("the laptop's tailscaled answers", () => tailscale(["version"], true).code === 0, 30);
      const login = `http://${serverAddress("master")}:${SANDBOX_HEADSCALE_PORT}`;
      tailscale([
        "up",
        `--login-server=${login}`,
        `--authkey=${key}`,
        "--hostname=ops-laptop",
        "--timeout=60s",
      ]);
      // SSH to each site's host, through its node's forward to the host's sshd.
      for (const site of ["master", "lady"]) {
        const ssh = run("ssh", [
          ...["-i", SSH_KEY, "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"],
          ...["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"],
          ...["-o", `ProxyCommand=${path.join(bin, "tailscale")} --socket=${dir}/sock nc %h %p`],
          `root@${site}.mesh.qui3tly.cloud`,
          "hostname",
        ]);
        expect([site, ssh.stdout.trim()]).toEqual([site, site]);
      }
      // A private route on lady: through the node, Traefik sees the laptop's tailnet address (the PROXY header)
      // and serves it; from outside, the same route is refused.
      const route = model("lady").routes.find((r) => r.private)!;
      const https = (...how: string[]) =>
        run(
          "curl",
          [
            "-sk",
            "-m",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            ...how,
            `https://${route.host}${route.probePath}`,
          ],
          {
            allowFail: true,
          },
        ).stdout;
      expect([
        route.host,
        https("--socks5-hostname", socks, "--connect-to", "::lady.mesh.qui3tly.cloud:443"),
        https("--resolve", `${route.host}:443:${serverAddress("lady")}`),
      ]).toEqual([route.host, "200", "403"]);
      // The node serves lady's exporter to the tailnet, but the policy gives it to the control plane's Prometheus
      // only: no answer, and lady's node logs its packet filter dropping the laptop's connection.
      const since = serverNow("lady");
      const exporter = run(
        "curl",
        ["-sS", "-m", "15", "--socks5-hostname", socks, "http://lady.mesh.qui3tly.cloud:9100/metrics"],
        { allowFail: true },
      );
      expect([exporter.code === 0, exporter.stdout]).toEqual([false, ""]);
      const laptop = tailscale(["ip", "-4"]).stdout.trim();
      expect(dropLogged("lady", laptop, 9100, since)).toMatch(/no rules matched/);
      // The same fetch from the identity the policy gives it to.
      expect(
        overTailnet("master", "tailscale-egress-prometheus", "http://lady.mesh.qui3tly.cloud:9100/metrics")
          .body,
      ).toMatch(/^node_uname_info\{/m);
    } finally {
      daemon.kill();
      fs.closeSync(log);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  /**
   * An HTTP request to master's Loki port from lady's shipper, as the shipper sends it (through its egress proxy),
   * with lady's own push password (read in the container, never on this command line) or none. Prints the status
   * line, Traefik's `WWW-Authenticate` if any, and the body's first line.
   */
  const lokiFromLady = (method: string, urlPath: string, auth: "lady" | "none", tenant = "master") =>
    onServer(
      "lady",
      `timeout 30 docker exec promtail sh -c '` +
        `curl -sS -m 20 -x http://${LADY_LOGS_EGRESS}:1055 -i -X ${method} ` +
        (auth === "lady" ? `-u "lady:$(cat /etc/promtail/secrets/loki-password)" ` : "") +
        `-H "X-Scope-OrgID: ${tenant}" -H "Content-Type: application/json" ` +
        (method === "POST"
          ? `--data "{\\"streams\\":[{\\"stream\\":{\\"job\\":\\"e2e\\"},\\"values\\":[[\\"$(date +%s%N)\\",\\"e2e push\\"]]}]}" `
          : "") +
        `http://master.mesh.qui3tly.cloud:3100${urlPath} | tr -d "\\r" | ` +
        `awk "NR == 1 || tolower(\\$1) == \\"www-authenticate:\\" { print } /^$/ { body = 1; next } body { print; exit }"'`,
      true,
    ).stdout.trim();

  test("i1. Loki from lady: its push is taken as its own tenant, a query finds no route (Traefik's 404), a push without its password is Traefik's 401", () => {
    // The push, claiming master's tenant: Traefik takes it with lady's password and names the tenant lady.
    expect(lokiFromLady("POST", "/loki/api/v1/push", "lady")).toMatch(/^HTTP\/1\.1 20[04] /);
    const pushed = onServer(
      "master",
      'docker logs --since 5m traefik 2>&1 | grep \'"RouterName":"logs-push@file"\' | tail -n1',
    ).stdout;
    expect(JSON.parse(pushed)).toMatchObject({
      ClientUsername: "lady",
      DownstreamStatus: expect.any(Number),
    });
    expect(JSON.parse(pushed).DownstreamStatus).toBeLessThan(300);
    // The same port and password, a query: no route on the logs entrypoint. Traefik's own answer (Go's
    // NotFound body), not Loki's (the sandbox's Loki stand-in answers 200 to anything: a 404 can only be Traefik's).
    expect(
      lokiFromLady("GET", "/loki/api/v1/query_range?query=%7Bjob%3D%22e2e%22%7D", "lady").split("\n"),
    ).toEqual(["HTTP/1.1 404 Not Found", "404 page not found"]);
    expect(lokiFromLady("GET", "/loki/api/v1/labels", "lady").split("\n")[0]).toBe("HTTP/1.1 404 Not Found");
    // A push without lady's password: Traefik's basic auth refuses it (its realm names Loki's route).
    expect(lokiFromLady("POST", "/loki/api/v1/push", "none").split("\n")).toEqual([
      "HTTP/1.1 401 Unauthorized",
      'Www-Authenticate: Basic realm="loki"',
      "401 Unauthorized",
    ]);
  });

  test("i2. a flow is its consumer's alone: lady's other containers cannot reach its egress node, and lady's backup identity is refused master's Loki port by the policy", () => {
    // The consumer: promtail reaches its egress node by name, and through it master's Loki port (Traefik answers
    // a push without a password with its 401).
    const push = (container: string, proxy: string) =>
      onServer(
        "lady",
        `timeout 30 docker exec ${container} sh -c 'curl -sS -m 10 -x http://${proxy}:1055 -o /dev/null -w "%{http_code}" -X POST http://master.mesh.qui3tly.cloud:3100/loki/api/v1/push; echo " exit=$?"'`,
        true,
      ).stdout.trim();
    expect(push("promtail", LADY_LOGS_EGRESS)).toBe("401 exit=0");
    // Any other container of lady (here Nextcloud's, on `edge` and its own network; cadvisor, on `metrics`): the
    // egress node's name does not resolve (curl's exit 5: the proxy's host unknown) ...
    for (const other of ["nextcloud", "cadvisor"]) {
      expect([other, push(other, LADY_LOGS_EGRESS)]).toEqual([other, "000 exit=5"]);
    }
    // ... and by its address, which the consumer reaches, the connection is never answered: Docker isolates the
    // egress network (curl's exit 28: the 10 s passed with no connection).
    const proxyIp = onServer(
      "lady",
      `docker inspect -f '{{(index .NetworkSettings.Networks "qcloud-egress-promtail").IPAddress}}' ${LADY_LOGS_EGRESS}`,
    ).stdout.trim();
    expect(proxyIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(push("promtail", proxyIp)).toBe("401 exit=0");
    expect(push("cadvisor", proxyIp)).toBe("000 exit=28");
    // lady's backup identity: its own flow works (the REST server asks for its password) ...
    expect(
      overTailnet("lady", "tailscale-egress-backup", "http://master.mesh.qui3tly.cloud:8000/lady/config")
        .status,
    ).toBe("401");
    // ... master's Loki port, the shipper's flow, does not: no answer, and master's node logs the policy's drop of
    // exactly that identity's connection, while the shipper's identity gets Traefik's answer on the same port.
    const since = serverNow("master");
    const refused = overTailnet(
      "lady",
      "tailscale-egress-backup",
      "http://master.mesh.qui3tly.cloud:3100/ready",
    );
    // No answer from the far side: curl's timeout (000), or the proxy giving up on its dial (502), never a 2xx.
    expect(["000", "502"]).toContain(refused.status);
    expect(dropLogged("master", tailnetIp("lady", "tailscale-egress-backup"), 3100, since)).toMatch(
      /no rules matched/,
    );
    expect(overTailnet("lady", LADY_LOGS_EGRESS, "http://master.mesh.qui3tly.cloud:3100/ready").status).toBe(
      "404",
    );
  });

  test("is. lady's stack holds only her own keys: no key of master's or of any other site in her whole state, only sealed boxes", () => {
    const exported = (site: string) =>
      project.pulumi(["stack", "export", "--show-secrets", "--stack", site]).stdout;
    type Resource = { urn: string; type: string; outputs?: Record<string, unknown> };
    const resources = (text: string) =>
      (JSON.parse(text) as { deployment: { resources: Resource[] } }).deployment.resources;
    /** A state value as it is: a secret's plaintext (JSON) parsed, anything else itself. */
    const plain = (v: unknown): unknown =>
      v !== null && typeof v === "object" && "plaintext" in v
        ? JSON.parse((v as { plaintext: string }).plaintext)
        : v;
    const master = resources(exported("master"));
    const output = (name: string, field: string): string => {
      const r = master.find((x) => x.urn.endsWith(`::${name}`));
      expect([name, typeof plain(r?.outputs?.[field])]).toEqual([name, "string"]);
      return plain(r!.outputs![field]) as string;
    };
    // From master's state, which makes them all: each site's pre-auth key (the key command's JSON), WireGuard private
    // key (its random bytes, clamped), backup passwords, and the secret that makes the sealing deterministic.
    // A site's node's key command keeps its old name; an egress node's carries the node's name.
    const authKey = (site: string, node = "") =>
      (JSON.parse(output(`master-key-${site}${node && `-${node}`}`, "stdout")) as { key: string }).key;
    const wgKey = (site: string) =>
      wireguardPrivateKey(Buffer.from(output(`master-${site}`, "base64"), "base64"));
    const password = (site: string, what: string) => output(`master-backup-${site}-${what}`, "result");
    const forbidden: Record<string, string> = {
      "master's pre-auth key": authKey("master"),
      "master's Prometheus egress node's pre-auth key": authKey("master", "tailscale-egress-prometheus"),
      "master's backup egress node's pre-auth key": authKey("master", "tailscale-egress-backup"),
      "master's WireGuard private key": wgKey("master"),
      "master's REST password": password("master", "rest"),
      "the sealing secret": output("master-seal", "base64"),
    };
    const own: Record<string, string> = {
      "lady's pre-auth key": authKey("lady"),
      "lady's shipper's egress node's pre-auth key": authKey("lady", LADY_LOGS_EGRESS),
      "lady's backup egress node's pre-auth key": authKey("lady", "tailscale-egress-backup"),
      "lady's log push password": output("master-logs-lady", "result"),
      "lady's WireGuard private key": wgKey("lady"),
      "lady's repository password": password("lady", "repository"),
      // By design: lady keeps master's repository, so she holds its password (README, "What each site can read").
      "master's repository password, which lady keeps": password("master", "repository"),
    };
    for (const v of [...Object.values(forbidden), ...Object.values(own)])
      expect(v.length).toBeGreaterThanOrEqual(20);

    const ladyState = exported("lady");
    const ladyOutputs = project.pulumi([
      "stack",
      "output",
      "--show-secrets",
      "--json",
      "--stack",
      "lady",
    ]).stdout;
    for (const [what, text] of [
      ["lady's state", ladyState],
      ["lady's outputs", ladyOutputs],
    ] as const) {
      const found = Object.entries(forbidden)
        .filter(([, v]) => text.includes(v))
        .map(([k]) => k);
      expect([what, found]).toEqual([what, []]);
    }
    // The grep finds what is there: lady's own keys, in her state (the node's env, the tunnel's config, the job's).
    const present = Object.entries(own)
      .filter(([, v]) => ladyState.includes(v))
      .map(([k]) => k);
    expect(present).toEqual(Object.keys(own));

    // Why: her reference to master's stack holds all of master's outputs (so the grep above covers them), and what
    // they carry for her is a box; there are no keys in the clear to carry.
    const ref = resources(ladyState).find((r) => r.type === "pulumi:pulumi:StackReference")!;
    const cp = (plain((plain(ref.outputs!.outputs) as Record<string, unknown>).controlPlane) ?? {}) as Record<
      string,
      unknown
    >;
    expect(Object.keys(cp).sort()).toEqual(["sealed", "wireguardPublicKeys"]);
    const sealed = plain(cp.sealed) as Record<string, string>;
    expect([Object.keys(sealed), sealed.lady]).toEqual([
      ["lady"],
      expect.stringMatching(/^qcloud-seal-v1:[A-Za-z0-9+/]+=*$/),
    ]);

    // Keys expire: every node's pre-auth key in Headscale (a site's node, an egress node) is valid for a year.
    const keys = JSON.parse(
      onServer("master", "docker exec headscale headscale preauthkeys list -o json").stdout,
    ) as { acl_tags?: string[]; expiration: { seconds: number }; created_at: { seconds: number } }[];
    for (const tag of [
      "tag:site-master",
      "tag:site-lady",
      "tag:master-prometheus",
      "tag:master-backup",
      "tag:lady-promtail",
      "tag:lady-backup",
    ]) {
      const k = keys.filter((x) => x.acl_tags?.includes(tag) && x.expiration.seconds * 1000 > Date.now());
      expect([tag, k.map((x) => Math.round((x.expiration.seconds - x.created_at.seconds) / 3600))]).toEqual([
        tag,
        [8760],
      ]);
    }
  });

  test("ia. the Docker API as an attacker on lady sees it: an exporter reaches no proxy; promtail's own proxy lists and inspects without secrets, and refuses writes", () => {
    // From node-exporter, on `metrics` where the old socket-proxy answered every container's environment: no
    // Docker API proxy's name resolves there. GNU wget (the stand-in) and busybox (the real image) say why.
    for (const host of ["promtail-docker-api", "cadvisor-docker-api", "socket-proxy"]) {
      const r = onServer(
        "lady",
        // Not -q: GNU wget then says nothing of why.
        `docker exec node-exporter wget -O - -T 5 http://${host}:2375/_ping 2>&1`,
        true,
      );
      expect([host, r.code === 0, r.stdout]).toEqual([
        host,
        false,
        expect.stringMatching(/unable to resolve host address|bad address/),
      ]);
    }
    /** A call from promtail (the consumer) to its own proxy: `[status, body]`. */
    const api = (method: string, p: string): [string, string] => {
      const out = onServer(
        "lady",
        `docker exec promtail curl -sS -m 10 -X ${method} -w '\\n%{http_code}' http://promtail-docker-api:2375${p}`,
      ).stdout;
      const cut = out.lastIndexOf("\n");
      return [out.slice(cut + 1).trim(), out.slice(0, cut)];
    };
    const [listed, list] = api("GET", "/v1.41/containers/json");
    expect(listed).toBe("200");
    const names = (JSON.parse(list) as { Names: string[] }[]).flatMap((c) => c.Names);
    expect(names).toEqual(expect.arrayContaining(["/nextcloud-db", "/promtail", "/node-exporter"]));
    // The database's password, as the engine itself holds it (the host's `docker inspect`)...
    const env = onServer(
      "lady",
      "docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' nextcloud-db",
    )
      .stdout.split("\n")
      .find((l) => l.startsWith("POSTGRES_PASSWORD="));
    const password = env?.slice("POSTGRES_PASSWORD=".length) ?? "";
    expect(password).toMatch(/^[A-Za-z0-9]{32}$/);
    // ... is nowhere in what promtail's proxy answers for the same container, nor in its list.
    const [inspected, inspect] = api("GET", "/v1.41/containers/nextcloud-db/json");
    expect(inspected).toBe("200");
    const doc = JSON.parse(inspect);
    expect([doc.Name, doc.Config.Tty, doc.Config.Env, doc.Config.Cmd]).toEqual([
      "/nextcloud-db",
      false,
      undefined,
      undefined,
    ]);
    expect([
      inspect.includes(password),
      inspect.includes("POSTGRES_PASSWORD"),
      list.includes(password),
    ]).toEqual([false, false, false]);
    // A write is refused by the proxy itself (its 403 and its log say so), and the database still runs.
    const [stopped, stop] = api("POST", "/v1.41/containers/nextcloud-db/stop");
    expect([stopped, JSON.parse(stop)]).toEqual([
      "403",
      { message: "docker-api-proxy: POST /v1.41/containers/nextcloud-db/stop is not allowed for promtail" },
    ]);
    expect(api("POST", "/v1.41/containers/nextcloud-db/exec")[0]).toBe("403");
    // (Docker's log may lag the answer by a moment.)
    until(
      "the proxy's log names the refused stop",
      () =>
        onServer("lady", "docker logs promtail-docker-api 2>&1").stdout.includes(
          "docker-api-proxy[promtail]: refused POST /v1.41/containers/nextcloud-db/stop: not in the rules",
        ),
      10,
    );
    expect(containers("lady").get("nextcloud-db")).toBe("running healthy");
    // promtail reaches its own proxy only: cAdvisor's is on another network (curl: 6, could not resolve).
    const other = onServer(
      "lady",
      "docker exec promtail curl -sS -m 5 http://cadvisor-docker-api:2375/_ping 2>&1",
      true,
    );
    expect([other.code, other.stdout]).toEqual([6, expect.stringContaining("Could not resolve host")]);
  });

  /** A command on a site's server whose output and exit code the step asserts. */
  const job = (site: string, args: string) => onServer(site, `qcloud-backup ${args} 2>&1`, true);
  /** The alerts Prometheus has firing now, as `alertname site label`. */
  const firingAlerts = () =>
    (prometheus("alerts").alerts as { labels: Record<string, string>; state: string }[])
      .filter((a) => a.state === "firing")
      .map((a) => `${a.labels.alertname} ${a.labels.site} ${a.labels.backup ?? a.labels.peer ?? ""}`.trim());
  const ROWS = 1000;
  const rows = () =>
    onServer(
      "lady",
      "docker exec nextcloud-db psql -Atq -U nextcloud -d nextcloud -c 'SELECT count(*) FROM e2e_items'",
    ).stdout.trim();
  const files = () =>
    onServer("lady", "docker exec nextcloud sh -c 'cd /var/www/html/data/e2e && sha256sum f*'").stdout;
  let knownFiles = "";

  test("j. backups: known data on lady, both sites backed up into the other's append-only repository; gauges on master's Prometheus", () => {
    onServer(
      "lady",
      `docker exec nextcloud-db psql -v ON_ERROR_STOP=1 -q -U nextcloud -d nextcloud -c "CREATE TABLE e2e_items (id int PRIMARY KEY, name text); INSERT INTO e2e_items SELECT g, 'item ' || g FROM generate_series(1, ${ROWS}) g"`,
    );
    onServer(
      "lady",
      "docker exec nextcloud sh -c 'mkdir -p /var/www/html/data/e2e && for i in $(seq 1 20); do head -c 200000 /dev/urandom >/var/www/html/data/e2e/f$i; done'",
    );
    knownFiles = files();
    for (const site of ["lady", "master"]) {
      const r = timed(`backup ${site}`, () => job(site, "run"));
      expect([site, r.code, r.code === 0 ? "" : r.stdout]).toEqual([site, 0, ""]);
    }
    // Each site's snapshots, one per service with something to keep, in the repository the other site keeps.
    const services = (keeper: string, of: string) =>
      [
        ...new Set(
          (
            JSON.parse(onServer(keeper, `qcloud-backup kept ${of} snapshots --json`).stdout) as {
              tags: string[];
            }[]
          ).flatMap((s) => s.tags),
        ),
      ].sort();
    expect(services("master", "lady")).toEqual(
      ["nextcloud", "tailscale", "traefik", "uisp", "unifi"].map((s) => `service=${s}`),
    );
    expect(services("lady", "master")).toEqual(
      expect.arrayContaining(["service=headscale", "service=grafana", "service=tailscale"]),
    );
    // The repository's side: retention and a check.
    for (const cmd of ["maintain", "check"]) {
      const r = timed(`${cmd} on master`, () => job("master", cmd));
      expect([cmd, r.code, r.code === 0 ? "" : r.stdout]).toEqual([cmd, 0, ""]);
    }
    const backedUp = () =>
      (
        prometheus("query?query=qcloud_backup_last_run_success%3D%3D1").result as {
          metric: Record<string, string>;
        }[]
      )
        .map((r) => `${r.metric.site}/${r.metric.backup}`)
        .filter((x) => x === "lady/nextcloud" || x === "master/headscale").length === 2;
    timings["backup gauges on Prometheus"] = until("the backup gauges of lady and master", backedUp, 60);
    until(
      "BackupTooOld resolved for lady and master",
      () => !firingAlerts().some((a) => a.startsWith("BackupTooOld")),
      60,
    );
    const checked = () =>
      prometheus("query?query=qcloud_backup_check_success%7Bpeer%3D%22lady%22%7D")
        .result.map((r: { value: [number, string] }) => r.value[1])
        .join() === "1";
    until("master's check of lady's repository on Prometheus", checked, 60);
  });

  test("k. the append-only repository refuses lady's own `forget --prune`: its history stays", () => {
    const count = () => (JSON.parse(job("lady", "restic snapshots --json").stdout) as unknown[]).length;
    const before = count();
    // One group for all of lady's snapshots: all but the newest are to go.
    const r = job("lady", "restic forget --keep-last 1 --group-by host --prune");
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/403 Forbidden/);
    expect(count()).toBe(before);
  });

  test("l. npm run restore brings lady's deleted rows and files back, the database logically; Pulumi sees no change", () => {
    const restore = (...args: string[]) =>
      run(
        "npx",
        [
          "ts-node",
          "--transpile-only",
          "scripts/restore.ts",
          "--stack",
          "lady",
          "--ssh-key",
          SSH_KEY,
          ...args,
        ],
        {
          env: { ...process.env, QCLOUD_PROJECT_DIR: path.dirname(project.stackFile("lady")) },
          allowFail: true,
        },
      );
    onServer(
      "lady",
      "docker exec nextcloud-db psql -q -U nextcloud -d nextcloud -c 'DELETE FROM e2e_items WHERE id > 10'",
    );
    onServer("lady", "docker exec nextcloud sh -c 'rm -f /var/www/html/data/e2e/f1*'");
    expect([rows(), files() === knownFiles]).toEqual(["10", false]);
    // Refused, and nothing touched: another service's snapshot, and a service that keeps nothing.
    const traefik = (
      JSON.parse(job("lady", "restic snapshots --json --tag service=traefik").stdout) as {
        short_id: string;
      }[]
    )[0]!;
    const wrong = restore("--service", "nextcloud", "--snapshot", traefik.short_id);
    expect([wrong.code, wrong.stderr.trim()]).toEqual([
      1,
      expect.stringMatching(
        new RegExp(`^restore: snapshot \`${traefik.short_id}\` holds service \`traefik\`, not \`nextcloud\``),
      ),
    ]);
    const nothing = restore("--service", "cadvisor");
    expect([nothing.code, nothing.stderr.trim()]).toEqual([
      1,
      "restore: `cadvisor` keeps nothing in the backups (it has no volume)",
    ]);
    expect(rows()).toBe("10");

    const r = timed("restore nextcloud", () => restore("--service", "nextcloud"));
    expect([r.code, r.code === 0 ? "" : r.stdout + r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toMatch(/restore: nextcloud on lady is back from [0-9a-f]{8}, healthy, in [0-9.]+ s/);
    expect([rows(), files() === knownFiles]).toEqual([String(ROWS), true]);
    const running = containers("lady");
    for (const c of model("lady").services.find((s) => s.name === "nextcloud")!.containers) {
      expect([c.name, running.get(c.name)]).toEqual([c.name, `running ${c.healthcheck ? "healthy" : "-"}`]);
    }
    const preview = project.pulumi(["preview", "--expect-no-changes", "--stack", "lady"], {
      allowFail: true,
    });
    expect([preview.code, preview.code === 0 ? "" : preview.stdout]).toEqual([0, ""]);
  });

  test("m. the restore test passes; against a corrupted pack it fails and RestoreTestFailed fires", () => {
    const ok = timed("restore test lady", () => job("lady", "restore-test"));
    expect([ok.code, ok.code === 0 ? "" : ok.stdout]).toEqual([0, ""]);
    // The biggest pack of lady's repository on master: nextcloud's files.
    const dir = "$(docker volume inspect -f '{{.Mountpoint}}' backup-repository-data)/lady/data";
    const pack = onServer("master", `ls -S ${dir}/*/* | head -n1`).stdout.trim();
    onServer(
      "master",
      `cp ${pack} /root/pack.orig && printf 'corrupted' | dd of=${pack} bs=1 seek=4096 conv=notrunc status=none`,
    );
    try {
      const bad = job("lady", "restore-test nextcloud");
      expect(bad.code).not.toBe(0);
      timings["corrupted pack -> RestoreTestFailed firing"] = until(
        "RestoreTestFailed firing for lady/nextcloud",
        () => firingAlerts().includes("RestoreTestFailed lady nextcloud"),
        60,
      );
    } finally {
      onServer("master", `cp /root/pack.orig ${pack} && rm /root/pack.orig`);
    }
    expect(job("lady", "restore-test nextcloud").code).toBe(0);
    until(
      "RestoreTestFailed resolved",
      () => !firingAlerts().some((a) => a.startsWith("RestoreTestFailed")),
      60,
    );
  });

  test("n. the repository's side stopped: lady's next backup fails and its alert fires; started again, it recovers", () => {
    onServer("master", "docker stop backup-repository");
    try {
      const r = timed("backup with the repository down", () => job("lady", "run traefik"));
      expect(r.code).not.toBe(0);
      expect(r.stdout).toContain("the repository on master does not answer");
      timings["repository stopped -> BackupRepositoryUnreachable firing"] = until(
        "BackupRepositoryUnreachable firing for lady",
        () => firingAlerts().includes("BackupRepositoryUnreachable lady master"),
        60,
      );
      expect(firingAlerts()).toContain("BackupFailed lady traefik");
    } finally {
      onServer("master", "docker start backup-repository");
    }
    until(
      "backup-repository healthy",
      () => containers("master").get("backup-repository") === "running healthy",
      90,
    );
    const r = job("lady", "run traefik");
    expect([r.code, r.code === 0 ? "" : r.stdout]).toEqual([0, ""]);
    until(
      "BackupRepositoryUnreachable and BackupFailed resolved",
      () => !firingAlerts().some((a) => /^Backup(RepositoryUnreachable|Failed) lady/.test(a)),
      60,
    );
  });

  test("n1. npm run audit:secrets: no secret of either stack in plain text in state, outputs, engine output or rendered files", () => {
    const r = run(
      "npx",
      [
        ...["ts-node", "--transpile-only", "scripts/audit-secrets.ts", "--stack", "master,lady"],
        // The engine's output of every preview and up so far: no --preview of its own needed.
        ...["--log", project.engineLog],
      ],
      { env: project.env, allowFail: true },
    );
    expect([r.code, r.code === 0 ? "" : r.stdout + r.stderr]).toEqual([0, ""]);
    const [, found, texts] =
      /audit:secrets: (\d+) secret values of master, lady looked for in (\d+) texts: 0 found/.exec(r.stdout)!;
    // Not vacuous: the stacks' generated passwords and keys were found and looked for, in state and logs alike.
    expect(Number(found)).toBeGreaterThan(20);
    expect(Number(texts)).toBeGreaterThan(50);
    // And it does find one: lady's repository password, written where it must not be.
    const planted = path.join(project.dir, "planted.log");
    const password = project.pulumi(["stack", "output", "--show-secrets", "--stack", "lady", "backup"]);
    fs.writeFileSync(planted, `restic -r ... --password ${JSON.parse(password.stdout).password}\n`);
    const caught = run(
      "npx",
      ["ts-node", "--transpile-only", "scripts/audit-secrets.ts", "--stack", "lady", "--log", planted],
      { env: project.env, allowFail: true },
    );
    expect([caught.code, caught.stdout]).toEqual([
      1,
      expect.stringMatching(/^LEAK sha256:\w{12} \(plain\) of .*\n {5}in .*planted\.log$/m),
    ]);
    fs.rmSync(planted);
  });

  test("n2. an SSH connection to a server whose host key changed is refused, for that reason; with its key back it works", () => {
    // Late: it restarts lady's sshd. Docker's ssh checks the stack's pinned key (known_hosts, strict); a refresh
    // makes it connect for every container (a preview alone may not connect at all).
    const server = (cmd: string) => run("docker", ["exec", "qcloud-sandbox-lady", "sh", "-c", cmd]);
    // sshd re-executes itself on SIGHUP and so loads the host key again; its pid file names the listener only.
    const reload = 'kill -HUP "$(cat /run/sshd.pid)"';
    const sshdAnswers = () => {
      for (let i = 0; i < 30; i++) {
        if (onServer("lady", "true", true).code === 0) return;
        run("sleep", ["1"]);
      }
      throw new Error("lady's sshd did not come back within 30 s");
    };
    const preview = () =>
      project.pulumi(["preview", "--refresh", "--run-program", "--stack", "lady"], { allowFail: true });
    const pinned = hostKey("lady");
    server(
      "mkdir -p /root/e2e-host-key && cp -p /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub /root/e2e-host-key/",
    );
    let refused: { code: number; out: string };
    try {
      server(`rm -f /etc/ssh/ssh_host_*key* && ssh-keygen -A >/dev/null && ${reload}`);
      sshdAnswers();
      expect(hostKey("lady")).not.toBe(pinned);
      const r = preview();
      refused = { code: r.code, out: `${r.stdout}${r.stderr}` };
    } finally {
      server(`rm -f /etc/ssh/ssh_host_*key* && cp -p /root/e2e-host-key/* /etc/ssh/ && ${reload}`);
      sshdAnswers();
    }
    expect(refused.code).not.toBe(0);
    // OpenSSH's own reason, through the Docker provider's error.
    expect(refused.out).toContain("REMOTE HOST IDENTIFICATION HAS CHANGED");
    expect(refused.out).toContain("Host key verification failed.");
    expect(hostKey("lady")).toBe(pinned);
    const ok = preview();
    expect([ok.code, `${ok.stdout}${ok.stderr}`]).toEqual([
      0,
      expect.not.stringContaining("Host key verification failed"),
    ]);
  });

  // ------------------------------------------------------------------------------------ disaster recovery
  /** `npm run dr` as the operator runs it, in a project (its stack files, its backend) of their choice. */
  const dr = (from: SandboxProject, ...args: string[]) =>
    run("npx", ["ts-node", "--transpile-only", "scripts/dr.ts", "--ssh-key", SSH_KEY, ...args], {
      env: from.env,
      allowFail: true,
    });
  /** Headscale's registry: each node's id, name, address and tags, and whether it is online. */
  const registry = () =>
    (
      JSON.parse(onServer("master", "docker exec headscale headscale nodes list -o json").stdout) as {
        id: number | string;
        given_name: string;
        ip_addresses: string[];
        tags?: string[];
        online?: boolean;
      }[]
    )
      .map((n) => ({
        id: String(n.id),
        name: n.given_name,
        ips: n.ip_addresses,
        tags: [...(n.tags ?? [])].sort(),
        online: !!n.online,
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  const identities = () => registry().map(({ online: _, ...n }) => n);
  /** Every container of the model runs, healthy where it has a healthcheck. */
  const converged = (site: string) => {
    const running = containers(site);
    const expected = model(site).services.flatMap((s) => s.containers);
    expect([...running.keys()].sort()).toEqual(expected.map((c) => c.name).sort());
    for (const c of expected) {
      expect([c.name, running.get(c.name)]).toEqual([c.name, `running ${c.healthcheck ? "healthy" : "-"}`]);
    }
  };
  const noChanges = () => {
    const r = estate("preview");
    expect([r.code, results(r.report), r.code === 0 ? "" : r.output]).toEqual([
      0,
      { master: ["ok"], lady: ["ok"] },
      "",
    ]);
  };
  const scraped = (site: string) =>
    (
      prometheus(`query?query=up%7Bservice%3D%22node-exporter%22%2Csite%3D%22${site}%22%7D`).result as {
        value: [number, string];
      }[]
    ).some((r) => r.value[1] === "1");
  const siteDownFiring = (site: string) =>
    (prometheus("alerts").alerts as { labels: Record<string, string>; state: string }[]).some(
      (a) => a.labels.alertname === "SiteDown" && a.labels.site === site && a.state === "firing",
    );

  test("t. DR, lady lost for good: rebuilt on a new server at a new address from its stack file and backups, with her data, her tailnet identity and nothing left to change", () => {
    // Known data, backed up: what the newest snapshot must bring back.
    onServer(
      "lady",
      `docker exec nextcloud-db psql -v ON_ERROR_STOP=1 -q -U nextcloud -d nextcloud -c "INSERT INTO e2e_items VALUES (${ROWS + 1}, 'before the loss')"`,
    );
    onServer("lady", "docker exec nextcloud sh -c 'echo before-the-loss >/var/www/html/data/e2e/marker'");
    const data = () => [
      rows(),
      files(),
      onServer("lady", "docker exec nextcloud cat /var/www/html/data/e2e/marker").stdout,
    ];
    const known = data();
    expect(known[0]).toBe(String(ROWS + 1));
    expect(job("lady", "run").code).toBe(0);
    const before = identities();
    expect(before.filter((n) => n.name.startsWith("lady")).map((n) => n.name)).toEqual([
      "lady",
      "lady-egress-backup",
      "lady-egress-promtail",
    ]);

    // The server is gone: its container and its Docker volume (every container, image and volume on it).
    timed("DR lady: server destroyed", () => run("bash", ["scripts/sandbox/server.sh", "down", "lady"]));
    // A blank server at a new address (its own SSH port, network address and host key).
    timed("DR lady: blank server up", () =>
      run("bash", ["scripts/sandbox/server.sh", "up", "lady-b", "2203"]),
    );
    const moved = [
      "--to",
      "127.0.0.1",
      "--port",
      "2203",
      "--host-key",
      hostKey("lady-b"),
      "--endpoint",
      serverAddress("lady-b"),
    ];
    const stackBefore = fs.readFileSync(project.stackFile("lady"), "utf8");
    // Refused, changing nothing: another site's server (master's), even with --force (the estate refuses two sites on
    // one server, naming both files); a server that holds data.
    const other = dr(
      project,
      "--stack",
      "lady",
      "--to",
      "127.0.0.1",
      "--port",
      "2201",
      "--host-key",
      hostKey("master"),
      "--force",
    );
    expect([other.code, other.stderr.trim()]).toEqual([
      2,
      "dr: --to: Pulumi.master.yaml: `qui3tly-cloud:site.host.address`: `127.0.0.1:2201` is site `lady`'s server too (Pulumi.lady.yaml at `qui3tly-cloud:site.host.address`); expected a server of each site's own: two stacks on one server remove each other's containers",
    ]);
    onPort(2203, "docker volume create e2e-leftover >/dev/null");
    const busy = dr(project, "--stack", "lady", ...moved);
    expect([busy.code, busy.stderr]).toEqual([
      1,
      expect.stringMatching(
        /^dr: the server at 127\.0\.0\.1:2203 is not blank: it holds 1 volume \(e2e-leftover\)\..*--force/,
      ),
    ]);
    onPort(2203, "docker volume rm e2e-leftover >/dev/null");
    expect(fs.readFileSync(project.stackFile("lady"), "utf8")).toBe(stackBefore);

    const r = timed("DR lady", () => dr(project, "--stack", "lady", ...moved));
    console.log(r.stdout);
    expect([r.code, r.code === 0 ? "" : r.stdout + r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toMatch(/^dr: site lady recovered$/m);
    for (const phase of [
      "check",
      "bootstrap",
      "reconcile",
      "images, volumes; snapshots fetched",
      "place",
      "databases",
      "converge",
      "health",
      "followers",
      "total",
    ])
      expect(r.stdout).toMatch(new RegExp(`^  ${phase.replace(/[,;]/g, ".")} +[0-9.]+ s$`, "m"));
    moveSite("lady", 2203);

    // The stack file follows the new server; every container runs and is healthy; the data is back.
    const file = YAML.parse(fs.readFileSync(project.stackFile("lady"), "utf8")).config[SITE_KEY];
    expect([file.host.port, file.host.hostKey, file.mesh.wireguard.endpoint]).toEqual([
      2203,
      hostKey("lady-b"),
      serverAddress("lady-b"),
    ]);
    converged("lady");
    expect(data()).toEqual(known);
    // Her nodes are back with their old identities (ids, names, addresses, tags): no new registration.
    timings["DR lady: nodes online"] = until(
      "lady's nodes online",
      () =>
        registry()
          .filter((n) => n.name.startsWith("lady"))
          .every((n) => n.online),
      120,
    );
    expect(identities()).toEqual(before);
    // Master's Prometheus scrapes her again; SiteDown, which fired while she was gone, resolves.
    until("master scrapes lady again", () => scraped("lady"), 120);
    expect(
      prometheus(
        "query?query=max_over_time(ALERTS%7Balertname%3D%22SiteDown%22%2Csite%3D%22lady%22%2Calertstate%3D%22firing%22%7D%5B30m%5D)",
      ).result,
    ).toHaveLength(1);
    timings["DR lady: SiteDown resolved"] = until(
      "SiteDown resolved for lady",
      () => !siteDownFiring("lady"),
      120,
    );
    // Through the tunnel at her new endpoint, master reaches her again.
    expect(onServer("master", "docker exec wireguard wg show wg0 endpoints").stdout).toContain(
      `${serverAddress("lady-b")}:`,
    );
    noChanges();
  });

  test("u. DR, master lost for good, the laptop too: from a fresh checkout of the stack files and a state export, the control plane is rebuilt and the tailnet, backups and alerts go on with no new key", () => {
    // What the operator keeps apart from the laptop: the stack files (the repository), the state (an export),
    // the passphrase and the SSH key. Nothing else of this project's directory is used from here on.
    const kit = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-dr-kit-"));
    for (const site of ["master", "lady"]) {
      project.pulumi(["stack", "export", "--stack", site, "--file", path.join(kit, `${site}.json`)]);
    }
    const fresh = new SandboxProject(fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-dr-")), project.env);
    fs.mkdirSync(path.join(fresh.dir, "project"));
    for (const f of ["Pulumi.master.yaml", "Pulumi.lady.yaml"]) {
      fs.copyFileSync(project.stackFile(f.split(".")[1]!), path.join(fresh.dir, "project", f));
    }
    fs.writeFileSync(
      path.join(fresh.dir, "project", "Pulumi.yaml"),
      YAML.stringify({
        ...YAML.parse(fs.readFileSync(path.join(project.dir, "project", "Pulumi.yaml"), "utf8")),
        main: path.relative(path.join(fresh.dir, "project"), REPO),
      }),
    );
    fs.copyFileSync(path.join(project.dir, "passphrase"), path.join(fresh.dir, "passphrase"));

    expect(job("master", "run").code).toBe(0);
    const before = identities();
    const keys = () =>
      onServer("master", "docker exec headscale headscale preauthkeys list -o json").stdout.replace(
        /"expiration":[^,]*,?/g,
        "",
      );
    const preauth = keys();

    timed("DR master: server destroyed", () => run("bash", ["scripts/sandbox/server.sh", "down", "master"]));
    timed("DR master: blank server up", () =>
      run("bash", ["scripts/sandbox/server.sh", "up", "master", "2201"]),
    );
    const r = timed("DR master", () =>
      dr(fresh, "--stack", "master", "--state", path.join(kit, "master.json")),
    );
    console.log(r.stdout);
    expect([r.code, r.code === 0 ? "" : r.stdout + r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toMatch(/^  tailnet: every node online +[0-9.]+ s$/m);
    // The repository master kept for lady was not backed up (its second copy is not master's job): it starts
    // again, and the recovery started lady's first backup into it.
    expect(r.stdout).toMatch(
      /^dr: lady: its repository on master is new; its first backup into it runs now/m,
    );
    // The rest of the drill, and of the e2e, runs from the fresh checkout.
    fresh.pulumi(["stack", "init", "lady", "--secrets-provider", "passphrase"]);
    fresh.pulumi(["stack", "import", "--stack", "lady", "--file", path.join(kit, "lady.json")]);
    fs.rmSync(project.dir, { recursive: true, force: true });
    project = fresh;
    fs.rmSync(kit, { recursive: true, force: true });

    converged("master");
    // Headscale's registry and keys are back, not re-created: every node keeps its id, name, address and tags, and
    // lady's come back online with no new key and no step on lady.
    expect(keys()).toBe(preauth);
    timings["DR master: every node online"] = until(
      "every node of the estate online (the admin's laptop of step i. is gone)",
      () => registry().every((n) => n.online || n.tags.length === 0),
      180,
    );
    expect(identities()).toEqual(before);
    // Lady's backups go on into her repository on master: the first one, which the recovery started in the
    // background, lands there.
    const ladySnapshots = () => {
      const kept = onServer("master", "qcloud-backup kept lady snapshots --json", true);
      return kept.code === 0 && JSON.parse(kept.stdout).length > 0;
    };
    try {
      timings["DR master: lady's first backup into the new repository"] = until(
        "lady's first backup into her new repository on master",
        ladySnapshots,
        180,
      );
    } catch (e) {
      throw new Error(
        `${(e as Error).message}\n${onServer("lady", `tail -n 30 ${BACKUP_LOG}`, true).stdout}`,
      );
    }
    // Alerts route again: Prometheus scrapes lady and hands its alerts to Alertmanager.
    until("master scrapes lady again", () => scraped("lady"), 120);
    expect(prometheus("alertmanagers").activeAlertmanagers).toHaveLength(1);
    noChanges();
  });

  test("o. drift: a container removed behind Pulumi's back is reported by `estate drift`, its gauge and DriftDetected say so on master's Prometheus, and `estate up` puts it back", () => {
    const drift = () =>
      (
        prometheus("query?query=qcloud_drift_resources%7Bsite%3D%22lady%22%7D").result as {
          value: [number, string];
        }[]
      )[0]?.value[1];
    const alert = () =>
      (prometheus("alerts").alerts as { labels: Record<string, string>; state: string }[]).some(
        (a) => a.labels.alertname === "DriftDetected" && a.labels.site === "lady" && a.state === "firing",
      );
    onServer("lady", "docker rm -f nextcloud-exporter");
    const found = timed("estate drift (drifted)", () => estate("drift", "--sites", "lady"));
    expect([found.code, results(found.report)]).toEqual([
      3,
      { lady: ["drift", "create lady-nextcloud-exporter"] },
    ]);
    timings["drift -> DriftDetected firing"] = until(
      "DriftDetected firing for lady",
      () => drift() === "1" && alert(),
      120,
    );

    const repaired = timed("estate up (refresh)", () => estate("up", "--refresh", "--sites", "lady"));
    expect([repaired.code, results(repaired.report)]).toEqual([
      0,
      { lady: ["ok", "create lady-nextcloud-exporter"] },
    ]);
    expect(containers("lady").get("nextcloud-exporter")).toMatch(/^running /);
    const clean = timed("estate drift (clean)", () => estate("drift", "--sites", "lady"));
    expect([clean.code, results(clean.report)]).toEqual([0, { lady: ["ok"] }]);
    until("qcloud_drift_resources back to 0 for lady", () => drift() === "0" && !alert(), 120);
  });

  test("p. changing one service's setting replaces only that container; its volume's data survives", () => {
    onServer("lady", "docker exec nextcloud-redis sh -c 'echo kept > /data/e2e-marker'");
    const ids = () => onServer("lady", "docker ps -q --no-trunc | sort").stdout;
    const before = ids();
    editSite(
      "lady",
      (s) =>
        (s.services.nextcloud = { ...s.services.nextcloud, containers: { redis: { env: { E2E: "1" } } } }),
    );
    // The review a PR shows: exactly that container, its volume kept, its (secret) env changed and never shown.
    const md = path.join(project.dir, "review.md");
    const review = estate("preview", "--sites", "lady", "--markdown", md);
    expect([review.code, results(review.report)]).toEqual([
      2,
      { lady: ["changes", "replace lady-nextcloud-redis"] },
    ]);
    const text = fs.readFileSync(md, "utf8");
    const line =
      "- lady: container `nextcloud-redis` is replaced (envs (secret)); its volume `nextcloud-redis-data` is kept";
    expect(text.split("#### ")[1]).toBe(`:warning: Touches data\n\n${line}\n\n`);
    const audit = run(
      "npx",
      ["ts-node", "--transpile-only", "scripts/audit-secrets.ts", "--stack", "lady", "--log", md],
      { env: project.env, allowFail: true },
    );
    expect([audit.code, audit.code === 0 ? "" : audit.stdout]).toEqual([0, ""]);
    expect(timed("one-container change", () => up("lady")).code).toBe(0);
    const after = ids();
    // Exactly one container id changed.
    const gone = before.split("\n").filter((id) => !after.includes(id));
    expect(gone).toHaveLength(1);
    expect(onServer("lady", "docker exec nextcloud-redis cat /data/e2e-marker").stdout.trim()).toBe("kept");
  });

  test("p1. the review calls out data first: a volume-bearing service removed from lady's stack file, previewed only", () => {
    const volumes = model("lady")
      .services.find((s) => s.name === "nextcloud")!
      .containers.flatMap((c) => c.ownedVolumes);
    expect(volumes.length).toBeGreaterThan(0);
    const saved = editSite("lady", (s) => (s.services = { ...s.services, nextcloud: false }));
    try {
      const md = path.join(project.dir, "review-delete.md");
      const r = estate("preview", "--sites", "lady", "--markdown", md);
      expect(r.code).toBe(2);
      const data = fs.readFileSync(md, "utf8").split("#### ")[1]!;
      expect(data.split("\n")[0]).toBe(":warning: Touches data");
      for (const v of volumes) {
        expect(data).toContain(
          `- lady: volume \`${v}\` leaves the stack; its data stays on the server (retained on delete) until it is pruned by hand`,
        );
      }
    } finally {
      fs.writeFileSync(project.stackFile("lady"), saved);
    }
  });

  test("p2. a change the policy pack refuses fails `estate preview` with the rule's message, and nothing changes", () => {
    const state = () => project.pulumi(["stack", "export", "--stack", "lady"]).stdout;
    const before = { state: JSON.parse(state()).deployment.resources.length, ps: containers("lady") };
    const saved = editSite("lady", (s) => {
      s.services.nextcloud = {
        ...s.services.nextcloud,
        containers: { redis: { env: { REDIS_PASSWORD: "hunter2" } } },
      };
    });
    try {
      expect(
        run("npx", ["ts-node", "--transpile-only", "scripts/check.ts", project.stackFile("lady")]).code,
      ).toBe(0);
      const md = path.join(project.dir, "review-policy.md");
      const r = estate("preview", "--sites", "lady", "--markdown", md);
      expect([r.code, results(r.report).lady![0]]).toEqual([1, "failed"]);
      expect(fs.readFileSync(md, "utf8")).toContain(
        "#### :no_entry: Refused by policy\n\n- lady: `secret-env-not-plain` on container `nextcloud-redis`: ",
      );
      expect(r.output).toContain("passes `REDIS_PASSWORD` in plain text: the catalog marks it secret");
      expect(JSON.parse(state()).deployment.resources.length).toBe(before.state);
      expect(containers("lady")).toEqual(before.ps);
    } finally {
      fs.writeFileSync(project.stackFile("lady"), saved);
    }
  });

  describe("x. a third site from its stack file alone: madam, an hcloud server made through the stand-in", () => {
    const madamIp = () => serverAddress("madam");

    test("x1. `estate up` with Pulumi.madam.yaml added: the control plane first, then madam's server created, its cloud-init run, Docker bootstrapped over SSH, every container running and healthy", () => {
      timed("hcloud stand-in", () => project.initHcloud("madam", ensureHcloudApi()));
      const r = timed("estate up (madam added)", () => estate("up"));
      expect([r.code, r.report.sites.map((s) => [s.site, s.result])]).toEqual([
        0,
        [
          ["master", "ok"],
          ["lady", "ok"],
          ["madam", "ok"],
        ],
      ]);
      // Through the stand-in: the server, its firewall and its SSH key.
      const made = r.report.sites
        .find((s) => s.site === "madam")!
        .resources.filter((x) => x.type.startsWith("hcloud:"))
        .map((x) => `${x.op} ${x.type}`)
        .sort();
      expect(made).toEqual([
        "create hcloud:index/firewall:Firewall",
        "create hcloud:index/server:Server",
        "create hcloud:index/sshKey:SshKey",
      ]);
      // cloud-init ran the program's user data: its drop-in is there, its final stage is done, and Docker runs
      // because its runcmd started it.
      const init = onServer(
        "madam",
        "cloud-init status; cat /etc/systemd/system/docker.service.d/*.conf",
      ).stdout;
      expect(init).toMatch(/^status: done\n/);
      expect(init).toContain("169.254.169.254/32 -j DROP");
      const running = containers("madam");
      const expected = model("madam").services.flatMap((s) => s.containers);
      expect([...running.keys()].sort()).toEqual(expected.map((c) => c.name).sort());
      for (const c of expected) {
        expect([c.name, running.get(c.name)]).toEqual([c.name, `running ${c.healthcheck ? "healthy" : "-"}`]);
      }
    });

    test("x2. madam on the tailnet with its tags, scraped by master's Prometheus, its tunnel to master and lady carrying traffic", () => {
      const nodes = JSON.parse(
        onServer("master", "docker exec headscale headscale nodes list -o json").stdout,
      ) as { given_name: string; online: boolean; tags?: string[] }[];
      const madam = nodes.find((n) => n.given_name === "madam");
      expect([madam?.online, madam?.tags?.sort()]).toEqual([true, ["tag:role-services", "tag:site-madam"]]);
      timings["madam scraped"] = until(
        "up{site=madam, service=node-exporter} is 1",
        () =>
          (
            prometheus("query?query=up%7Bsite%3D%22madam%22%2Cservice%3D%22node-exporter%22%7D").result as {
              value: [number, string];
            }[]
          )[0]?.value[1] === "1",
        120,
      );
      // master and lady had no endpoint for madam: they learnt it from madam's handshakes.
      for (const site of ["master", "lady"]) {
        until(
          `${site} reaches madam's SSH through the tunnel`,
          () => onServer(site, "timeout 5 bash -c '</dev/tcp/10.90.0.3/22'", true).code === 0,
          90,
        );
        const endpoint = onServer(site, "docker exec wireguard wg show wg0 endpoints").stdout;
        expect(endpoint).toContain(`${madamIp()}:`);
      }
    });

    test("x3. madam's firewall: SSH from this machine only, a listening port it does not open is closed from outside", () => {
      onServer("madam", "nohup python3 -m http.server 8099 >/dev/null 2>&1 & sleep 1");
      try {
        const ip = madamIp();
        expect(
          onServer("madam", "curl -fsS -o /dev/null -w '%{http_code}' http://127.0.0.1:8099/").stdout,
        ).toBe("200");
        const from = (site: string | undefined, port: number) =>
          (site === undefined
            ? run("timeout", ["5", "bash", "-c", `</dev/tcp/${ip}/${port}`], { allowFail: true })
            : onServer(site, `timeout 5 bash -c '</dev/tcp/${ip}/${port}'`, true)
          ).code;
        // 124: timed out, the packets dropped; 0: connected.
        expect([from(undefined, 22), from(undefined, 8099), from("master", 22), from("lady", 8099)]).toEqual([
          0, 124, 124, 124,
        ]);
      } finally {
        onServer("madam", "pkill -f 'http.server 8099'", true);
      }
    });

    test("x4. `npm run move` carries uisp from lady to madam with its data and its generated passwords, through its final backup; lady keeps its volumes; the downtime measured", () => {
      const sql = (site: string, q: string) =>
        onServer(site, `docker exec uisp-postgres psql -U unms -d unms -Atc "${q}"`).stdout.trim();
      sql("lady", "CREATE TABLE e2e_move (v text); INSERT INTO e2e_move VALUES ('moved')");
      const exported = "/home/app/unms/data/unms-backups/e2e-move";
      onServer("lady", `docker exec uisp sh -c 'mkdir -p $(dirname ${exported}) && echo kept > ${exported}'`);
      // Its generated passwords go with it (compared by their hashes, never shown).
      const secretsOf = (site: string) =>
        onServer(
          site,
          `for c in uisp uisp-postgres; do docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' $c | grep -E '^(UNMS_POSTGRES_PASSWORD|UNMS_TOKEN|POSTGRES_PASSWORD)=' | sha256sum; done`,
        ).stdout;
      const before = secretsOf("lady");
      const r = timed("move uisp lady -> madam", () =>
        run(
          "npx",
          [
            "ts-node",
            "--transpile-only",
            "scripts/move.ts",
            ...["--service", "uisp", "--from", "lady", "--to", "madam"],
          ],
          { env: project.env, allowFail: true },
        ),
      );
      expect([r.code, r.code === 0 ? "" : r.stdout + r.stderr]).toEqual([0, ""]);
      // Measured by the move's prober (its target, under 60 s, is bench:expand's to report).
      timings["move: uisp's downtime"] = Number(
        /downtime \(uisp\.qui3tly\.cloud\): ([0-9.]+) s/.exec(r.stdout)?.[1],
      );
      expect(timings["move: uisp's downtime"]).toBeGreaterThan(0);
      expect([
        sql("madam", "SELECT v FROM e2e_move"),
        onServer("madam", `docker exec uisp cat ${exported}`).stdout.trim(),
      ]).toEqual(["moved", "kept"]);
      expect(secretsOf("madam")).toBe(before);
      const running = containers("madam");
      for (const c of model("madam").services.flatMap((s) => s.containers)) {
        expect([c.name, running.get(c.name)]).toEqual([c.name, `running ${c.healthcheck ? "healthy" : "-"}`]);
      }
      // Gone from lady, its volumes kept until pruned by hand.
      expect([...containers("lady").keys()].filter((c) => c.startsWith("uisp"))).toEqual([]);
      const volumes = onServer("lady", "docker volume ls -q").stdout.split("\n");
      expect(volumes).toEqual(expect.arrayContaining(["uisp-data", "uisp-postgres-data"]));
      for (const site of ["master", "lady", "madam"]) {
        const p = project.pulumi(["preview", "--expect-no-changes", "--stack", site], { allowFail: true });
        expect([site, p.code, p.code === 0 ? "" : p.stdout]).toEqual([site, 0, ""]);
      }
    });

    test("x5. destroy madam: its server deleted through the stand-in; master and lady untouched", () => {
      const r = timed("destroy madam", () =>
        project.pulumi(["destroy", "--run-program", "--yes", "--skip-preview", "--stack", "madam"], {
          allowFail: true,
        }),
      );
      expect([r.code, r.code === 0 ? "" : r.stdout + r.stderr]).toEqual([0, ""]);
      expect(run("docker", ["container", "inspect", "qcloud-sandbox-madam"], { allowFail: true }).code).toBe(
        1,
      );
      for (const site of ["master", "lady"]) {
        const p = project.pulumi(["preview", "--expect-no-changes", "--stack", site], { allowFail: true });
        expect([site, p.code, p.code === 0 ? "" : p.stdout]).toEqual([site, 0, ""]);
      }
    });
  });

  /**
   * A tailnet client on this machine's sandbox network: the real tailscaled (the sandbox's Tailscale image) with a TUN
   * device, as an admin's laptop runs it, accepting routes and the tailnet's DNS, logged in with an ephemeral key as
   * a user of the control plane's `group:admins`. Its container's name; `docker rm -f` ends it.
   */
  function tailnetClient(): string {
    const hs = (args: string) => onServer("master", `docker exec headscale headscale ${args}`).stdout;
    onServer("master", `docker exec headscale headscale users create ${SANDBOX_ADMIN}`, true); // or it exists
    const users = JSON.parse(hs("users list -o json")) as { id: number; name: string }[];
    const user = users.find((u) => u.name === SANDBOX_ADMIN)!;
    const key = (
      JSON.parse(hs(`preauthkeys create --user ${user.id} --ephemeral --expiration 1h -o json`)) as {
        key: string;
      }
    ).key;
    const name = "qcloud-sandbox-client";
    run("docker", ["rm", "-f", name], { allowFail: true });
    // The key in a file, not on a command line that a failure would print.
    const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-client-"));
    fs.writeFileSync(path.join(keyDir, "env"), `TS_AUTHKEY=${key}\n`, { mode: 0o600 });
    run("docker", [
      ...["run", "-d", "--name", name, "--network", "qcloud-sandbox", "--env-file", path.join(keyDir, "env")],
      ...["--device", "/dev/net/tun", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW"],
      ...["-e", "TS_USERSPACE=false", "-e", "TS_ACCEPT_DNS=true"],
      ...["-e", "TS_HOSTNAME=ops-client", "-e", "TS_STATE_DIR=/var/lib/tailscale"],
      // The sandbox's Headscale speaks plain HTTP, and its relay with it.
      "-e",
      "TS_DEBUG_USE_DERP_HTTP=1",
      "-e",
      `TS_EXTRA_ARGS=--login-server=http://${serverAddress("master")}:${SANDBOX_HEADSCALE_PORT} --accept-routes`,
      "qcloud-sandbox/standin-tailscale:bookworm",
    ]);
    fs.rmSync(keyDir, { recursive: true, force: true });
    until(
      "the client on the tailnet, with its DNS",
      () =>
        run("docker", ["exec", name, "grep", "-q", "100.100.100.100", "/etc/resolv.conf"], {
          allowFail: true,
        }).code === 0,
      60,
    );
    return name;
  }

  test("e2. lady runs Pi-hole as master's secondary and serves Homepage with master: a record added on master answers on lady within the sync interval, the gauges move; with master's share stopped CrossSiteSyncStale fires and resolves; master's Homepage stopped, each Traefik answers with lady's; with master's server stopped a tailnet client resolves and reaches Homepage through lady, and through master again once it is back", () => {
    // Madam, destroyed in x5, leaves the estate as README "Removing a Hetzner site" says: its stack file goes, and
    // this step's `estate up` revokes its keys on master. Kept, it would be a site whose keys master no longer
    // holds once master is up again (q's destroy of lady renders her tunnel's peers).
    fs.rmSync(project.stackFile("madam"), { force: true });
    const before = editSite("lady", (s) => {
      s.services = { ...s.services, pihole: { follows: "master" }, homepage: { follows: "master" } };
      // An ingress range of her own: her Pi-hole answers the tailnet at its resolver address, not master's.
      s.mesh = { ...s.mesh, ingressSubnet: "10.255.255.240/29" };
    });
    try {
      // The control plane first: its policy gives lady's Pi-hole its flow, and its Pi-hole its share.
      const added = timed("secondary added: estate up", () => estate("up"));
      expect([added.code, added.code === 0 ? "" : added.output]).toEqual([0, ""]);
      expect(added.report.sites.map((s) => `${s.site} ${s.result}`)).toEqual(["master ok", "lady ok"]);
      expect([...containers("master").keys()]).toContain("pihole-share");
      expect([...containers("lady").keys()]).toEqual(
        expect.arrayContaining([
          "pihole",
          "pihole-unbound",
          "tailscale-egress-pihole",
          "homepage",
          "traefik-peer-master",
          "tailscale-egress-traefik",
        ]),
      );
      expect([...containers("master").keys()]).toEqual(
        expect.arrayContaining(["traefik-peer-lady", "tailscale-egress-traefik"]),
      );
      const name = `sync-${Date.now()}.qui3tly.cloud`;
      const answer = (site: string) =>
        onServer(
          site,
          `docker exec pihole dig +short +time=2 +tries=1 @127.0.0.1 ${name}`,
          true,
        ).stdout.trim();
      expect(answer("lady")).toBe("");
      // As Pi-hole's admin UI adds a local DNS record: a line in custom.list, then a reload.
      onServer(
        "master",
        `docker exec pihole sh -c 'echo "10.20.30.40 ${name}" >>/etc/pihole/custom.list && pihole restartdns reload'`,
      );
      expect(answer("master")).toBe("10.20.30.40");
      // Within two runs of the job (a minute apart, cron's step), whenever in its minute the record came.
      timings["record on master -> answered on lady"] = until(
        "lady's Pi-hole answers master's new record",
        () => answer("lady") === "10.20.30.40",
        125,
      );
      const gauge = (metric: string) =>
        (
          prometheus(
            `query?query=${encodeURIComponent(`${metric}{site="lady",peer="master",task="pihole"}`)}`,
          ).result as { value: [number, string] }[]
        ).map((r) => Number(r.value[1]));
      until(
        "the sync gauges of lady on master's Prometheus",
        () => gauge("qcloud_sync_last_run_success")[0] === 1,
        90,
      );
      const lastSuccess = gauge("qcloud_sync_last_success_timestamp_seconds")[0]!;
      expect(Date.now() / 1000 - lastSuccess).toBeLessThan(150);
      expect(gauge("qcloud_sync_interval_seconds")).toEqual([60]);
      // The gauge moves: the next runs succeed too, with nothing new to take.
      until(
        "a later sync's success",
        () => (gauge("qcloud_sync_last_success_timestamp_seconds")[0] ?? 0) > lastSuccess,
        90,
      );
      const syncAlert = (alert: string) =>
        (prometheus("alerts").alerts as { labels: Record<string, string>; state: string }[]).some(
          (a) => a.labels.alertname === alert && a.labels.site === "lady" && a.state === "firing",
        );
      expect([syncAlert("CrossSiteSyncStale"), syncAlert("CrossSiteSyncMissing")]).toEqual([false, false]);

      // The sync broken at its source: lady keeps answering what it has, and the alert says so.
      onServer("master", "docker stop pihole-share");
      timings["share stopped -> CrossSiteSyncStale firing"] = until(
        "CrossSiteSyncStale firing for lady",
        () => syncAlert("CrossSiteSyncStale"),
        240,
      );
      expect(answer("lady")).toBe("10.20.30.40");
      expect(gauge("qcloud_sync_last_run_success")).toEqual([0]);
      expect(onServer("lady", "tail -n 5 /var/log/qcloud-sync.log").stdout).toMatch(
        /manifest .* did not come/,
      );
      onServer("master", "docker start pihole-share");
      timings["share started -> CrossSiteSyncStale resolved"] = until(
        "CrossSiteSyncStale resolved for lady",
        () => !syncAlert("CrossSiteSyncStale"),
        150,
      );

      // A tailnet client (the real tailscaled with a TUN device, as an admin's laptop runs it; its resolver is
      // MagicDNS's 100.100.100.100) resolves through the Pi-holes, each at its site's resolver address; with
      // master's server stopped (its Headscale, its DERP relay and its Pi-hole with it), through lady's.
      const MASTER_RESOLVER = ingressAddresses(model("master").mesh.ingressSubnet).resolver;
      const LADY_RESOLVER = ingressAddresses(model("lady").mesh.ingressSubnet).resolver;
      const client = tailnetClient();
      try {
        /** The record's address as `server` answers it; "" for no answer (dig prints its error on stdout). */
        const dig = (server: string, host = name) => {
          const r = run(
            "docker",
            ["exec", client, "dig", "+short", "+time=2", "+tries=1", `@${server}`, host],
            {
              allowFail: true,
            },
          );
          return r.code === 0 ? r.stdout.trim() : "";
        };
        const status = run("docker", ["exec", client, "tailscale", "dns", "status"]).stdout;
        expect(status.indexOf(MASTER_RESOLVER)).toBeGreaterThan(-1);
        // The primary first, as Headscale lists them (the client asks them all at once, and takes the first answer).
        expect(status.indexOf(LADY_RESOLVER)).toBeGreaterThan(status.indexOf(MASTER_RESOLVER));
        expect([dig("100.100.100.100"), dig(MASTER_RESOLVER), dig(LADY_RESOLVER)]).toEqual([
          "10.20.30.40",
          "10.20.30.40",
          "10.20.30.40",
        ]);

        // Homepage, served by both: each Pi-hole answers its name with its own site's node (the client takes
        // whichever answers first); either site's Traefik sends it to the primary's instance while that is healthy.
        const home = model("master").routes.find((r) => r.service === "homepage")!.host;
        const nodeAddress = (site: string) =>
          onServer(site, "docker exec tailscale tailscale ip -4").stdout.trim();
        const [MASTER_NODE, LADY_NODE] = [nodeAddress("master"), nodeAddress("lady")];
        expect([dig(MASTER_RESOLVER, home), dig(LADY_RESOLVER, home)]).toEqual([MASTER_NODE, LADY_NODE]);
        expect([MASTER_NODE, LADY_NODE]).toContain(dig("100.100.100.100", home));
        let request = 0;
        /**
         * `<HTTP status> <address>` of a request for Homepage as the client makes it (through a site's node `at`, if
         * given), and the path it asked for: a site's Traefik logs it where it served it for a peer.
         */
        const get = (at?: string) => {
          const p = `/?e2e=${Date.now()}-${request++}`;
          const r = run(
            "docker",
            [
              ...["exec", client, "curl", "-sk", "--max-time", "3", "-o", "/dev/null"],
              ...["-w", "%{http_code} %{remote_ip}", ...(at ? ["--resolve", `${home}:443:${at}`] : [])],
              `https://${home}${p}`,
            ],
            { allowFail: true },
          );
          return { got: r.stdout.trim(), path: p };
        };
        /** Whether `site`'s Traefik served that request for a peer (on its `peer` entrypoint: its own instance). */
        const servedForPeer = (site: string, p: string) =>
          onServer(site, "docker logs traefik 2>&1")
            .stdout.split("\n")
            .some((l) => l.includes('"entryPointName":"peer"') && l.includes(`"RequestPath":"${p}"`));
        /** Whether a request through `at`'s node is answered, by `site`'s instance for its peer's Traefik. */
        const answeredFor = (at: string, site: string) => {
          const r = get(at);
          return r.got === `200 ${at}` && servedForPeer(site, r.path);
        };
        // Through lady's Traefik, master's instance answers: the primary's first.
        until("lady's Traefik answers with master's Homepage", () => answeredFor(LADY_NODE, "master"), 10);
        expect(get(MASTER_NODE).got).toBe(`200 ${MASTER_NODE}`);
        // Master's instance stopped: master's Traefik answers through lady's, and lady's with her own.
        onServer("master", "docker stop homepage");
        try {
          const t = Date.now();
          until("master's Traefik answers with lady's Homepage", () => answeredFor(MASTER_NODE, "lady"), 30);
          timings["master's Homepage stopped -> answered through lady's"] = (Date.now() - t) / 1000;
          until("lady's Traefik answers with her own", () => get(LADY_NODE).got === `200 ${LADY_NODE}`, 30);
          timings["master's Homepage stopped -> lady's Traefik answers (her own)"] = (Date.now() - t) / 1000;
          // What SharedRouteDegraded watches: master's Traefik reports its own instance down, on its Prometheus.
          const up = encodeURIComponent(
            'traefik_service_server_up{site="master",service="traefik",exported_service="homepage-web-local@file"}',
          );
          until(
            "master's Traefik reports its own Homepage down",
            () =>
              (prometheus(`query?query=${up}`).result as { value: [number, string] }[]).some(
                (r) => r.value[1] === "0",
              ),
            30,
          );
        } finally {
          onServer("master", "docker start homepage");
        }
        until(
          "master's Homepage healthy again",
          () => containers("master").get("homepage") === "running healthy",
          60,
        );

        // A path to lady's node, as a client that has used it has: master's relay goes down with master.
        run("docker", ["exec", client, "tailscale", "ping", "-c", "1", "--timeout", "10s", "lady"]);
        // As a power cut: no shutdown, master's server (its Headscale, its relay, its Pi-hole) gone at once.
        const t0 = Date.now();
        run("docker", ["stop", "-t", "0", "qcloud-sandbox-master"]);
        try {
          until(
            "the client resolves through lady's Pi-hole",
            () => dig("100.100.100.100") === "10.20.30.40",
            30,
          );
          timings["master stopped -> a name answered (through lady)"] = (Date.now() - t0) / 1000;
          // Lady's Traefik, master's instance gone with master: her own.
          until(
            "lady's Traefik serves Homepage with master down",
            () => get(LADY_NODE).got === `200 ${LADY_NODE}`,
            30,
          );
          timings["master stopped -> Homepage answered by lady's Traefik"] = (Date.now() - t0) / 1000;
          // The client's own way there: the name, answered by lady's Pi-hole alone, to lady's node.
          expect(dig("100.100.100.100", home)).toBe(LADY_NODE);
          let last = get();
          until(
            "the client reaches Homepage by its name, through lady",
            () => (last = get()).got === `200 ${LADY_NODE}`,
            30,
          );
          timings["master stopped -> Homepage answered by its name (through lady)"] =
            (Date.now() - t0) / 1000;
          expect(last.got).toBe(`200 ${LADY_NODE}`);
          const t = Date.now();
          expect(dig("100.100.100.100")).toBe("10.20.30.40");
          timings["a query with master down"] = (Date.now() - t) / 1000;
          expect(dig(MASTER_RESOLVER)).toBe("");
        } finally {
          const t1 = Date.now();
          run("docker", ["start", "qcloud-sandbox-master"]);
          // Back to the primary with no step of anyone's: master's Pi-hole answers its address again.
          until(
            "master's Pi-hole answers the client again",
            () => dig(MASTER_RESOLVER) === "10.20.30.40",
            240,
          );
          timings["master started -> its Pi-hole answers again"] = (Date.now() - t1) / 1000;
          // Back to the primary's instance with no step of anyone's: lady's Traefik sends it to master's again.
          until(
            "lady's Traefik answers with master's Homepage again",
            () => answeredFor(LADY_NODE, "master"),
            240,
          );
          timings["master started -> Homepage served by master's again"] = (Date.now() - t1) / 1000;
        }
        expect(dig("100.100.100.100")).toBe("10.20.30.40");
      } finally {
        run("docker", ["rm", "-f", client], { allowFail: true });
      }
      // Master whole again: every container healthy, and lady's sync through it again (her gauge, which master's
      // Prometheus has scraped from lady since: master reaches her again too).
      until(
        "master's containers all up again",
        () => [...containers("master").values()].every((v) => v === "running healthy" || v === "running -"),
        180,
      );
      const again = Date.now() / 1000;
      until(
        "lady's sync succeeds again after master's return",
        () => (gauge("qcloud_sync_last_success_timestamp_seconds")[0] ?? 0) > again,
        150,
      );
    } finally {
      // The steps after this one know lady without a Pi-hole: removed again (its volumes stay, as every removal's).
      fs.writeFileSync(project.stackFile("lady"), before);
      const removed = timed("secondary removed: estate up", () => estate("up"));
      expect([removed.code, removed.code === 0 ? "" : removed.output]).toEqual([0, ""]);
    }
    expect([...containers("lady").keys()]).not.toContain("pihole");
    expect([...containers("master").keys()]).not.toContain("pihole-share");
    expect(onServer("lady", "ls /etc/cron.d").stdout).not.toContain("qcloud-sync");
  });

  test("q. destroy removes the containers; stateful volumes and their data survive", () => {
    const volumes = model("lady").services.flatMap((s) => s.containers.flatMap((c) => c.ownedVolumes));
    const r = timed("destroy lady", () =>
      // The program writes the SSH key for the run (components/host.ts): destroy must run it.
      project.pulumi(["destroy", "--run-program", "--yes", "--skip-preview", "--stack", "lady"]),
    );
    expect(r.code).toBe(0);
    expect(containers("lady").size).toBe(0);
    const left = onServer("lady", "docker volume ls -q").stdout.trim().split("\n");
    expect(left).toEqual(expect.arrayContaining(volumes));
    const redis = model("lady")
      .services.find((s) => s.name === "nextcloud")!
      .containers.find((c) => c.key === "redis")!;
    expect(
      onServer(
        "lady",
        `docker run --rm -v nextcloud-redis-data:/d --entrypoint cat ${redis.image} /d/e2e-marker`,
      ).stdout.trim(),
    ).toBe("kept");
  });

  test("r. a broken stack file fails preview and up with the clear error, and nothing changes", () => {
    const state = () => project.pulumi(["stack", "export", "--stack", "master"]).stdout;
    const before = { state: state(), ps: containers("master") };
    const saved = editSite(
      "master",
      (s) => (s.services = { ...s.services, grafana: { resources: { memory: "lots" } } }),
    );
    try {
      for (const cmd of [["preview"], ["up", "--yes", "--skip-preview"]]) {
        const r = project.pulumi([...cmd, "--stack", "master"], { allowFail: true });
        expect(r.code).not.toBe(0);
        expect(r.stdout + r.stderr).toContain(
          "Pulumi.master.yaml: `qui3tly-cloud:site.services.grafana.resources.memory`: expected a size such as `512m` or `2g`",
        );
      }
      expect(JSON.parse(state()).deployment.resources.length).toBe(
        JSON.parse(before.state).deployment.resources.length,
      );
      expect(containers("master")).toEqual(before.ps);
    } finally {
      fs.writeFileSync(project.stackFile("master"), saved);
    }
  });

  test("s. an unreachable host fails with the preflight error", () => {
    const saved = editSite("master", (s) => (s.host.port = 2299));
    try {
      const r = project.pulumi(["preview", "--stack", "master"], { allowFail: true });
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toContain(
        "site `master`: cannot reach 127.0.0.1:2299 (ECONNREFUSED); expected an SSH server there.",
      );
    } finally {
      fs.writeFileSync(project.stackFile("master"), saved);
    }
  });
});
