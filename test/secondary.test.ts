import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { committed, controlPlaneSite, servicesSite } from "./fixtures";
import { CATALOG, SERVICE_NAMES } from "../catalog";
import { ConfigError } from "../config/errors";
import { mapSource } from "../config/source";
import { loadEstate } from "../model/estate";
import { loadSite } from "../model/site";
import YAML from "yaml";
import {
  failoverHosts,
  renderFailoverRecordsInstall,
  renderFailoverRecordsUninstall,
  tailnetResolvers,
} from "../render/dns";
import { estateFlows, renderPolicy, SYNC_PORT } from "../render/policy";
import { ruleFiles } from "../render/rules";
import { renderHeadscaleConfig, renderServeConfig } from "../render/headscale";
import { SYNC_METRICS_PORT } from "../render/share";
import { SYNC_GAUGES, renderSyncScript, shareUrl } from "../render/sync";
import { PEER_PORT, standbyCertWarning } from "../render/traefik";
import { checkStackFiles } from "../scripts/stackCheck";

/** Secondaries (`services.<name>.follows`): where they may run, what the primary and the secondary get. */

type Stacks = Record<string, Record<string, unknown>>;
const sources = (stacks: Stacks) =>
  Object.entries({ master: controlPlaneSite(), lady: servicesSite(), ...stacks }).map(([name, config]) =>
    mapSource(`Pulumi.${name}.yaml`, name, config),
  );
