import * as path from "node:path";
import type { PolicyResourceOptions, ResourceValidationArgs, ResourceValidationPolicy } from "@pulumi/policy";
import { unknownCheckingProxy } from "@pulumi/policy";
import * as proxy from "@pulumi/policy/proxy";
import { committed } from "./fixtures";
import { deployRecorded, recordResources, reveal, type Recorded } from "./mocks";
import { mapSource } from "../config/source";
import { loadProjectSite } from "../model/estate";
import { SERVICE_LABEL } from "../model/site";
import { policyConfig } from "../policy";
import {
  CONTAINER,
  HCLOUD_FIREWALL,
  HCLOUD_SERVER,
  POLICIES,
  REMOTE_IMAGE,
  VOLUME,
  unpinned,
} from "../policy/rules";
import type { SiteModel } from "../render/siteModel";

const mocks = recordResources();
// What the analyzer puts where a preview cannot know a value (declared by the module, not by its types).
const { unknownArrayValue, unknownStringValue } = proxy as unknown as Record<string, unknown>;
const ROOT = path.resolve(__dirname, "..");

/** A resource as a rule sees it: type, name, inputs and options. */
interface Resource {
  readonly type: string;
  readonly name: string;
  readonly props: Record<string, unknown>;
  readonly opts?: Partial<PolicyResourceOptions>;
}

const policy = (name: string): ResourceValidationPolicy => {
  const p = POLICIES.find((x) => x.name === name);
  if (!p) throw new Error(`no policy \`${name}\``);
  return p;
};

/**
 * Runs one rule on one resource as the pack's server does (inputs behind the unknown-checking proxy, the policy's
 * own config) and returns the messages it reported.
 */
function violations(name: string, r: Resource, config: object = {}): string[] {
  const found: string[] = [];
  const args: ResourceValidationArgs = {
    type: r.type,
    name: r.name,
    urn: `urn:pulumi:test::qui3tly-cloud::${r.type}::${r.name}`,
    props: unknownCheckingProxy(r.props),
    opts: {
      protect: false,
      ignoreChanges: [],
      aliases: [],
      customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 },
      additionalSecretOutputs: [],
      ...r.opts,
    },
    stackTags: new Map(),
    isType: () => false,
    asType: () => undefined,
    getConfig: <T extends object>() => config as T,
    notApplicable: (reason?: string) => {
      throw new Error(`not applicable: ${reason}`);
    },
  };
  for (const v of [policy(name).validateResource ?? []].flat()) void v(args, (m) => found.push(m));
  return found;
}

/** Nextcloud's Redis, as the program registers it. */
const redis = (props: Record<string, unknown> = {}, opts: Partial<PolicyResourceOptions> = {}): Resource => ({
  type: CONTAINER,
  name: "lady-nextcloud-redis",
  props: {
    name: "nextcloud-redis",
    image: `sha256:${"a".repeat(64)}`,
    memory: 256,
    restart: "unless-stopped",
    envs: ["REDIS_PASSWORD=s3cret-value"],
    ports: [],
    labels: [{ label: SERVICE_LABEL, value: "nextcloud" }],
    ...props,
  },
  opts: { additionalSecretOutputs: ["envs"], ...opts },
});
const C = "container `lady-nextcloud-redis` (`nextcloud-redis`)";
const firewall = (sourceIps: string[], port = "22"): Resource => ({
  type: HCLOUD_FIREWALL,
  name: "madam",
  props: { rules: [{ direction: "in", protocol: "tcp", port, sourceIps }] },
});

