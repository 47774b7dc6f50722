import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import YAML from "yaml";
import { fileSource, mapSource } from "../config/source";
import { TEST_SEAL_KEYS, servicesSite } from "./fixtures";
import { loadProjectSite, projectEstate } from "../model/estate";
import { loadSite } from "../model/site";
import { egressNode, estateFlows } from "../render/policy";
import { renderSiteFiles } from "../render/site";
import { renderTraefikDynamic } from "../render/traefik";
import { GENERATED } from "../render/yaml";
import { checkStackFiles } from "../scripts/stackCheck";

const ROOT = path.resolve(__dirname, "..");
const site = (stack: string) => loadSite(fileSource(path.join(ROOT, `Pulumi.${stack}.yaml`)));

describe("Traefik's static config", () => {
  const lady = site("lady");
  const traefik = lady.services.find((s) => s.name === "traefik")!.containers[0]!;
  const doc = YAML.parse(traefik.files["/etc/traefik/traefik.yml"]!);

  test("the tailnet entrypoint believes PROXY headers from the tailnet node only, and is not published", () => {
    expect(doc.entryPoints.tailnet).toEqual({
      address: ":8443",
      proxyProtocol: { trustedIPs: ["10.255.255.250/32"] },
      http: { tls: { certResolver: "letsencrypt" } },
    });
    expect(doc.entryPoints.websecure.proxyProtocol).toBeUndefined();
    expect(traefik.ports.map((p) => p.internal)).toEqual([80, 443]);
    // On the ingress network, alone with the tailnet node.
    const onIngress = lady.services
      .flatMap((s) => s.containers)
      .filter((c) => c.networks.includes("ingress"));
    expect(onIngress.map((c) => c.name).sort()).toEqual(["tailscale", "traefik"]);
    // The node Traefik believes opens no connection for anyone: the proxy out is the egress node's, elsewhere.
    // A site without a tailnet node has no tailnet entrypoint, and no route on it.
    const alone = loadSite(
      mapSource(
        "Pulumi.solo.yaml",
        "solo",
        servicesSite({ services: { tailscale: false, nextcloud: true } }),
      ),
    );
    const soloTraefik = alone.services.find((s) => s.name === "traefik")!.containers[0]!;
    expect(YAML.parse(soloTraefik.files["/etc/traefik/traefik.yml"]!).entryPoints.tailnet).toBeUndefined();
    expect(
      YAML.parse(soloTraefik.files["/etc/traefik/dynamic/routes.yml"]!).http.routers["nextcloud-web"]
        .entryPoints,
    ).toEqual(["websecure"]);
  });
});

describe("who can use each flow (the committed estate; who is on each network: test/networks.test.ts)", () => {
  const estate = projectEstate(ROOT);
  const model = (stack: string) => loadProjectSite(ROOT, stack);
  test("each flow from a site: the one container (or the host's job) that can use it, through its egress node", () => {
    // Per flow, the containers that share a network with the egress node of its identity, but for the site's own
    // node (which only forwards that egress node's metrics in).
    const users = estateFlows(estate)
      .filter((f) => f.consumer)
      .map((f) => {
        const { site, service } = f.consumer!;
        const m = model(site);
        const node = egressNode(service);
        const egress = m.services.flatMap((s) => s.containers).find((c) => c.name === node)!;
        const proxy = egress.env.TS_OUTBOUND_HTTP_PROXY_LISTEN;
        const onIt = m.services
          .flatMap((s) => s.containers)
          .filter((c) => c.name !== node && c.name !== "tailscale")
          .filter((c) => c.networks.some((n) => egress.networks.includes(n)))
          .map((c) => c.name);
        return `${f.from} -> ${f.to}:${f.ports.join(",")} [${proxy}, ${egress.networks.join(" ")}]: ${onIt.join(" ") || "(the host's job)"}`;
      });
    expect(users).toEqual([
      "tag:master-prometheus -> tag:site-lady:8000,8080,8082,9002,9003,9004,9080,9100,9121,9187,9205,9216 [0.0.0.0:1055, egress-prometheus]: prometheus",
      "tag:lady-backup -> tag:site-master:8000 [0.0.0.0:1055, egress-backup]: (the host's job)",
      "tag:lady-promtail -> tag:site-master:3100 [0.0.0.0:1055, egress-promtail]: promtail",
      "tag:master-prometheus -> tag:site-madam:8080,8082,9002,9003,9004,9080,9100 [0.0.0.0:1055, egress-prometheus]: prometheus",
      "tag:madam-backup -> tag:site-master:8000 [0.0.0.0:1055, egress-backup]: (the host's job)",
      "tag:madam-promtail -> tag:site-master:3100 [0.0.0.0:1055, egress-promtail]: promtail",
      "tag:master-prometheus -> tag:site-master:9003,9004 [0.0.0.0:1055, egress-prometheus]: prometheus",
      "tag:master-backup -> tag:site-lady:8000 [0.0.0.0:1055, egress-backup]: (the host's job)",
    ]);
    // The host's job uses exactly that network and proxy.
    for (const stack of ["master", "lady"]) {
      const job = renderSiteFiles(model(stack))["backup/usr/local/sbin/qcloud-backup"]!;
      expect([stack, /^NETWORK=(.*)$/m.exec(job)![1], /^PROXY=(.*)$/m.exec(job)![1]]).toEqual([
        stack,
        "qcloud-egress-backup",
        "http://tailscale-egress-backup:1055",
      ]);
    }
  });
});