/** The estate's sites, each loaded within it. */
function within(stacks: Stacks) {
  const src = sources(stacks);
  const estate = loadEstate(src);
  return Object.fromEntries(src.map((s) => [s.stack, loadSite(s, estate)]));
}
function refusal(stacks: Stacks): string {
  try {
    within(stacks);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error("accepted");
}
const follows = (service: string, primary: string, more: Record<string, unknown> = {}) => ({
  services: { [service]: { follows: primary, ...more } },
});
/** Ingress ranges of their own: each Pi-hole answers the tailnet at its own address (render/dns.ts). */
const ladySite = (site: Record<string, unknown> = {}) =>
  servicesSite({ mesh: { ingressSubnet: "10.255.255.240/29" }, ...site });
const madam = (site: Record<string, unknown> = {}) =>
  servicesSite({
    host: { kind: "existing", address: "203.0.113.30" },
    mesh: { ingressSubnet: "10.255.255.232/29" },
    ...site,
  });

describe("which services can run as a secondary", () => {
  test("Pi-hole, which pulls its primary's state, and Homepage, a standby that serves its routes; every other catalog service has one writer, or nothing that keeps two copies alike", () => {
    const secondary = (n: (typeof SERVICE_NAMES)[number]) => CATALOG[n].secondary;
    expect(SERVICE_NAMES.filter((n) => secondary(n) !== undefined).sort()).toEqual(["homepage", "pihole"]);
    expect(SERVICE_NAMES.filter((n) => secondary(n)?.servesRoutes)).toEqual(["homepage"]);
  });

  test("each file a secondary pulls has a command to run after it changed", () => {
    for (const n of SERVICE_NAMES)
      for (const [f, cmd] of Object.entries(CATALOG[n].secondary?.files ?? {}))
        expect([f, cmd.length > 0 && cmd.every((w) => /^[^\s,]+$/.test(w))]).toEqual([f, true]);
  });

  test("each file a secondary pulls lies in a volume of its service's main container", () => {
    for (const n of SERVICE_NAMES) {
      const def = CATALOG[n].secondary;
      if (!def || Object.keys(def.files).length === 0) continue;
      const site = within({ lady: ladySite(follows(n, "master")) }).master!;
      const share = site.services.find((s) => s.name === n)!.containers.find((c) => c.key === "share")!;
      for (const f of Object.keys(def.files))
        expect([f, share.mounts.some((m) => f.startsWith(`${m.path}/`))]).toEqual([f, true]);
    }
  });
});

const ERRORS: [string, Stacks, string][] = [
  [
    "a service with one writer",
    { lady: ladySite(follows("nextcloud", "master")) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.services.nextcloud.follows`: `nextcloud` runs on one site only (its state has one writer, or nothing keeps two copies alike); expected a service that can run as a secondary: homepage, pihole",
  ],
  [
    "itself",
    { lady: ladySite(follows("pihole", "lady")) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.services.pihole.follows`: expected another site: the primary a secondary pulls from",
  ],
  [
    "a service the site does not run",
    { lady: ladySite({ services: { pihole: { enabled: false, follows: "master" } } }) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.services.pihole.follows`: expected no value on a service this site does not run",
  ],
  [
    "routes of a secondary",
    { lady: ladySite(follows("pihole", "master", { routes: { admin: { host: "dns.lady.example.org" } } })) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.services.pihole.routes`: expected no routes on a secondary: its admin UI is the primary's (on `master`), whose changes it takes every minute",
  ],
  [
    "a primary that is no site",
    { lady: ladySite(follows("pihole", "nowhere")) },
    "Pulumi.lady.yaml: `qui3tly-cloud:site.services.pihole.follows`: expected a site of the estate (lady, master)",
  ],
  [
    "a primary that does not run it",
    { madam: madam(follows("pihole", "lady")) },
    "Pulumi.madam.yaml: `qui3tly-cloud:site.services.pihole.follows`: expected a site that runs `pihole`: `lady` does not",
  ],
  [
    "a secondary of a secondary",
    { lady: ladySite(follows("pihole", "master")), madam: madam(follows("pihole", "lady")) },
    "Pulumi.madam.yaml: `qui3tly-cloud:site.services.pihole.follows`: `lady` runs `pihole` as a secondary itself (Pulumi.lady.yaml at `qui3tly-cloud:site.services.pihole.follows`); expected its primary, `master`",
  ],
];

describe("a secondary's config errors name the file and the field", () => {
  test.each(ERRORS)("%s", (_name, stacks, message) => {
    expect(refusal(stacks)).toBe(message);
  });

  test("a secondary at its primary's resolver address", () => {
    expect(refusal({ lady: servicesSite(follows("pihole", "master")) })).toBe(
      "Pulumi.lady.yaml: `qui3tly-cloud:site.mesh.ingressSubnet`: its Pi-hole would answer the tailnet at `10.255.255.252`, as site `master`'s does (Pulumi.master.yaml at `qui3tly-cloud:site.mesh.ingressSubnet`, its default when unset); expected an ingress range of this site's own, such as `10.255.255.240/29`",
    );
  });

  test("a resolver address inside a range another site routes", () => {
    expect(refusal({ lady: servicesSite({ mesh: { routes: ["10.255.255.248/29"] } }) })).toBe(
      "Pulumi.master.yaml: `qui3tly-cloud:site.mesh.ingressSubnet`: its Pi-hole would answer the tailnet at `10.255.255.252`, inside `10.255.255.248/29`, routed by site `lady` (Pulumi.lady.yaml at `qui3tly-cloud:site.mesh.routes[0]`); expected an ingress range outside every routed range",
    );
  });

  test("a primary of another tailnet", () => {
    const other = controlPlaneSite({ host: { kind: "existing", address: "203.0.113.40" } });
    expect(
      refusal({ other, madam: madam({ controlPlane: "other", ...follows("pihole", "master") }) }),
    ).toContain(
      "Pulumi.madam.yaml: `qui3tly-cloud:site.services.pihole.follows`: expected a site of the same tailnet (control plane `other`); `master`'s is `master`",
    );
  });
});

describe("lady as master's Pi-hole secondary", () => {
  const sites = within({ lady: ladySite(follows("pihole", "master")) });
  const master = sites.master!;
  const lady = sites.lady!;
  const containersOf = (site: typeof master, svc: string) =>
    site.services.find((s) => s.name === svc)?.containers.map((c) => c.key) ?? [];

  test("the primary serves a share, the secondary runs Pi-hole without routes, with its egress node", () => {
    expect(containersOf(master, "pihole")).toEqual(["main", "unbound", "exporter", "share"]);
    expect(containersOf(lady, "pihole")).toEqual(["main", "unbound", "exporter"]);
    expect(lady.routes.filter((r) => r.service === "pihole")).toEqual([]);
    expect(containersOf(lady, "tailscale")).toContain("egress-pihole");
    expect(lady.follows).toEqual([
      {
        service: "pihole",
        primary: "master",
        container: "pihole",
        files: CATALOG.pihole.secondary!.files,
      },
    ]);
    // A site nobody follows serves nothing.
    const alone = within({}).master!;
    expect(containersOf(alone, "pihole")).toEqual(["main", "unbound", "exporter"]);
  });

  test("the policy gives lady's Pi-hole the share's port on master, and nothing else; master's node forwards it", () => {
    const estate = lady.estate;
    const sync = estateFlows(estate).filter((f) => f.consumer?.service === "pihole");
    expect(sync).toEqual([
      {
        from: "tag:lady-pihole",
        consumer: { site: "lady", service: "pihole" },
        to: "tag:site-master",
        ports: [SYNC_PORT],
        why: "sync: lady's pihole pulls its primary's state from master",
      },
    ]);
    const serve = JSON.parse(
      renderServeConfig({
        estate,
        site: "master",
        siteServices: master.services.map((s) => s.name),
        mesh: master.mesh,
        sshdPort: 22,
      }),
    ) as { TCP: Record<string, { TCPForward?: string }> };
    expect(serve.TCP[String(SYNC_PORT)]).toEqual({ TCPForward: `pihole-share:${SYNC_PORT}` });
    expect(shareUrl(lady, "master")).toBe(`http://master.mesh.qui3tly.cloud:${SYNC_PORT}`);
  });

  test("the absence alert comes from the model: one rule for lady's task, none without secondaries", () => {
    const rules = ruleFiles(lady.estate)["containers.yml"]!.filter((d) => d.alert === "CrossSiteSyncMissing");
    expect(rules.flatMap((d) => d.rules.map((r) => [r.labels, r.expr]))).toEqual([
      [
        { site: "lady", peer: "master", task: "pihole" },
        'absent(qcloud_sync_last_success_timestamp_seconds{site="lady",peer="master",task="pihole"})',
      ],
    ]);
    expect(
      ruleFiles(within({}).master!.estate)["containers.yml"]!.filter(
        (d) => d.alert === "CrossSiteSyncMissing",
      ),
    ).toEqual([]);
  });

  test("the share mounts the volumes holding the files read-only, serves its metrics on a port of its own", () => {
    const share = master.services.flatMap((s) => s.containers).find((c) => c.name === "pihole-share")!;
    expect(share.mounts).toEqual([
      { volume: "pihole-config", path: "/etc/pihole", readOnly: true },
      { volume: "pihole-dnsmasq", path: "/etc/dnsmasq.d", readOnly: true },
    ]);
    expect(share.metrics).toEqual({ port: SYNC_METRICS_PORT, path: "/metrics" });
    expect(share.networks).toEqual(["metrics"]);
  });

  test("the share's limits are set like any container's, in the primary's stack file", () => {
    const more = within({
      master: controlPlaneSite({
        services: { pihole: { containers: { share: { resources: { memory: "96m" } } } } },
      }),
      lady: ladySite(follows("pihole", "master")),
    }).master!;
    expect(more.services.flatMap((s) => s.containers).find((c) => c.name === "pihole-share")!.memoryMb).toBe(
      96,
    );
  });

  test("the job's gauges are docs/metrics.md's, with the same help", () => {
    const doc = fs.readFileSync(path.join(__dirname, "..", "docs", "metrics.md"), "utf8");
    for (const [name, help] of Object.entries(SYNC_GAUGES)) expect(doc).toContain(`# HELP ${name} ${help}\n`);
  });

  test("the job's script is valid bash and names its one task", () => {
    const script = renderSyncScript(lady);
    expect(script).toContain(
      `pihole master pihole http://tailscale-egress-pihole:1055 http://master.mesh.qui3tly.cloud:${SYNC_PORT}\n`,
    );
    // Each file's reload: the records and gravity by SIGHUP, the CNAMEs (dnsmasq config) by a restart.
    expect(script).toContain(
      [
        "pihole /etc/pihole/custom.list pihole,restartdns,reload",
        "pihole /etc/pihole/gravity.db pihole,restartdns,reload",
        "pihole /etc/dnsmasq.d/05-pihole-custom-cname.conf pihole,restartdns",
      ].join("\n"),
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-sync-"));
    const file = path.join(dir, "qcloud-sync");
    fs.writeFileSync(file, script);
    const r = spawnSync("bash", ["-n", file], { encoding: "utf8" });
    fs.rmSync(dir, { recursive: true, force: true });
    expect([r.status, r.stderr]).toEqual([0, ""]);
  });
});

describe("the tailnet resolves through every Pi-hole", () => {
  const sites = within({
    master: controlPlaneSite({ mesh: { admins: ["alice@example.org"] } }),
    lady: ladySite(follows("pihole", "master")),
  });
  const master = sites.master!;
  const estate = master.estate;
  const env = (site: typeof master, container: string) =>
    site.services.flatMap((s) => s.containers).find((c) => c.name === container)!;

  test("each Pi-hole answers at its site's resolver address on the ingress network, which its node routes", () => {
    expect(tailnetResolvers(estate, "master")).toEqual([
      { site: "master", address: "10.255.255.252" },
      { site: "lady", address: "10.255.255.244" },
    ]);
    for (const [site, address] of [
      [master, "10.255.255.252"],
      [sites.lady!, "10.255.255.244"],
    ] as const) {
      const pihole = env(site, "pihole");
      expect([site.name, pihole.networks, pihole.addresses]).toEqual([
        site.name,
        expect.arrayContaining(["edge", "ingress"]),
        { ingress: address },
      ]);
      expect([site.name, env(site, "tailscale").env.TS_ROUTES]).toEqual([site.name, `${address}/32`]);
    }
  });

  test("Headscale hands clients both, the primary first; a tailnet without Pi-hole keeps public resolvers", () => {
    const config = (site: typeof master) =>
      YAML.parse(
        renderHeadscaleConfig({ ...site, hosts: { api: "headscale.qui3tly.cloud" }, site: site.name }),
      );
    expect(config(master).dns.nameservers).toEqual({ global: ["10.255.255.252", "10.255.255.244"] });
    const none = within({ master: controlPlaneSite({ services: { pihole: false } }) }).master!;
    expect(config(none).dns.nameservers).toEqual({ global: ["1.1.1.1", "9.9.9.9"] });
  });

  test("the policy lets admins' devices reach port 53 at each resolver, approves each route for its site alone", () => {
    const policy = renderPolicy(estate, "master");
    expect(policy.acls.filter((a) => a.dst.some((d) => d.endsWith(":53")))).toEqual([
      { action: "accept", src: ["group:admins"], dst: ["10.255.255.252/32:53"] },
      { action: "accept", src: ["group:admins"], dst: ["10.255.255.244/32:53"] },
    ]);
    expect(policy.autoApprovers.routes).toEqual({
      "10.255.255.252/32": ["tag:site-master"],
      "10.255.255.244/32": ["tag:site-lady"],
    });
  });
});

/** Both sites serve Homepage: `homepage: { follows: master }` beside lady's Pi-hole secondary. */
const serving = (more: Record<string, unknown> = {}) =>
  ladySite({ services: { pihole: { follows: "master" }, homepage: { follows: "master" } }, ...more });

describe("a route both sites serve: config errors name the file and the field", () => {
  test("a standby without a Pi-hole of its own: clients could not be sent to it", () => {
    expect(refusal({ lady: ladySite(follows("homepage", "master")) })).toBe(
      "Pulumi.lady.yaml: `qui3tly-cloud:site.services.pihole`: expected `pihole` on this site: it serves `homepage` with other sites, and tailnet clients reach the site that is up through its Pi-hole's answer, its node's address",
    );
  });

  test("route settings on a standby: it serves the primary's as they are", () => {
    expect(
      refusal({
        lady: ladySite({
          services: {
            pihole: { follows: "master" },
            homepage: { follows: "master", routes: { web: { private: false } } },
          },
        }),
      }),
    ).toBe(
      "Pulumi.lady.yaml: `qui3tly-cloud:site.services.homepage.routes`: expected no route settings on a secondary: it serves the primary's routes (on `master`) as they are",
    );
  });

  test("a primary without a Pi-hole of its own", () => {
    expect(refusal({ master: controlPlaneSite({ services: { pihole: false } }), lady: serving() })).toContain(
      "Pulumi.master.yaml: `qui3tly-cloud:site.services.pihole`: expected `pihole` on this site: it serves `homepage` with other sites, and tailnet clients reach the site that is up through its Pi-hole's answer, its node's address",
    );
  });

  test("a third site's Pi-hole, which would answer the name from elsewhere", () => {
    expect(refusal({ lady: serving(), madam: madam(follows("pihole", "master")) })).toBe(
      "Pulumi.madam.yaml: `qui3tly-cloud:site.services.pihole`: this site's Pi-hole answers the tailnet's clients, but the site does not serve `home.qui3tly.cloud`, which `lady` and `master` serve together: a client that took this Pi-hole's answer would reach neither; expected `homepage: { follows: master }` here too, or `pihole: false`",
    );
  });
});

describe("a standby's certificate: the HTTP challenge reaches the primary, the DNS challenge does not", () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true })));
  /** `npm run check` of lady's file in the committed estate, lady serving Homepage with master. */
  const check = (more: Record<string, unknown>, secrets: Record<string, unknown> = {}) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "check-standby-"));
    dirs.push(dir);
    for (const f of ["Pulumi.yaml", "Pulumi.master.yaml"])
      fs.copyFileSync(path.join(__dirname, "..", f), path.join(dir, f));
    const site = committed("lady", {})["qui3tly-cloud:site"] as Record<string, Record<string, unknown>>;
    const config = {
      ...committed("lady", {
        mesh: { ...site.mesh, ingressSubnet: "10.255.255.240/29" },
        services: { ...site.services, pihole: { follows: "master" }, homepage: { follows: "master" } },
        ...more,
      }),
      ...secrets,
    };
    const file = path.join(dir, "Pulumi.lady.yaml");
    fs.writeFileSync(file, YAML.stringify({ config }));
    return checkStackFiles([file]);
  };

  test("lady serving master's name with the HTTP challenge: `npm run check` warns, naming the names and the field, and passes", () => {
    const r = check({});
    expect(r.status).toBe(0);
    expect(r.lines.filter((l) => l.includes("acmeDnsChallenge"))).toEqual([
      'WARN Pulumi.lady.yaml: `qui3tly-cloud:site.acmeDnsChallenge` is not set: lady serves home.qui3tly.cloud (homepage, master\'s) as a standby, and the HTTP challenge for those names reaches the site their public address points at, so its Traefik has no certificate for them and clients that reach it get its default one, which browsers refuse; set the DNS challenge with your DNS provider (README "A site down: what is redundant")',
    ]);
    // The primary's challenge reaches it: no warning for master.
    expect(standbyCertWarning(within({ lady: serving() }).master!)).toBeUndefined();
    // A site without the DNS challenge keeps the HTTP challenge, and Traefik no setting for it.
    const traefik = within({}).lady!.services.find((s) => s.name === "traefik")!.containers[0]!;
    expect([
      YAML.parse(traefik.files["/etc/traefik/traefik.yml"]!).certificatesResolvers.letsencrypt.acme,
      traefik.env,
      traefik.secretFiles,
    ]).toEqual([
      { email: "ops@qui3tly.cloud", storage: "/letsencrypt/acme.json", httpChallenge: { entryPoint: "web" } },
      {},
      {},
    ]);
  });

  test("with the DNS challenge: no warning; Traefik's resolver proves names by the provider's API, its credential a secret file", () => {
    const acmeDnsChallenge = {
      provider: "hetzner",
      env: { HETZNER_API_KEY: { secret: "hetznerDnsToken" }, HETZNER_TTL: "120" },
    };
    const secret = { "qui3tly-cloud:hetznerDnsToken": { secure: "v1:sealed" } };
    const r = check({ acmeDnsChallenge }, secret);
    expect([r.status, r.lines.filter((l) => l.includes("acmeDnsChallenge"))]).toEqual([0, []]);
    const lady = within({ lady: { ...serving({ acmeDnsChallenge }), ...secret } }).lady!;
    const traefik = lady.services.find((s) => s.name === "traefik")!.containers[0]!;
    expect(YAML.parse(traefik.files["/etc/traefik/traefik.yml"]!).certificatesResolvers).toEqual({
      letsencrypt: {
        acme: {
          email: "ops@qui3tly.cloud",
          storage: "/letsencrypt/acme.json",
          dnsChallenge: { provider: "hetzner" },
        },
      },
    });
    expect([traefik.env, traefik.secretFiles]).toEqual([
      { HETZNER_API_KEY_FILE: "/etc/traefik/secrets/acme-HETZNER_API_KEY", HETZNER_TTL: "120" },
      { "/etc/traefik/secrets/acme-HETZNER_API_KEY": { config: "hetznerDnsToken" } },
    ]);
  });
});