/** Each rule: a resource that passes, one that violates it, the messages, and the rule's config. */
const cases: [string, Resource, Resource, string[], object?][] = [
  [
    "image-pinned",
    {
      type: REMOTE_IMAGE,
      name: "lady-redis",
      props: { name: "registry:5000/docker.io/library/redis:7.4.1" },
    },
    { type: REMOTE_IMAGE, name: "lady-redis", props: { name: "registry:5000/docker.io/library/redis" } },
    [
      "image `lady-redis` pulls `registry:5000/docker.io/library/redis`: it has no tag (Docker pulls `latest`); expected an exact version tag or a digest",
    ],
  ],
  [
    "image-pinned",
    redis({ image: "docker.io/library/redis:7.4.1@sha256:" + "b".repeat(64) }),
    redis({ image: "redis:latest" }),
    [`${C} runs \`redis:latest\`: its tag is \`latest\`; expected an exact version tag or a digest`],
  ],
  [
    "no-privileged-container",
    redis({ privileged: false }),
    redis({ privileged: true }),
    [
      `${C} is privileged: expected \`privileged\` unset, with the capabilities and devices it needs from the allow-list`,
    ],
  ],
  [
    "capabilities-allowed",
    redis({ capabilities: { adds: ["MKNOD"] } }),
    redis({ capabilities: { adds: ["MKNOD", "SYS_ADMIN"] }, devices: [{ hostPath: "/dev/net/tun" }] }),
    [
      `${C} adds capability \`SYS_ADMIN\`, which service \`nextcloud\` may not: expected one of \`MKNOD\` (policy/rules.ts ALLOWED)`,
      `${C} maps device \`/dev/net/tun\`, which service \`nextcloud\` may not: expected none (policy/rules.ts ALLOWED)`,
    ],
  ],
  [
    "capabilities-allowed",
    redis({ labels: [{ label: SERVICE_LABEL, value: "tailscale" }], capabilities: { adds: ["NET_ADMIN"] } }),
    redis({ labels: [], capabilities: { adds: ["NET_ADMIN"] } }),
    [
      `${C} adds capability \`NET_ADMIN\`, which service \`(no service label)\` may not: expected none (policy/rules.ts ALLOWED)`,
    ],
  ],
  [
    "memory-limit",
    redis(),
    redis({ memory: undefined }),
    [`${C} has no memory limit: expected \`memory\` in MB, above 0`],
  ],
  [
    "restart-policy",
    redis({ restart: "on-failure" }),
    redis({ restart: "no" }),
    [`${C} has restart policy \`no\`: expected one of \`always\`, \`unless-stopped\`, \`on-failure\``],
  ],
  [
    "state-volumes-protected",
    {
      type: VOLUME,
      name: "lady-nextcloud-redis-data",
      props: { name: "nextcloud-redis-data" },
      opts: { protect: true },
    },
    { type: VOLUME, name: "lady-nextcloud-redis-data", props: { name: "nextcloud-redis-data" } },
    [
      "volume `lady-nextcloud-redis-data` is not protected: expected `protect: true` on it (the stack file's `protect` is true), so no `up` or `destroy` can delete its data",
    ],
    { protect: true },
  ],
  [
    "host-ports-not-public",
    redis({ ports: [{ internal: 6379, external: 6379, ip: "0.0.0.0", protocol: "tcp" }] }),
    redis({ ports: [{ internal: 6379, external: 6380, ip: "0.0.0.0", protocol: "tcp" }] }),
    [
      `${C} publishes host port 6380/tcp on all addresses, which the catalog does not declare public: expected it bound to an address (\`ip\`), or declared in the catalog`,
    ],
    { publicPorts: { "nextcloud-redis": ["6379/tcp"] } },
  ],
  [
    "host-ports-not-public",
    redis({ ports: [{ internal: 6379, external: 6379, ip: "127.0.0.1", protocol: "tcp" }] }),
    // Docker binds every address when none is given.
    redis({ ports: [{ internal: 6379, external: 6379 }] }),
    [
      `${C} publishes host port 6379/tcp on all addresses, which the catalog does not declare public: expected it bound to an address (\`ip\`), or declared in the catalog`,
    ],
  ],
  [
    "secret-env-not-plain",
    redis(),
    redis({}, { additionalSecretOutputs: [] }),
    [
      `${C} passes \`REDIS_PASSWORD\` in plain text: the catalog marks it secret; expected a secret value (in a stack file, \`{ secret: <config key> }\` set with \`pulumi config set --secret\`), which makes \`envs\` secret`,
    ],
    { secretEnv: { "nextcloud-redis": ["REDIS_PASSWORD"] } },
  ],
  [
    "hcloud-server-firewall",
    { type: HCLOUD_SERVER, name: "madam", props: { firewallIds: [7] } },
    { type: HCLOUD_SERVER, name: "madam", props: {} },
    ["hcloud server `madam` has no firewall: expected `firewallIds` naming one"],
  ],
  [
    "hcloud-no-ssh-from-anywhere",
    firewall(["198.51.100.0/24"]),
    firewall(["198.51.100.0/24", "::/0"], "20-30"),
    [
      "hcloud firewall `madam` opens SSH (port 20-30/tcp) to `::/0`: expected `host.sshSources` in the stack file to name who may reach SSH (list `0.0.0.0/0` there to allow anywhere)",
    ],
    { sshFromAnywhere: false },
  ],
];