describe("Traefik's dynamic config from the site's routes", () => {
  const doc = YAML.parse(renderTraefikDynamic(site("lady").routes, { crowdsec: false, tailnet: true }));

  test("one router and one service per route, on websecure and the tailnet entrypoint, addressed by container name", () => {
    expect(Object.keys(doc.http.routers).sort()).toEqual([
      "nextcloud-office",
      "nextcloud-web",
      "uisp-web",
      "unifi-ui",
    ]);
    expect(doc.http.routers["nextcloud-web"]).toEqual({
      rule: "Host(`cloud.qui3tly.cloud`)",
      entryPoints: ["websecure", "tailnet"],
      service: "nextcloud-web",
    });
    expect(doc.http.services["nextcloud-web"]).toEqual({
      loadBalancer: { servers: [{ url: "http://nextcloud:80" }] },
    });
  });

  test("private routes answer the tailnet only; TLS backends use the self-signed transport", () => {
    expect(doc.http.routers["unifi-ui"].middlewares).toEqual(["tailnet-only"]);
    expect(doc.http.middlewares["tailnet-only"].ipAllowList.sourceRange).toEqual([
      "100.64.0.0/10",
      "fd7a:115c:a1e0::/48",
    ]);
    expect(doc.http.services["unifi-ui"].loadBalancer).toEqual({
      servers: [{ url: "https://unifi:8443" }],
      serversTransport: "self-signed",
    });
    expect(doc.http.routers["nextcloud-web"].middlewares).toBeUndefined();
  });

  test("a path-scoped route adds PathPrefix", () => {
    const master = YAML.parse(
      renderTraefikDynamic(site("master").routes, { crowdsec: false, tailnet: true }),
    );
    expect(master.http.routers["headscale-ui"].rule).toBe(
      "Host(`headscale.qui3tly.cloud`) && PathPrefix(`/web`)",
    );
  });

  test("where CrowdSec runs, every route asks its bouncer first", () => {
    const traefik = site("master").services.find((s) => s.name === "traefik")!.containers[0]!;
    const master = YAML.parse(traefik.files["/etc/traefik/dynamic/routes.yml"]!);
    expect(master.http.middlewares.crowdsec).toEqual({
      forwardAuth: { address: "http://crowdsec-bouncer:8080/api/v1/forwardAuth", trustForwardHeader: true },
    });
    expect(master.http.routers["ntfy-web"].middlewares).toEqual(["crowdsec"]);
    expect(master.http.routers["grafana-ui"].middlewares).toEqual(["tailnet-only", "crowdsec"]);
    const crowdsec = site("master").services.find((s) => s.name === "crowdsec")!.containers[0]!;
    expect(YAML.parse(crowdsec.files["/etc/crowdsec/acquis.d/traefik.yaml"]!)).toMatchObject({
      source: "docker",
      container_name: ["traefik"],
      labels: { type: "traefik" },
    });
  });
});