describe("a route both sites serve, from the primary's settings", () => {
  test("a standby on another domain, or a primary that sets the route's name and privacy: the standby serves the primary's route as it is", () => {
    const sites = within({
      master: controlPlaneSite({
        services: { homepage: { routes: { web: { host: "start.example.org", private: false } } } },
      }),
      lady: serving({ domain: "lady.example.org" }),
    });
    const home = (site: string) =>
      sites[site]!.routes.filter((r) => r.service === "homepage").map((r) => [r.host, r.private]);
    expect([home("master"), home("lady")]).toEqual([
      [["start.example.org", false]],
      [["start.example.org", false]],
    ]);
  });

  test("two standbys of one primary: each reaches the primary, the primary both", () => {
    const sites = within({
      lady: serving(),
      madam: madam({ services: { pihole: { follows: "master" }, homepage: { follows: "master" } } }),
    });
    const peers = (site: string) => sites[site]!.routes.find((r) => r.service === "homepage")!.peers;
    expect([peers("master"), peers("lady"), peers("madam")]).toEqual([
      ["lady", "madam"],
      ["master"],
      ["master"],
    ]);
  });
});

describe("Homepage on master and lady: both Traefiks send it to master's instance, to lady's when master's fails", () => {
  const sites = within({ lady: serving() });
  const master = sites.master!;
  const lady = sites.lady!;
  const estate = master.estate;
  const container = (site: typeof master, name: string) =>
    site.services.flatMap((s) => s.containers).find((c) => c.name === name);

  test("both have the route, each naming the other as its peer; nothing is pulled, so no share, job or sync flow", () => {
    const home = (site: typeof master) => site.routes.filter((r) => r.service === "homepage");
    expect(home(master).map((r) => [r.host, r.peers, r.standby])).toEqual([
      ["home.qui3tly.cloud", ["lady"], undefined],
    ]);
    expect(home(lady).map((r) => [r.host, r.peers, r.standby])).toEqual([
      ["home.qui3tly.cloud", ["master"], true],
    ]);
    expect(container(master, "homepage-share")).toBeUndefined();
    expect(lady.follows.map((f) => [f.service, Object.keys(f.files).length])).toEqual([
      ["homepage", 0],
      ["pihole", 3],
    ]);
    expect(renderSyncScript(lady)).not.toContain("homepage");
    expect(estateFlows(estate).filter((f) => f.consumer?.service === "homepage")).toEqual([]);
    // Routes nobody else serves keep their one site.
    expect(lady.routes.filter((r) => r.service !== "homepage").every((r) => r.peers === undefined)).toBe(
      true,
    );
  });

  test("each site's Traefik gets a forwarder to the other's, through its own egress node for Traefik", () => {
    expect(container(lady, "traefik-peer-master")!.command).toEqual([
      "python3",
      "/usr/local/lib/qcloud/peer-forward.py",
      String(PEER_PORT),
      "tailscale-egress-traefik:1055",
      `master.mesh.qui3tly.cloud:${PEER_PORT}`,
    ]);
    expect(container(master, "traefik-peer-lady")!.command!.at(-1)).toBe(
      `lady.mesh.qui3tly.cloud:${PEER_PORT}`,
    );
    expect(container(lady, "traefik-peer-master")!.networks).toEqual(
      expect.arrayContaining(["traefik", "egress-traefik"]),
    );
    expect(container(lady, "tailscale-egress-traefik")).toBeDefined();
    // A site with no shared route has none.
    expect(container(within({}).master!, "traefik-peer-lady")).toBeUndefined();
  });

  test("the policy lets each site's Traefik identity reach the other's peer port, and nothing else; each node forwards it with the client in a PROXY header", () => {
    expect(estateFlows(estate).filter((f) => f.consumer?.service === "traefik")).toEqual([
      {
        from: "tag:lady-traefik",
        consumer: { site: "lady", service: "traefik" },
        to: "tag:site-master",
        ports: [PEER_PORT],
        why: "failover: lady's Traefik falls back to master's for the routes both serve",
      },
      {
        from: "tag:master-traefik",
        consumer: { site: "master", service: "traefik" },
        to: "tag:site-lady",
        ports: [PEER_PORT],
        why: "failover: master's Traefik falls back to lady's for the routes both serve",
      },
    ]);
    for (const [site, traefik] of [
      [master, "10.255.255.251"],
      [lady, "10.255.255.243"],
    ] as const) {
      const serve = JSON.parse(
        renderServeConfig({
          estate,
          site: site.name,
          siteServices: site.services.map((s) => s.name),
          mesh: site.mesh,
          sshdPort: 22,
        }),
      ) as { TCP: Record<string, unknown> };
      expect([site.name, serve.TCP[String(PEER_PORT)]]).toEqual([
        site.name,
        { TCPForward: `${traefik}:${PEER_PORT}`, ProxyProtocol: 2 },
      ]);
    }
  });

  test("Traefik: a failover service, the primary's instance first on both sites, each health-checked; on the peer entrypoint its own alone", () => {
    const dynamicOf = (site: typeof master) =>
      YAML.parse(container(site, "traefik")!.files["/etc/traefik/dynamic/routes.yml"]!).http;
    expect(dynamicOf(master).services["homepage-web"]).toEqual({
      failover: { service: "homepage-web-local", fallback: "homepage-web-peers" },
    });
    const traefik = container(lady, "traefik")!;
    const dynamic = dynamicOf(lady);
    expect(dynamic.services["homepage-web"]).toEqual({
      failover: { service: "homepage-web-peers", fallback: "homepage-web-local" },
    });
    const check = { path: "/api/healthcheck", hostname: "home.qui3tly.cloud" };
    expect(dynamic.services["homepage-web-local"].loadBalancer).toEqual({
      servers: [{ url: "http://homepage:3000" }],
      healthCheck: { ...check, interval: "2s", timeout: "2s" },
    });
    expect(dynamic.services["homepage-web-peers"].loadBalancer).toEqual({
      servers: [{ url: `http://traefik-peer-master:${PEER_PORT}` }],
      serversTransport: "peer",
      healthCheck: { ...check, interval: "3s", timeout: "2s" },
    });
    expect(dynamic.serversTransports.peer).toEqual({
      forwardingTimeouts: { dialTimeout: "2s", responseHeaderTimeout: "10s", idleConnTimeout: "30s" },
    });
    expect(dynamic.routers["homepage-web-peer"]).toEqual({
      rule: "Host(`home.qui3tly.cloud`)",
      entryPoints: ["peer"],
      service: "homepage-web-local",
      middlewares: ["tailnet-only"],
    });
    const staticConfig = YAML.parse(traefik.files["/etc/traefik/traefik.yml"]!);
    expect(staticConfig.entryPoints.peer).toEqual({
      address: `:${PEER_PORT}`,
      proxyProtocol: { trustedIPs: ["10.255.255.242/32"] },
    });
  });

  test("each Pi-hole answers the name with its own site's node; the records' script writes them whole", () => {
    expect(failoverHosts(lady.routes)).toEqual(["home.qui3tly.cloud"]);
    expect(failoverHosts(within({}).master!.routes)).toEqual([]);
    const script = renderFailoverRecordsInstall("pihole", "100.64.0.2", ["home.qui3tly.cloud"]);
    expect(script).toContain("'RECORDS'\n100.64.0.2 home.qui3tly.cloud\nRECORDS\n");
    expect(() => renderFailoverRecordsInstall("pihole", "", ["home.qui3tly.cloud"])).toThrow(
      "expected the site node's tailnet IPv4 address, got ``",
    );
    for (const s of [script, renderFailoverRecordsUninstall("pihole")]) {
      const r = spawnSync("bash", ["-n"], { input: s, encoding: "utf8" });
      expect([r.status, r.stderr]).toEqual([0, ""]);
    }
  });

  test("Prometheus probes the name once, as the primary's", () => {
    const prometheus = container(master, "prometheus")!;
    const config = Object.entries(prometheus.files).find(([f]) => f.endsWith("prometheus.yml"))![1];
    expect(config.split("https://home.qui3tly.cloud/api/healthcheck").length - 1).toBe(1);
  });
});