describe("each rule", () => {
  test("has a case here, and is mandatory", () => {
    expect([...new Set(cases.map(([name]) => name))].sort()).toEqual(POLICIES.map((p) => p.name).sort());
    expect(POLICIES.map((p) => p.enforcementLevel)).toEqual(POLICIES.map(() => "mandatory"));
  });

  test.each(cases)(
    "%s: passes the good resource, names what the bad one breaks",
    // Rest parameters: jest takes a function of more parameters than a row has for a `done` callback.
    (...[name, good, bad, messages, config]) => {
      expect(violations(name, good, config)).toEqual([]);
      expect(violations(name, bad, config)).toEqual(messages);
    },
  );

  test("never prints a secret env value, only its key", () => {
    const [message] = violations("secret-env-not-plain", redis({}, { additionalSecretOutputs: [] }), {
      secretEnv: { "nextcloud-redis": ["REDIS_PASSWORD"] },
    });
    expect(message).toContain("`REDIS_PASSWORD`");
    expect(message).not.toContain("s3cret-value");
  });

  test("what a preview cannot know yet passes, and the rest is still checked", () => {
    // A new image's id and a new password's env are outputs of resources the same preview creates.
    const fresh = redis(
      { image: unknownStringValue, envs: unknownArrayValue },
      { additionalSecretOutputs: [] },
    );
    expect(violations("image-pinned", fresh)).toEqual([]);
    // Not known, so every key the catalog marks secret counts as there.
    expect(
      violations("secret-env-not-plain", fresh, { secretEnv: { "nextcloud-redis": ["REDIS_PASSWORD"] } }),
    ).toHaveLength(1);
    expect(violations("memory-limit", redis({ memory: unknownStringValue }))).toEqual([]);
  });

  test("SSH from anywhere passes where the stack file says so", () => {
    expect(
      violations("hcloud-no-ssh-from-anywhere", firewall(["0.0.0.0/0"]), { sshFromAnywhere: true }),
    ).toEqual([]);
    expect(violations("hcloud-no-ssh-from-anywhere", firewall(["0.0.0.0/0"], "443"))).toEqual([]);
    expect(violations("hcloud-no-ssh-from-anywhere", firewall(["0.0.0.0/0"], "any"))).toHaveLength(1);
  });

  test.each([
    ["docker.io/library/redis:7.4.1-alpine", undefined],
    ["registry:5000/docker.io/library/redis:7.4.1-alpine", undefined],
    [`redis@sha256:${"c".repeat(64)}`, undefined],
    ["registry:5000/redis", "it has no tag (Docker pulls `latest`)"],
    ["redis:latest", "its tag is `latest`"],
  ])("unpinned(%s)", (ref, why) => {
    expect(unpinned(ref)).toBe(why);
  });
});

/** Every rule on every resource a site registers, with the site's config: the messages. */
function allViolations(model: SiteModel, res: readonly Recorded[]): string[] {
  const config: Record<string, object> = { ...policyConfig(model) };
  return res.flatMap((r) =>
    POLICIES.flatMap((p) =>
      violations(
        p.name,
        {
          type: r.type,
          name: r.name,
          // The analyzer sees secrets unwrapped.
          props: JSON.parse(JSON.stringify(r.inputs, (_k, v) => reveal(v))),
          opts: {
            protect: r.opts.protect ?? false,
            additionalSecretOutputs: r.opts.additionalSecretOutputs ?? [],
          },
        },
        config[p.name],
      ).map((m) => `${p.name}: ${m}`),
    ),
  );
}

describe.each([
  ["master", 29, 19],
  ["lady", 31, 18],
])("the committed %s stack", (site, containers, volumes) => {
  test("passes every rule", async () => {
    const model = loadProjectSite(ROOT, site);
    const { res } = await deployRecorded(model, mocks);
    // Not vacuous: the rules saw every container and every protected volume.
    const count = (type: string) => res.filter((r) => r.type === type).length;
    expect(count(CONTAINER)).toBe(containers);
    expect(res.filter((r) => r.type === VOLUME && r.opts.protect).length).toBe(volumes);
    expect(count(VOLUME)).toBe(volumes);
    expect(allViolations(model, res)).toEqual([]);
  });
});

describe("the e2e's breaking edit", () => {
  test("a plain value for a key the catalog marks secret: `npm run check` accepts it, the pack refuses it", async () => {
    const lady = committed("lady", {
      services: { nextcloud: { containers: { redis: { env: { REDIS_PASSWORD: "hunter2" } } } } },
    });
    // What `npm run check` runs: it loads.
    const model = loadProjectSite(ROOT, "lady", mapSource("Pulumi.lady.yaml", "lady", lady));
    const { res } = await deployRecorded(model, mocks);
    const found = allViolations(model, res);
    expect(found).toEqual([
      "secret-env-not-plain: container `lady-nextcloud-redis` (`nextcloud-redis`) passes `REDIS_PASSWORD` in plain text: the catalog marks it secret; expected a secret value (in a stack file, `{ secret: <config key> }` set with `pulumi config set --secret`), which makes `envs` secret",
    ]);
    expect(found.join("\n")).not.toContain("hunter2");
  });
});