describe("npm run render", () => {
  test.each(["master", "lady"])(
    "%s: every generated YAML parses and says it is generated; no secret values",
    (stack) => {
      const files = renderSiteFiles(site(stack));
      for (const [name, content] of Object.entries(files)) {
        if (/\.ya?ml$/.test(name)) {
          expect([name, content.startsWith(GENERATED)]).toEqual([name, true]);
          expect(() => YAML.parse(content)).not.toThrow();
        }
      }
      const summary = JSON.parse(files["site.json"]!);
      // Loaded alone: no other site, so no flow and no egress node.
      expect(summary.containers).toHaveLength(stack === "master" ? 26 : 28);
      // Secrets show their source only: every non-plain env value of the model is exactly its placeholder.
      const byName = new Map(
        summary.containers.map((c: { name: string; env: Record<string, string> }) => [c.name, c.env]),
      );
      let secrets = 0;
      for (const c of site(stack).services.flatMap((s) => s.containers)) {
        for (const [k, v] of Object.entries(c.env)) {
          if (typeof v === "string") continue;
          secrets++;
          const shown =
            "generated" in v
              ? `<generated password: ${v.generated}>`
              : "config" in v
                ? `<secret config: ${v.config}>`
                : `<secret input: ${v.input}>`;
          expect([c.name, k, (byName.get(c.name) as Record<string, string>)[k]]).toEqual([c.name, k, shown]);
        }
      }
      expect(secrets).toBeGreaterThan(0);
    },
  );

  test("refuses to clear a directory it did not write", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "render-"));
    fs.writeFileSync(path.join(dir, "precious.txt"), "keep me");
    const r = spawnSync(
      "npx",
      ["ts-node", "--transpile-only", "scripts/render.ts", "--stack", "lady", "--out", dir],
      {
        cwd: ROOT,
        encoding: "utf8",
      },
    );
    expect([r.status, r.stderr.trim(), fs.readFileSync(path.join(dir, "precious.txt"), "utf8")]).toEqual([
      2,
      `${dir}: not empty and not written by \`npm run render\`; expected a new or earlier --out directory`,
      "keep me",
    ]);
    fs.rmSync(dir, { recursive: true });
  });

  test("writes the files to --out", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "render-"));
    const stdout = execFileSync(
      "npx",
      ["ts-node", "--transpile-only", "scripts/render.ts", "--stack", "master", "--out", out],
      {
        cwd: ROOT,
        encoding: "utf8",
      },
    );
    // Every container's config files (each Docker API proxy: its script and rules), the tunnel, the compose file,
    // site.json and the backup job (script, cron). Prometheus' rules are three files: qcloud, drift, containers.
    expect(stdout.trim()).toBe(`30 files in ${path.relative(ROOT, out)}`);
    expect(fs.readdirSync(path.join(out, "files/prometheus/etc/prometheus/rules")).sort()).toEqual([
      "containers.yml",
      "drift.yml",
      "qcloud.yml",
    ]);
    expect(fs.readFileSync(path.join(out, "files/headscale/etc/headscale/config.yaml"), "utf8")).toContain(
      "server_url: https://headscale.qui3tly.cloud",
    );
    expect(fs.readFileSync(path.join(out, "backup/etc/cron.d/qcloud-backup"), "utf8")).toContain(
      "root /usr/local/sbin/qcloud-backup run >>/var/log/qcloud-backup.log 2>&1",
    );
    expect(JSON.parse(fs.readFileSync(path.join(out, "site.json"), "utf8")).jobImages).toEqual([
      "docker.io/restic/restic:0.19.1",
      "docker.io/keinos/sqlite3:3.47.2",
    ]);
    fs.rmSync(out, { recursive: true });
  });
});