/**
 * The job's script, run for real (bash, curl, sha256sum, flock) against the real share (python3 sync-share.py) on
 * this machine. Test doubles, as small as can be: `docker exec C CMD...` runs CMD here with the secondary's files in
 * a directory of their own; `curl` drops the egress proxy (`-x`) and can fail on a pattern, leaving half a file as a
 * timed-out download does; `pihole` records the reloads it is asked for, or fails.
 */
describe("the sync job against the share, on this machine", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-sync-run-"));
  const [pri, sec, bin] = ["primary", "secondary", "bin"].map((d) => path.join(dir, d));
  const port = 18000 + (process.pid % 2000);
  let share: ChildProcess | undefined;
  const file = (name: string) => path.join(pri, name);
  const SHARE_SCRIPT = path.join(__dirname, "..", "render", "sync-share.py");
  /** Waits until a share's metrics port answers its health check. */
  const answers = async (metricsPort: number) => {
    for (let i = 0; i < 50; i++) {
      if (spawnSync("curl", ["-fs", `http://127.0.0.1:${metricsPort}/healthz`]).status === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the share on ${metricsPort} did not answer`);
  };
  const write = (f: string, text: string, mode = 0o755) => fs.writeFileSync(f, text, { mode });

  beforeAll(async () => {
    for (const d of [pri, sec, bin]) fs.mkdirSync(d);
    write(
      path.join(bin, "docker"),
      `#!/bin/bash\nshift 2\nargs=()\nfor a in "$@"; do case "$a" in ${pri}/*) a="${sec}/\${a#${pri}/}";; esac; args+=("$a"); done\nexec "\${args[@]}"\n`,
    );
    write(
      path.join(bin, "curl"),
      `#!/bin/bash\nargs=(); o=""\nwhile [ $# -gt 0 ]; do case "$1" in -x) shift 2; continue;; -o) o=$2;; esac; args+=("$1"); shift; done\n` +
        `if [ -n "\${FAIL:-}" ]; then case "\${args[*]}" in *$FAIL*) [ -z "$o" ] || echo partial >"$o"; exit 28;; esac; fi\nexec /usr/bin/curl "\${args[@]}"\n`,
    );
    write(
      path.join(bin, "pihole"),
      `#!/bin/bash\n[ -z "\${FAIL_RELOAD:-}" ] || exit 1\necho "$*" >>${dir}/reloads\n`,
    );
    fs.writeFileSync(file("custom.list"), "10.0.0.1 a.example\n");
    fs.writeFileSync(file("cname.conf"), "cname=b.example,a.example\n");
    share = spawn(
      "python3",
      [
        SHARE_SCRIPT,
        String(port),
        String(port + 1),
        file("custom.list"),
        file("cname.conf"),
        file("missing.db"),
      ],
      { stdio: "ignore" },
    );
    await answers(port + 1);
  });
  afterAll(() => {
    share?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const script = (sharePort: number) => {
    const site = {
      name: "lady",
      file: "Pulumi.lady.yaml",
      estate: { sites: [{ name: "master", meshHost: "127.0.0.1" }] },
      follows: [
        {
          service: "pihole",
          primary: "master",
          container: "pihole",
          files: {
            [file("custom.list")]: ["pihole", "restartdns", "reload"],
            [file("cname.conf")]: ["pihole", "restartdns"],
            [file("missing.db")]: ["pihole", "restartdns", "reload"],
          },
        },
      ],
    } as unknown as Parameters<typeof renderSyncScript>[0];
    return renderSyncScript(site)
      .replace(/^STATE=.*$/m, `STATE=${dir}/state`)
      .replace(/^METRICS=.*$/m, `METRICS=${dir}/metrics`)
      .replace(`:${SYNC_PORT}`, `:${sharePort}`);
  };
  const run = (env: Record<string, string> = {}, sharePort = port) => {
    fs.rmSync(path.join(dir, "reloads"), { force: true });
    const r = spawnSync("bash", ["-c", script(sharePort)], {
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...env },
      encoding: "utf8",
    });
    const reloads = fs.existsSync(path.join(dir, "reloads"))
      ? fs.readFileSync(path.join(dir, "reloads"), "utf8")
      : "";
    const gauges = fs.readFileSync(path.join(dir, "metrics", "sync.prom"), "utf8");
    return {
      code: r.status,
      reloads,
      ok: /qcloud_sync_last_run_success\{[^}]*\} (\d)/.exec(gauges)![1],
      log: r.stderr,
    };
  };
  const leftovers = () => fs.readdirSync(sec).filter((f) => f.includes("qcloud-sync"));

  test("a first run takes every file the primary has, each reload once; a second takes nothing", () => {
    expect(run()).toMatchObject({ code: 0, reloads: "restartdns\nrestartdns reload\n", ok: "1" });
    expect(fs.readFileSync(path.join(sec, "custom.list"), "utf8")).toBe("10.0.0.1 a.example\n");
    // The primary has no such database: the secondary keeps what it has (nothing).
    expect(fs.existsSync(path.join(sec, "missing.db"))).toBe(false);
    expect(run()).toMatchObject({ code: 0, reloads: "", ok: "1" });
  });

  test("a file that does not come whole is not put in place, nor left beside; the reloads run anyway", () => {
    fs.appendFileSync(file("custom.list"), "10.0.0.2 c.example\n");
    fs.appendFileSync(file("cname.conf"), "cname=d.example,a.example\n");
    // Each file's reload is queued before it is fetched: one too many is harmless, one missing is not.
    expect(run({ FAIL: "cname.conf" })).toMatchObject({
      code: 1,
      reloads: "restartdns\nrestartdns reload\n",
      ok: "0",
    });
    expect(fs.readFileSync(path.join(sec, "custom.list"), "utf8")).toContain("c.example");
    expect(fs.readFileSync(path.join(sec, "cname.conf"), "utf8")).not.toContain("d.example");
    expect(leftovers()).toEqual([]);
    expect(run()).toMatchObject({ code: 0, reloads: "restartdns\n", ok: "1" });
  });

  test("a reload that fails is run by the next run, though nothing new comes", () => {
    fs.appendFileSync(file("custom.list"), "10.0.0.3 e.example\n");
    expect(run({ FAIL_RELOAD: "1" })).toMatchObject({ code: 1, ok: "0" });
    expect(run()).toMatchObject({ code: 0, reloads: "restartdns reload\n", ok: "1" });
    expect(run()).toMatchObject({ code: 0, reloads: "", ok: "1" });
  });

  test("a file the manifest lists that is not this side's to take is left alone, and the run fails", () => {
    const extra = path.join(sec, "..", "extra");
    expect(run({ EXTRA: "1" })).toMatchObject({ code: 0, ok: "1" });
    expect(fs.existsSync(extra)).toBe(false);
  });

  test("a share that does not answer fails the run, and the secondary keeps what it has", () => {
    share!.kill();
    expect(run()).toMatchObject({ code: 1, ok: "0" });
    expect(fs.readFileSync(path.join(sec, "custom.list"), "utf8")).toContain("e.example");
  });
});
