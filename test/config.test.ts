import * as path from "node:path";
import { ConfigError } from "../config/errors";
import { fileSource, mapSource } from "../config/source";
import { hcloudHostConfig, servicesSite } from "./fixtures";
import { loadEstate } from "../model/estate";
import { goDuration, loadSite, seconds } from "../model/site";

const ROOT = path.resolve(__dirname, "..");
const SITE = "qui3tly-cloud:site";

/** A valid services site; each case below breaks one thing. */
const lady = () => servicesSite({ services: { nextcloud: true, unifi: true, uisp: true } });

// 32 GB: lady's limits (14 GiB) overcommit a smaller server past the capacity check's factor.
const hcloudHost = hcloudHostConfig("cx53");

type Case = [string, (c: Record<string, any>) => void, string, RegExp];
const cases: Case[] = [
  [
    "a tunnel asked for in the services list",
    (c) => (c[SITE].services.wireguard = true),
    `${SITE}.services.wireguard`,
    /expected `mesh.wireguard` instead/,
  ],
  [
    "an ingress network too small for the node, Traefik and the gateway",
    (c) => (c[SITE].mesh = { ingressSubnet: "10.255.255.252/30" }),
    `${SITE}.mesh.ingressSubnet`,
    /expected a private IPv4 network .* of \/16 to \/29/,
  ],
  [
    "an ingress network given by a host address, not its network address",
    (c) => (c[SITE].mesh = { ingressSubnet: "10.255.255.250/29" }),
    `${SITE}.mesh.ingressSubnet`,
    /of \/16 to \/29, such as `10.255.255.248\/29`/,
  ],
  [
    "an ingress network outside private address space (it would trust the world)",
    (c) => (c[SITE].mesh = { ingressSubnet: "0.0.0.0/0" }),
    `${SITE}.mesh.ingressSubnet`,
    /expected a private IPv4 network \(in 10\/8, 172.16\/12 or 192.168\/16\)/,
  ],
  [
    "an ingress network in the tailnet's own range",
    (c) => (c[SITE].mesh = { ingressSubnet: "100.64.0.0/29" }),
    `${SITE}.mesh.ingressSubnet`,
    /expected a private IPv4 network/,
  ],
  [
    "unknown service",
    (c) => (c[SITE].services.nextclod = true),
    `${SITE}.services.nextclod`,
    /unknown service; expected one of .*nextcloud/,
  ],
  [
    "duplicate host port",
    (c) => (c[SITE].services.headscale = true),
    `${SITE}.services.unifi`,
    /host port 3478\/udp of `unifi` is already published by `headscale`/,
  ],
  [
    "missing hcloud token",
    (c) => (c[SITE].host = hcloudHost),
    "hcloud:token",
    /missing secret: .*pulumi config set --secret hcloud:token/,
  ],
  [
    "missing env secret",
    (c) => (c[SITE].services.nextcloud = { env: { MAIL_SMTPPASSWORD: { secret: "smtpPassword" } } }),
    "qui3tly-cloud:smtpPassword",
    /missing secret: `nextcloud` reads it from env/,
  ],
  [
    "plaintext SSH key",
    (c) => (c["qui3tly-cloud:sshPrivateKey"] = "-----BEGIN OPENSSH PRIVATE KEY-----"),
    "qui3tly-cloud:sshPrivateKey",
    /expected a secret, found plain text/,
  ],
  [
    "bad address",
    (c) => (c[SITE].host.address = "300.1.1.1"),
    `${SITE}.host.address`,
    /expected an IPv4 or IPv6 address or a DNS name/,
  ],
  [
    "bad domain",
    (c) => (c[SITE].domain = "qui3tly"),
    `${SITE}.domain`,
    /expected a fully qualified domain name/,
  ],
  [
    "unknown role",
    (c) => (c[SITE].role = "database"),
    `${SITE}.role`,
    /expected one of "control-plane"\|"services"/,
  ],
  [
    "invalid memory limit",
    (c) => (c[SITE].services.nextcloud = { resources: { memory: "lots" } }),
    `${SITE}.services.nextcloud.resources.memory`,
    /expected a size such as `512m`/,
  ],
  [
    "memory below Docker's minimum",
    (c) => (c[SITE].services.nextcloud = { resources: { memory: "4m" } }),
    `${SITE}.services.nextcloud.resources.memory`,
    /at least `6m`/,
  ],
  [
    "negative CPUs",
    (c) => (c[SITE].services.unifi = { resources: { cpus: -1 } }),
    `${SITE}.services.unifi.resources.cpus`,
    /expected a positive number of CPUs/,
  ],
  [
    "latest tag",
    (c) => (c[SITE].services.nextcloud = { version: "latest" }),
    `${SITE}.services.nextcloud.version`,
    /not `latest`/,
  ],
  [
    "bad digest",
    (c) => (c[SITE].services.nextcloud = { digest: "sha256:abc" }),
    `${SITE}.services.nextcloud.digest`,
    /64 hex digits/,
  ],
  ["port out of range", (c) => (c[SITE].host.port = 70000), `${SITE}.host.port`, /expected a port 1-65535/],
  ["unknown field", (c) => (c[SITE].hots = {}), SITE, /unknown field\(s\) `hots`/],
  [
    "unknown host kind",
    (c) => (c[SITE].host.kind = "vmware"),
    `${SITE}.host.kind`,
    /expected `kind: existing` or `kind: hcloud`/,
  ],
  [
    "missing control plane",
    (c) => delete c[SITE].controlPlane,
    `${SITE}.controlPlane`,
    /expected the name of the control-plane site/,
  ],
  [
    "control plane on a control plane",
    (c) => (c[SITE].role = "control-plane"),
    `${SITE}.controlPlane`,
    /a control-plane site is its own/,
  ],
  [
    "unknown container override",
    (c) => (c[SITE].services.nextcloud = { containers: { web: { version: "1.0" } } }),
    `${SITE}.services.nextcloud.containers.web`,
    /unknown container; expected cron, db/,
  ],
  [
    "unknown route override",
    (c) => (c[SITE].services.nextcloud = { routes: { www: { host: "files.example.org" } } }),
    `${SITE}.services.nextcloud.routes.www`,
    /unknown route; expected web, office/,
  ],
  [
    "route host taken",
    (c) => (c[SITE].services.unifi = { routes: { ui: { host: "cloud.qui3tly.cloud" } } }),
    `${SITE}.services.unifi.routes.ui.host`,
    /`cloud.qui3tly.cloud\/` is already routed to `nextcloud`/,
  ],
  [
    "routes without Traefik",
    (c) => (c[SITE].services.traefik = false),
    `${SITE}.services.traefik`,
    /expected Traefik on a site with routes/,
  ],
  [
    "hcloud host without SSH sources",
    (c) => {
      c[SITE].host = { ...hcloudHost };
      delete c[SITE].host.sshSources;
    },
    `${SITE}.host.sshSources`,
    /^required: expected the CIDR ranges that may reach SSH, such as `\[203\.0\.113\.0\/24\]`/,
  ],
  [
    "bad SSH public key",
    (c) => (c[SITE].host = { ...hcloudHost, sshKeys: ["not-a-key"] }),
    `${SITE}.host.sshKeys[0]`,
    /expected an OpenSSH public key/,
  ],
  ["bad ACME email", (c) => (c[SITE].acmeEmail = "ops"), `${SITE}.acmeEmail`, /expected an email address/],
  [
    "DNS challenge: a provider that is no code",
    (c) => (c[SITE].acmeDnsChallenge = { provider: "Hetzner DNS" }),
    `${SITE}.acmeDnsChallenge.provider`,
    /expected a DNS provider's code as Traefik's docs list it, such as `hetzner`/,
  ],
  [
    "DNS challenge: the manual provider",
    (c) => (c[SITE].acmeDnsChallenge = { provider: "manual" }),
    `${SITE}.acmeDnsChallenge.provider`,
    /expected a provider with an API: `manual` waits for a person at every renewal/,
  ],
  [
    "DNS challenge: a setting's _FILE",
    (c) =>
      (c[SITE].acmeDnsChallenge = {
        provider: "hetzner",
        env: { HETZNER_API_KEY_FILE: "/run/secrets/hetzner" },
      }),
    `${SITE}.acmeDnsChallenge.env.HETZNER_API_KEY_FILE`,
    /key `HETZNER_API_KEY_FILE`: expected the setting's own name: a `\{ secret: <config key> \}` value becomes its `_FILE`/,
  ],
  [
    "DNS challenge: a bad resolver",
    (c) => (c[SITE].acmeDnsChallenge = { provider: "hetzner", resolvers: ["1.1.1.1"] }),
    `${SITE}.acmeDnsChallenge.resolvers[0]`,
    /expected `host:port` such as `1.1.1.1:53`/,
  ],
  [
    "DNS challenge: its credential missing",
    (c) =>
      (c[SITE].acmeDnsChallenge = {
        provider: "hetzner",
        env: { HETZNER_API_KEY: { secret: "hetznerDnsToken" } },
      }),
    "qui3tly-cloud:hetznerDnsToken",
    /missing secret: Traefik's DNS challenge reads it \(`acmeDnsChallenge.env.HETZNER_API_KEY`\); set it with `pulumi config set --secret qui3tly-cloud:hetznerDnsToken`/,
  ],
  [
    "DNS challenge: a credential in the stack file",
    (c) => (c[SITE].acmeDnsChallenge = { provider: "cloudflare", env: { CF_DNS_API_TOKEN: "abc" } }),
    `${SITE}.acmeDnsChallenge.env.CF_DNS_API_TOKEN`,
    /expected `\{ secret: <config key> \}`: a credential in plain text would be in the stack file and in Traefik's environment/,
  ],
  [
    "DNS challenge: its credential in plain text",
    (c) => {
      c[SITE].acmeDnsChallenge = {
        provider: "hetzner",
        env: { HETZNER_API_KEY: { secret: "hetznerDnsToken" } },
      };
      c["qui3tly-cloud:hetznerDnsToken"] = "plain";
    },
    "qui3tly-cloud:hetznerDnsToken",
    /expected a secret, found plain text/,
  ],
  ["missing domain", (c) => delete c[SITE].domain, `${SITE}.domain`, /required/],
  [
    "bad registry",
    (c) => (c[SITE].images = { registry: "http://registry" }),
    `${SITE}.images.registry`,
    /expected a registry host/,
  ],
  [
    "site as a secret",
    (c) => (c[SITE] = { secure: "v1:abc" }),
    SITE,
    /expected a plain object, not a secret/,
  ],
  ["no site at all", (c) => delete c[SITE], SITE, /expected the site object/],
  [
    "monitoring off the control plane",
    (c) => (c[SITE].monitoring = {}),
    `${SITE}.monitoring`,
    /expected it on the control plane only/,
  ],
  [
    "bad retention size",
    (c) => (c[SITE].monitoring = { retention: { size: "20G" } }),
    `${SITE}.monitoring.retention.size`,
    /expected a size such as `20GB`/,
  ],
  [
    "receiver secret in plain text",
    (c) => {
      c[SITE].monitoring = {
        receivers: { ntfy: { url: "https://ntfy.example.org/alerts", tokenSecret: "ntfyToken" } },
      };
      c["qui3tly-cloud:ntfyToken"] = "tk_plain";
    },
    "qui3tly-cloud:ntfyToken",
    /expected a secret, found plain text/,
  ],
  [
    "missing email password",
    (c) =>
      (c[SITE].monitoring = {
        receivers: {
          email: {
            smarthost: "smtp.example.org:587",
            from: "a@example.org",
            to: ["b@example.org"],
            passwordSecret: "smtpPassword",
          },
        },
      }),
    "qui3tly-cloud:smtpPassword",
    /missing secret: the `email` alert receiver reads it/,
  ],
];

