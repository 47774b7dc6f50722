import * as pulumi from "@pulumi/pulumi";
import { TEST_SEAL_KEYS, testSecrets, withTestSealKey } from "./fixtures";
import type { Site, SiteBundle } from "../components";
import { canonicalJson, seal } from "../render/seal";
import type { SiteModel } from "../render/siteModel";
import { deploySite } from "../stacks/site";

/** One registered resource, as the engine would have seen it. */
export interface Recorded {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
  readonly opts: pulumi.CustomResourceOptions;
}

/**
 * Installs Pulumi mocks that record every resource with its inputs, and with its options where `capture` is passed
 * as a transformation. Outputs echo inputs, plus the few computed fields the program reads.
 */
export function recordResources(stack = "test"): {
  recorded: Recorded[];
  capture: pulumi.ResourceTransformation;
} {
  const recorded: Recorded[] = [];
  const opts = new Map<string, pulumi.CustomResourceOptions>();
  // Options (retainOnDelete, protect, deleteBeforeReplace ...) never reach the mock monitor: a transformation on
  // the top components sees them for every child.
  const capture: pulumi.ResourceTransformation = (a) => {
    opts.set(`${a.type}::${a.name}`, a.opts);
    return undefined;
  };
  pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs) {
        recorded.push({
          type: args.type,
          name: args.name,
          inputs: args.inputs,
          opts: opts.get(`${args.type}::${args.name}`) ?? {},
        });
        const state: Record<string, unknown> = { ...args.inputs, ...computedOutputs(args.type, args.name) };
        return { id: `${args.name}-id`, state };
      },
      call: (args: pulumi.runtime.MockCallArgs) => args.inputs,
    },
    "qui3tly-cloud",
    stack,
    false,
    "organization",
  );
  return { recorded, capture };
}

/**
 * Deploys a site's model (with its test sealing key and secrets) under the mocks `recordResources` installed, and
 * returns its Site and what it registered, once every input has resolved.
 */
export async function deployRecorded(
  model: SiteModel,
  { recorded, capture }: ReturnType<typeof recordResources>,
): Promise<{ site: Site; res: Recorded[] }> {
  recorded.length = 0;
  // A services site opens its bundle from the mocked stack reference with its test key.
  const site = deploySite(withTestSealKey(model), testSecrets(model.name), { transformations: [capture] });
  // A container registers once its image, networks, volumes and passwords have: its URN means all are in.
  await valueOf(pulumi.all([site.host.ready.urn, ...Object.values(site.containers).map((c) => c.urn)]));
  return { site, res: [...recorded] };
}

/** The computed outputs the program reads, as a provider would return them (test values). */
export function computedOutputs(type: string, name: string): Record<string, unknown> {
  const state: Record<string, unknown> = {};
  if (type === "docker:index/remoteImage:RemoteImage") state.imageId = `sha256:${name}`;
  if (type === "random:index/randomPassword:RandomPassword") {
    state.result = `pw-${name}`;
    state.bcryptHash = `$2a$10$hash-of-${name}`;
  }
  if (type === "hcloud:index/server:Server") state.ipv4Address = "203.0.113.7";
  if (type === "random:index/randomBytes:RandomBytes") {
    state.base64 = Buffer.alloc(32, name.length).toString("base64");
  }
  if (type === "command:remote:Command") {
    const site = /-key-(.+)$/.exec(name)?.[1];
    if (site) state.stdout = JSON.stringify({ key: `key-${site}` });
    if (name.endsWith("-tailnet-address")) state.stdout = "100.64.0.9\n";
  }
  if (type === "pulumi:pulumi:StackReference") {
    // What a control plane exports: each site's bundle sealed to that site's test key (test/fixtures.ts).
    // By node: each egress node has a key of its own.
    const meshAuthKeys = (site: string) => ({
      tailscale: `key-${site}`,
      "tailscale-egress-backup": `key-${site}-tailscale-egress-backup`,
      "tailscale-egress-promtail": `key-${site}-tailscale-egress-promtail`,
    });
    const bundles: Record<string, SiteBundle> = {
      lady: {
        meshAuthKeys: meshAuthKeys("lady"),
        // Any 32 bytes base64 make a key the config takes.
        wireguardPrivateKey: Buffer.alloc(32, 1).toString("base64"),
        backup: { repository: "repo-pw-lady", rest: "rest-pw-lady" },
        hosted: { master: { repository: "repo-pw-master", htpasswd: "master:$2a$10$hash-of-master" } },
        logPassword: "log-pw-lady",
      },
      madam: {
        meshAuthKeys: meshAuthKeys("madam"),
        wireguardPrivateKey: Buffer.alloc(32, 3).toString("base64"),
        backup: { repository: "repo-pw-madam", rest: "rest-pw-madam" },
        logPassword: "log-pw-madam",
      },
    };
    state.outputs = {
      controlPlane: {
        sealed: Object.fromEntries(
          Object.entries(bundles).map(([site, b]) => [
            site,
            seal(canonicalJson(b), site, TEST_SEAL_KEYS[site]!.publicKey, Buffer.alloc(32, 9)),
          ]),
        ),
        // Every tunnel site's: each is every other's peer (a full mesh).
        wireguardPublicKeys: {
          master: Buffer.alloc(32, 2).toString("base64"),
          lady: Buffer.alloc(32, 4).toString("base64"),
          madam: Buffer.alloc(32, 5).toString("base64"),
        },
      },
    };
  }
  return state;
}

/** Resolves an Output's value in tests. */
export function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

/** How the SDK hands a secret value to the monitor (and so to the mocks). */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

export function isSecretValue(v: unknown): boolean {
  return typeof v === "object" && v !== null && SECRET_SIG in v;
}

/** The value inside a secret wrapper, or the value itself. */
export function reveal<T = unknown>(v: unknown): T {
  return (isSecretValue(v) ? (v as { value: unknown }).value : v) as T;
}