describe("npm run check", () => {
  const run = (...files: string[]) =>
    spawnSync("npx", ["ts-node", "--transpile-only", "scripts/check.ts", ...files], {
      cwd: ROOT,
      encoding: "utf8",
    });

  test("accepts the committed stacks", () => {
    const r = run();
    expect([r.status, r.stdout]).toEqual([
      0,
      "ok   Pulumi.lady.yaml: services, 11 services, 31 containers\n" +
        "ok   Pulumi.madam.yaml: services, 7 services, 11 containers\n" +
        "ok   Pulumi.master.yaml: control-plane, 19 services, 29 containers\n",
    ]);
  });

  test("rejects a bad file with exit 1, naming the file and the field", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "check-"));
    const bad = path.join(dir, "Pulumi.madam.yaml");
    fs.writeFileSync(
      bad,
      YAML.stringify({
        config: {
          "qui3tly-cloud:site": {
            role: "services",
            controlPlane: "master",
            domain: "qui3tly.cloud",
            acmeEmail: "ops@qui3tly.cloud",
            host: { kind: "existing", address: "madam.qui3tly.cloud", port: 0 },
            services: { nextcloud: { resources: { memory: "2 GB" } } },
          },
        },
      }),
    );
    const r = run(bad);
    fs.rmSync(dir, { recursive: true });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      "FAIL Pulumi.madam.yaml: `qui3tly-cloud:site.host.port`: expected a port 1-65535\n" +
        "FAIL Pulumi.madam.yaml: `qui3tly-cloud:site.services.nextcloud.resources.memory`: expected a size such as `512m` or `2g`\n",
    );
  });
});

describe("npm run check -- <file>: a named file is checked within the estate of its directory", () => {
  /** A directory with the committed stack files and `extra` ones (name -> config map). */
  function project(extra: Record<string, Record<string, unknown>>): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "check-estate-"));
    for (const f of ["Pulumi.yaml", "Pulumi.master.yaml", "Pulumi.lady.yaml"])
      fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
    for (const [name, config] of Object.entries(extra))
      fs.writeFileSync(path.join(dir, `Pulumi.${name}.yaml`), YAML.stringify({ config }));
    return dir;
  }
  const madam = (site: Record<string, unknown>) =>
    servicesSite({ host: { kind: "existing", address: "madam.qui3tly.cloud" }, ...site });
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true })));

  test("`npm run check -- Pulumi.lady.yaml` passes, printing lady alone (it failed: no `Pulumi.master.yaml`)", () => {
    const r = spawnSync("npx", ["ts-node", "--transpile-only", "scripts/check.ts", "Pulumi.lady.yaml"], {
      cwd: ROOT,
      encoding: "utf8",
    });
    expect([r.status, r.stdout]).toEqual([
      0,
      "ok   Pulumi.lady.yaml: services, 11 services, 31 containers\n",
    ]);
    expect(r.stderr).toMatch(/^WARN Pulumi\.lady\.yaml: `qui3tly-cloud:site\.host\.hostKey` is not set/);
    expect(r.stderr).not.toContain("master");
  });

  test("what the README shows for a broken Pulumi.madam.yaml next to master and lady is what it prints", () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const shown = /^\$ npm run check -- Pulumi\.madam\.yaml\n((?:FAIL .*\n)+)```$/m.exec(readme)?.[1];
    const dir = project({
      madam: madam({
        host: { kind: "existing", address: "madam.qui3tly.cloud", port: 0 },
        services: { nextcloud: { resources: { memory: "2 GB" } } },
      }),
    });
    dirs.push(dir);
    const r = checkStackFiles([path.join(dir, "Pulumi.madam.yaml")]);
    expect(r).toEqual({ status: 1, lines: shown!.trimEnd().split("\n") });
    expect(r.lines).toHaveLength(2);
  });

  test("a new file joins the estate: checked against the others, only it printed", () => {
    const key = { sealPublicKey: TEST_SEAL_KEYS.madam!.publicKey };
    const ok = project({ madam: madam({ mesh: { ...key, wireguard: { address: "10.90.0.3" } } }) });
    // lady's tunnel address: only the estate can see that.
    const clash = project({ madam: madam({ mesh: { ...key, wireguard: { address: "10.90.0.2" } } }) });
    // Before `npm run seal-key` (README "Adding a site", step 2): master would have nothing to seal its keys to.
    const unsealed = project({ madam: madam({ mesh: { wireguard: { address: "10.90.0.3" } } }) });
    dirs.push(ok, clash, unsealed);
    expect(checkStackFiles([path.join(ok, "Pulumi.madam.yaml")])).toEqual({
      status: 0,
      lines: [
        "ok   Pulumi.madam.yaml: services, 7 services, 11 containers",
        expect.stringMatching(/^WARN Pulumi\.madam\.yaml: `qui3tly-cloud:site\.host\.hostKey` is not set/),
        "WARN Pulumi.madam.yaml: `qui3tly-cloud:site.host.memory` and `qui3tly-cloud:site.host.cpus` are not set: the capacity of this site is not checked (its limits: 1280 MiB, 4 CPUs); declare the host's size from the provider's bill, such as `memory: 8g` and `cpus: 4`",
      ],
    });
    expect(checkStackFiles([path.join(clash, "Pulumi.madam.yaml")])).toEqual({
      status: 1,
      lines: [
        "FAIL Pulumi.madam.yaml: `qui3tly-cloud:site.mesh.wireguard.address`: `10.90.0.2` is already site `lady`'s tunnel address; expected one address per site",
      ],
    });
    expect(checkStackFiles([path.join(unsealed, "Pulumi.madam.yaml")])).toEqual({
      status: 1,
      lines: [
        "FAIL Pulumi.madam.yaml: `qui3tly-cloud:site.mesh.sealPublicKey`: expected the public half of site `madam`'s sealing key, to which `master` seals its keys: run `npm run seal-key -- --stack madam`",
      ],
    });
  });

  test("a broken file beside the named one fails the check, naming that file and its field", () => {
    const dir = project({});
    dirs.push(dir);
    const master = path.join(dir, "Pulumi.master.yaml");
    fs.writeFileSync(
      master,
      fs.readFileSync(master, "utf8").replace("role: control-plane", "role: controlplane"),
    );
    expect(checkStackFiles([path.join(dir, "Pulumi.lady.yaml")])).toEqual({
      status: 1,
      lines: [
        'FAIL Pulumi.master.yaml: `qui3tly-cloud:site.role`: Invalid option: expected one of "control-plane"|"services"',
      ],
    });
  });

  test("files from two directories are two estates: refused, naming both directories", () => {
    const other = project({});
    dirs.push(other);
    expect(checkStackFiles(["Pulumi.lady.yaml", path.join(other, "Pulumi.master.yaml")])).toEqual({
      status: 1,
      lines: [
        `FAIL Pulumi.master.yaml: \`(file)\`: expected the stack files of one estate, in one directory: this one is in ${other}, Pulumi.lady.yaml in ${process.cwd()}; check one directory at a time`,
      ],
    });
  });
});