describe("a bad stack file fails with the file, the field and what was expected", () => {
  test.each(cases)("%s", (_name, breakIt, field, expected) => {
    const config = lady();
    breakIt(config);
    let error: unknown;
    try {
      loadSite(mapSource("Pulumi.lady.yaml", "lady", config));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues;
    const hit = issues.find((i) => i.path === field);
    expect({ field, issues }).toEqual({
      field,
      issues: expect.arrayContaining([expect.objectContaining({ path: field })]),
    });
    expect(hit!.message).toMatch(expected);
    expect((error as Error).message).toContain(`Pulumi.lady.yaml: \`${field}\`: `);
  });

  test("every problem is reported at once, not only the first", () => {
    const config = lady();
    config[SITE].domain = "qui3tly";
    config[SITE].host.port = 0;
    const paths = () => {
      try {
        loadSite(mapSource("Pulumi.lady.yaml", "lady", config));
      } catch (e) {
        return (e as ConfigError).issues.map((i) => i.path).sort();
      }
      return [];
    };
    expect(paths()).toEqual([`${SITE}.domain`, `${SITE}.host.port`]);
  });

  test("a stack name that is no site name is refused", () => {
    expect(() => loadSite(mapSource("Pulumi.Lady_1.yaml", "Lady_1", lady()))).toThrow(
      /Pulumi.Lady_1.yaml: `\(stack name\)`: `Lady_1`: expected a lowercase name/,
    );
  });

  test("a file that is not YAML is refused with its name", () => {
    expect(() => fileSource(path.join(__dirname, "fixtures", "Pulumi.broken.yaml"))).toThrow(
      /Pulumi.broken.yaml: `\(file\)`: expected a readable YAML file/,
    );
  });
});

describe("a declared flow names the service it is for (mesh.flows[].service)", () => {
  const master = (flows: unknown[]) =>
    mapSource("Pulumi.master.yaml", "master", {
      [SITE]: {
        role: "control-plane",
        domain: "qui3tly.cloud",
        acmeEmail: "ops@qui3tly.cloud",
        host: { kind: "existing", address: "203.0.113.10" },
        mesh: { flows },
      },
    });
  const estate = (flows: unknown[]) => [master(flows), mapSource("Pulumi.lady.yaml", "lady", lady())];
  const issuesOf = (flows: unknown[]) => {
    try {
      loadEstate(estate(flows));
    } catch (e) {
      return (e as ConfigError).issues.map((i) => `${i.file}: ${i.path}: ${i.message}`);
    }
    return [];
  };
  const flow = { from: "site:lady", to: "site:master", ports: [25], why: "mail relay" };

  test.each<[string, Record<string, unknown>, string]>([
    [
      "a flow from a site without its service",
      flow,
      "Pulumi.master.yaml: qui3tly-cloud:site.mesh.flows[0].service: required: the service on the `from` site(s) this flow is for (only it can use the flow), such as `nextcloud`",
    ],
    [
      "a flow from a role without its service",
      { ...flow, from: "role:services" },
      "Pulumi.master.yaml: qui3tly-cloud:site.mesh.flows[0].service: required: the service on the `from` site(s) this flow is for (only it can use the flow), such as `nextcloud`",
    ],
    [
      "a flow from the admins naming a service",
      { ...flow, from: "admins", service: "nextcloud" },
      "Pulumi.master.yaml: qui3tly-cloud:site.mesh.flows[0].service: expected none: a flow from `admins` is for people, not a service",
    ],
    [
      "a service that does not run on the `from` site",
      { ...flow, service: "grafana" },
      "Pulumi.master.yaml: qui3tly-cloud:site.mesh.flows[0].service: expected a service that runs on the `from` site(s): `grafana` does not run on `lady`",
    ],
    [
      "a service that is no service name",
      { ...flow, service: "Next Cloud" },
      "Pulumi.master.yaml: qui3tly-cloud:site.mesh.flows[0].service: expected a service name such as `nextcloud`",
    ],
  ])("%s is refused, naming the file and the field", (_name, f, expected) => {
    expect(issuesOf([f])).toEqual([expected]);
  });

  test.each([
    ["lady-promtail", "`lady-*`: site `lady`'s flow consumers' identities"],
    ["master-prometheus", "`master-*`: site `master`'s flow consumers' identities"],
    ["site-master", "`site-*` and `role-*`: the sites' and roles' tags"],
    ["role-control-plane", "`site-*` and `role-*`: the sites' and roles' tags"],
  ])("an extra node tag that is another identity's (%s) is refused", (tag, why) => {
    const ladyWithTag = lady();
    ladyWithTag[SITE].mesh = { tags: ["backup-target", tag] };
    let issues: string[] = [];
    try {
      loadEstate([master([]), mapSource("Pulumi.lady.yaml", "lady", ladyWithTag)]);
    } catch (e) {
      issues = (e as ConfigError).issues.map((i) => `${i.file}: ${i.path}: ${i.message}`);
    }
    expect(issues).toEqual([
      `Pulumi.lady.yaml: qui3tly-cloud:site.mesh.tags[1]: \`${tag}\` is reserved (${why}); expected a tag of your own`,
    ]);
  });

  test("a flow for a service that runs there is taken: that service's egress node, on a network of its own", () => {
    const sites = loadEstate(estate([{ ...flow, service: "nextcloud" }]));
    const ladySite = loadSite(mapSource("Pulumi.lady.yaml", "lady", lady()), sites);
    const node = ladySite.services
      .find((s) => s.name === "tailscale")!
      .containers.find((c) => c.name === "tailscale-egress-nextcloud")!;
    expect(node.networks).toEqual(["egress-nextcloud"]);
    // Every container of the service joins it (their one way to the flow); no other container does.
    const on = ladySite.services
      .flatMap((s) => s.containers)
      .filter((c) => c.networks.includes("egress-nextcloud"))
      .map((c) => c.name)
      .sort();
    expect(on).toEqual(
      [
        ...ladySite.services.find((s) => s.name === "nextcloud")!.containers.map((c) => c.name),
        "tailscale",
        "tailscale-egress-nextcloud",
      ].sort(),
    );
  });
});

describe("valid configs", () => {
  test("the secrets an env override names are accepted when set as secrets", () => {
    const config = lady();
    config[SITE].services.nextcloud = { env: { MAIL_SMTPPASSWORD: { secret: "smtpPassword" } } };
    config["qui3tly-cloud:smtpPassword"] = { secure: "v1:abc" };
    const nc = loadSite(mapSource("Pulumi.lady.yaml", "lady", config)).services.find(
      (s) => s.name === "nextcloud",
    )!;
    expect(nc.containers.find((c) => c.key === "main")!.env.MAIL_SMTPPASSWORD).toEqual({
      config: "smtpPassword",
    });
  });

  test("an hcloud host with its token set as a secret is accepted, with defaults", () => {
    const config = lady();
    config[SITE].host = hcloudHost;
    config["hcloud:token"] = { secure: "v1:abc" };
    expect(loadSite(mapSource("Pulumi.lady.yaml", "lady", config)).host).toEqual({
      ...hcloudHost,
      image: "debian-12",
    });
  });

  test("defaults: SSH as root on port 22, protected volumes, UTC", () => {
    const m = loadSite(mapSource("Pulumi.lady.yaml", "lady", lady()));
    expect(m.host).toEqual({ kind: "existing", address: "203.0.113.20", user: "root", port: 22 });
    expect({ protect: m.protect, timezone: m.timezone, registry: m.registry }).toEqual({
      protect: true,
      timezone: "Etc/UTC",
      registry: undefined,
    });
  });

  test("overrides reach the right container: version (and containers of the same release), resources, env", () => {
    const config = lady();
    config[SITE].services.nextcloud = {
      version: "30.0.5-apache",
      resources: { memory: "3g", cpus: 1.5 },
      env: { PHP_UPLOAD_LIMIT: "10G" },
      containers: { db: { resources: { memory: "2g" } } },
    };
    const nc = loadSite(mapSource("Pulumi.lady.yaml", "lady", config)).services.find(
      (s) => s.name === "nextcloud",
    )!;
    const main = nc.containers.find((c) => c.key === "main")!;
    const db = nc.containers.find((c) => c.key === "db")!;
    expect([main.image, main.memoryMb, main.cpus, main.env.PHP_UPLOAD_LIMIT]).toEqual([
      "docker.io/library/nextcloud:30.0.5-apache",
      3072,
      1.5,
      "10G",
    ]);
    // The cron job runs the app's image: it follows the version; the database keeps its own.
    expect(nc.containers.find((c) => c.key === "cron")!.image).toBe(
      "docker.io/library/nextcloud:30.0.5-apache",
    );
    expect([db.memoryMb, db.image]).toEqual([2048, "docker.io/library/postgres:16.6-alpine"]);
  });

  test("a registry prefixes every image, keeping its path", () => {
    const config = lady();
    config[SITE].images = { registry: "registry:5000" };
    const images = loadSite(mapSource("Pulumi.lady.yaml", "lady", config)).services.flatMap((s) =>
      s.containers.map((c) => c.image),
    );
    expect(images.every((i) => i.startsWith("registry:5000/"))).toBe(true);
    expect(images).toContain("registry:5000/docker.io/library/postgres:16.6-alpine");
  });

  test("`false` removes a role service", () => {
    const config = lady();
    config[SITE].services["portainer-agent"] = false;
    const names = loadSite(mapSource("Pulumi.lady.yaml", "lady", config)).services.map((s) => s.name);
    expect(names).not.toContain("portainer-agent");
    expect(names).toContain("cadvisor");
  });
});

describe("the committed stacks", () => {
  test.each([
    // Loaded alone: no other site, so no flow and no egress node (`npm run check` counts them within the estate).
    ["master", "control-plane", 18, 26],
    ["lady", "services", 10, 28],
  ])("%s: %s, %i services, %i containers", (stack, role, services, containers) => {
    const m = loadSite(fileSource(path.join(ROOT, `Pulumi.${stack}.yaml`)));
    expect([m.role, m.services.length, m.services.reduce((n, s) => n + s.containers.length, 0)]).toEqual([
      role,
      services,
      containers,
    ]);
  });
});

describe("durations", () => {
  test.each([
    ["30s", 30, "30s"],
    ["60s", 60, "1m0s"],
    ["300s", 300, "5m0s"],
    ["2m", 120, "2m0s"],
    ["1h", 3600, "1h0m0s"],
    ["1m30s", 90, "1m30s"],
  ])("%s is %i seconds, which Docker reports as %s", (text, n, go) => {
    expect([seconds(text), goDuration(n)]).toEqual([n, go]);
  });

  test("a malformed duration is refused", () => {
    expect(() => seconds("1 minute")).toThrow("expected a duration such as `30s`, got `1 minute`");
  });
});