describe("the Docker Compose twin", () => {
  const compose = YAML.parse(renderSiteFiles(site("lady"))["docker-compose.yml"]!);

  test("the same containers with the same images, limits, volumes and health", () => {
    const model = site("lady");
    const containers = model.services.flatMap((s) => s.containers);
    expect(Object.keys(compose.services).sort()).toEqual(containers.map((c) => c.name).sort());
    expect(compose.services["nextcloud-db"]).toMatchObject({
      image: "docker.io/library/postgres:16.6-alpine",
      mem_limit: "1024m",
      memswap_limit: "1024m",
      cpus: 1,
      restart: "unless-stopped",
      volumes: ["nextcloud-db-data:/var/lib/postgresql/data"],
      networks: ["qcloud-nextcloud"],
      healthcheck: { test: ["CMD-SHELL", "pg_isready -U nextcloud -d nextcloud"], start_period: "30s" },
    });
    expect(compose.services.traefik.volumes).toContain(
      "./files/traefik/etc/traefik/traefik.yml:/etc/traefik/traefik.yml:ro",
    );
  });

  test("dependents wait for healthy dependencies, as under Pulumi", () => {
    expect(compose.services.nextcloud.depends_on).toEqual({
      "nextcloud-db": { condition: "service_healthy" },
      "nextcloud-redis": { condition: "service_healthy" },
    });
    expect(compose.services["nextcloud-redis-exporter"].depends_on).toEqual({
      "nextcloud-redis": { condition: "service_healthy" },
    });
  });

  test("secrets are variables, never values", () => {
    expect(compose.services["nextcloud-db"].environment.POSTGRES_PASSWORD).toBe("${QCLOUD_NEXTCLOUD_DB}");
    expect(compose.services.nextcloud.environment.POSTGRES_PASSWORD).toBe("${QCLOUD_NEXTCLOUD_DB}");
  });

  test("a literal `$` survives compose's interpolation", () => {
    // The redis command line reads its password from the container's env at run time.
    expect(compose.services["nextcloud-redis"].command[2]).toBe(
      'exec redis-server --requirepass "$$REDIS_PASSWORD" --appendonly yes',
    );
  });
});
