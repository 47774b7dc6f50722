import {
  UnknownValueError,
  type PolicyConfigSchema,
  type ReportViolation,
  type ResourceValidationArgs,
  type ResourceValidationPolicy,
} from "@pulumi/policy";
import { SERVICE_LABEL } from "../model/site";

/**
 * The estate's CrossGuard rules (issue 12): what every site's resources must be, checked on the engine's view of
 * them, after the program ran and before anything changes. policy/pack.ts serves them; policy/config.ts writes the
 * facts only a site's stack file and the catalog know (which host ports are public, which env keys are secret,
 * whether SSH may come from anywhere, whether volumes are protected). All are mandatory: each guards something the
 * program does by design today, so a violation is a regression, not a matter of taste.
 */

/** The resource types the rules read (the providers' tokens). */
export const CONTAINER = "docker:index/container:Container";
export const REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage";
export const VOLUME = "docker:index/volume:Volume";
export const HCLOUD_SERVER = "hcloud:index/server:Server";
export const HCLOUD_FIREWALL = "hcloud:index/firewall:Firewall";

/**
 * Capabilities and devices each service may add, by its catalog name: a reviewed list, so a catalog change that adds
 * one fails the preview until this list says so too.
 */
export const ALLOWED: Readonly<
  Record<string, { capabilities: readonly string[]; devices: readonly string[] }>
> = {
  // The tailnet node routes subnets through a TUN device (its egress nodes run in userspace: nothing).
  tailscale: { capabilities: ["NET_ADMIN", "NET_RAW"], devices: ["/dev/net/tun"] },
  // The tunnel: the kernel module where the host has it, wireguard-go on /dev/net/tun where it does not.
  wireguard: { capabilities: ["NET_ADMIN", "SYS_MODULE"], devices: ["/dev/net/tun"] },
  // Collabora (`nextcloud-office`) makes device nodes in its document jails.
  nextcloud: { capabilities: ["MKNOD"], devices: [] },
};

/** Restart policies that bring a container back after a crash or a reboot. */
const RESTARTS = ["always", "unless-stopped", "on-failure"];
/** Source ranges that mean anyone. */
const ANYWHERE = ["0.0.0.0/0", "::/0"];
/** Host addresses that mean every interface (Docker binds all when none is given). */
const ALL_ADDRESSES = ["", "0.0.0.0", "::"];

/**
 * A plain copy of a value read from the engine's view of a resource, or undefined where any part of it is not known
 * yet (an output of a resource the same preview creates): what cannot be checked then is checked at `up`.
 */
export function known<T>(read: () => T): T | undefined {
  try {
    const v = read();
    // Copying reads every nested field, so an unknown one anywhere throws here, not in the rule.
    return v === undefined ? undefined : (JSON.parse(JSON.stringify(v)) as T);
  } catch (e) {
    if (e instanceof UnknownValueError) return undefined;
    throw e;
  }
}

/** A resource's inputs as the engine sees them (secrets unwrapped, unknowns trapped). */
type Props = ResourceValidationArgs["props"];

/** What `read` returns for a property that is not known yet. */
const UNKNOWN = Symbol("unknown");
/** A top-level property, or `UNKNOWN` during a preview that cannot know it yet. */
function read(props: Props, key: string): unknown {
  try {
    return props[key];
  } catch (e) {
    if (e instanceof UnknownValueError) return UNKNOWN;
    throw e;
  }
}

/** A policy on one resource type: `check` runs on that type only. */
function onType(
  type: string,
  check: (props: Props, args: ResourceValidationArgs, report: ReportViolation) => void,
): (args: ResourceValidationArgs, report: ReportViolation) => void {
  return (args, report) => {
    if (args.type === type) check(args.props, args, report);
  };
}

/** How a container is named in messages: its resource name and its Docker name. */
const containerOf = (props: Props, args: ResourceValidationArgs): string =>
  `container \`${args.name}\` (\`${known(() => props.name) ?? "?"}\`)`;
/** Its catalog service, from the label every container of the program carries. */
const serviceOf = (props: Props): string | undefined =>
  (known(() => props.labels as { label: string; value: string }[]) ?? []).find(
    (l) => l.label === SERVICE_LABEL,
  )?.value;

/**
 * Why an image reference is not pinned, or undefined when it is: a digest, or an exact tag that is not `latest`.
 * `[registry[:port]/]repository[:tag][@sha256:...]`; a bare image id (`sha256:...`) is content itself.
 */
export function unpinned(ref: string): string | undefined {
  if (/^sha256:[a-f0-9]{64}$/.test(ref) || /@sha256:[a-f0-9]{64}$/.test(ref)) return undefined;
  const name = ref.slice(ref.lastIndexOf("/") + 1);
  const tag = name.includes(":") ? name.slice(name.indexOf(":") + 1) : undefined;
  if (tag === undefined) return "it has no tag (Docker pulls `latest`)";
  if (tag === "latest") return "its tag is `latest`";
  return undefined;
}

const imagePinned: ResourceValidationPolicy = {
  name: "image-pinned",
  description: "Every image is pinned: an exact tag (never `latest`) or a digest.",
  validateResource: [
    onType(REMOTE_IMAGE, (props, args, report) => {
      const ref = known(() => props.name as string);
      const why = ref === undefined ? undefined : unpinned(ref);
      if (why)
        report(`image \`${args.name}\` pulls \`${ref}\`: ${why}; expected an exact version tag or a digest`);
    }),
    onType(CONTAINER, (props, args, report) => {
      // The program runs each image by the id of its pulled RemoteImage (checked above); a literal reference is
      // checked here.
      const ref = known(() => props.image as string);
      const why = ref === undefined ? undefined : unpinned(ref);
      if (why)
        report(
          `${containerOf(props, args)} runs \`${ref}\`: ${why}; expected an exact version tag or a digest`,
        );
    }),
  ],
};

const noPrivileged: ResourceValidationPolicy = {
  name: "no-privileged-container",
  description: "No container runs privileged: capabilities and devices are granted one by one.",
  validateResource: onType(CONTAINER, (props, args, report) => {
    if (known(() => props.privileged) === true)
      report(
        `${containerOf(props, args)} is privileged: expected \`privileged\` unset, with the capabilities and devices it needs from the allow-list`,
      );
  }),
};

const capabilitiesAllowed: ResourceValidationPolicy = {
  name: "capabilities-allowed",
  description:
    "Capabilities and devices come from the pack's reviewed allow-list per service (policy/rules.ts).",
  validateResource: onType(CONTAINER, (props, args, report) => {
    const service = serviceOf(props);
    const allowed = (service !== undefined && ALLOWED[service]) || { capabilities: [], devices: [] };
    const caps = known(() => (props.capabilities?.adds ?? []) as string[]) ?? [];
    const devices = (known(() => (props.devices ?? []) as { hostPath: string }[]) ?? []).map(
      (d) => d.hostPath,
    );
    const of = `service \`${service ?? "(no service label)"}\``;
    for (const cap of caps.filter((c) => !allowed.capabilities.includes(c.replace(/^CAP_/, ""))))
      report(
        `${containerOf(props, args)} adds capability \`${cap}\`, which ${of} may not: expected ${oneOf(allowed.capabilities)} (policy/rules.ts ALLOWED)`,
      );
    for (const dev of devices.filter((d) => !allowed.devices.includes(d)))
      report(
        `${containerOf(props, args)} maps device \`${dev}\`, which ${of} may not: expected ${oneOf(allowed.devices)} (policy/rules.ts ALLOWED)`,
      );
  }),
};

const memoryLimit: ResourceValidationPolicy = {
  name: "memory-limit",
  description: "Every container has a memory limit.",
  validateResource: onType(CONTAINER, (props, args, report) => {
    const mb = read(props, "memory");
    if (mb !== UNKNOWN && !(typeof mb === "number" && mb > 0))
      report(`${containerOf(props, args)} has no memory limit: expected \`memory\` in MB, above 0`);
  }),
};

const restartPolicy: ResourceValidationPolicy = {
  name: "restart-policy",
  description: "Every container restarts after a crash or a reboot.",
  validateResource: onType(CONTAINER, (props, args, report) => {
    // Docker's default is `no`.
    const restart = read(props, "restart") ?? "no";
    if (restart !== UNKNOWN && !RESTARTS.includes(String(restart)))
      report(
        `${containerOf(props, args)} has restart policy \`${String(restart)}\`: expected one of ${list(RESTARTS)}`,
      );
  }),
};

export interface VolumesConfig {
  /** The stack file's `protect` (default true). */
  readonly protect?: boolean;
}
const volumesProtected: ResourceValidationPolicy = {
  name: "state-volumes-protected",
  description:
    "Volumes hold state: protected, unless the stack file says `protect: false` (the analyzer cannot see retainOnDelete).",
  configSchema: {
    properties: { protect: { type: "boolean", default: true, description: "the stack file's `protect`" } },
  },
  validateResource: onType(VOLUME, (_props, args, report) => {
    const { protect = true } = args.getConfig<VolumesConfig>();
    if (protect && !args.opts.protect)
      report(
        `volume \`${args.name}\` is not protected: expected \`protect: true\` on it (the stack file's \`protect\` is true), so no \`up\` or \`destroy\` can delete its data`,
      );
  }),
};

export interface PortsConfig {
  /** Host ports (`80/tcp`) each container may publish on all addresses, by container name: the catalog's. */
  readonly publicPorts?: Readonly<Record<string, readonly string[]>>;
}
const hostPortsNotPublic: ResourceValidationPolicy = {
  name: "host-ports-not-public",
  description: "No host port is published on all addresses unless the catalog declares it public.",
  configSchema: {
    properties: {
      publicPorts: {
        type: "object",
        additionalProperties: { type: "array", items: { type: "string" } },
        default: {},
        description: "by container name: the `<port>/<protocol>` the catalog publishes on all addresses",
      },
    },
  },
  validateResource: onType(CONTAINER, (props, args, report) => {
    const { publicPorts = {} } = args.getConfig<PortsConfig>();
    const name = known(() => props.name as string) ?? "";
    const ports = known(() => (props.ports ?? []) as { external?: number; ip?: string; protocol?: string }[]);
    for (const p of ports ?? []) {
      const port = `${p.external}/${p.protocol ?? "tcp"}`;
      if (ALL_ADDRESSES.includes(p.ip ?? "") && !(publicPorts[name] ?? []).includes(port))
        report(
          `${containerOf(props, args)} publishes host port ${port} on all addresses, which the catalog does not declare public: expected it bound to an address (\`ip\`), or declared in the catalog`,
        );
    }
  }),
};

export interface SecretEnvConfig {
  /** Env keys the catalog gives a secret value, by container name. */
  readonly secretEnv?: Readonly<Record<string, readonly string[]>>;
}
const secretEnvSecret: ResourceValidationPolicy = {
  name: "secret-env-not-plain",
  description:
    "Env keys the catalog marks secret are never plain text: the container's `envs` are secret (additionalSecretOutputs).",
  configSchema: {
    properties: {
      secretEnv: {
        type: "object",
        additionalProperties: { type: "array", items: { type: "string" } },
        default: {},
        description: "by container name: the env keys the catalog gives a secret value",
      },
    },
  },
  validateResource: onType(CONTAINER, (props, args, report) => {
    const { secretEnv = {} } = args.getConfig<SecretEnvConfig>();
    const keys = secretEnv[known(() => props.name as string) ?? ""] ?? [];
    // Only keys: a value is never read, let alone printed. An env not known yet holds them all.
    const envs = known(() => (props.envs ?? []) as string[]);
    const present = envs === undefined ? keys : keys.filter((k) => envs.some((e) => e.startsWith(`${k}=`)));
    if (present.length > 0 && !args.opts.additionalSecretOutputs.includes("envs"))
      report(
        `${containerOf(props, args)} passes ${list(present)} in plain text: the catalog marks ${present.length > 1 ? "them" : "it"} secret; expected a secret value (in a stack file, \`{ secret: <config key> }\` set with \`pulumi config set --secret\`), which makes \`envs\` secret`,
      );
  }),
};

const hcloudFirewall: ResourceValidationPolicy = {
  name: "hcloud-server-firewall",
  description: "Every hcloud server sits behind a firewall.",
  validateResource: onType(HCLOUD_SERVER, (props, args, report) => {
    const ids = known(() => (props.firewallIds ?? []) as unknown[]);
    if (ids !== undefined && ids.length === 0)
      report(`hcloud server \`${args.name}\` has no firewall: expected \`firewallIds\` naming one`);
  }),
};

export interface SshConfig {
  /** The stack file lists `0.0.0.0/0` or `::/0` in `host.sshSources`. */
  readonly sshFromAnywhere?: boolean;
}
/** Whether a firewall rule's port (`22`, `20-30`, `any`) covers port 22. */
const coversSsh = (port: string | undefined): boolean => {
  if (port === undefined || port === "any") return true;
  const [lo, hi = lo] = port.split("-").map(Number);
  return lo! <= 22 && 22 <= hi!;
};
const noSshFromAnywhere: ResourceValidationPolicy = {
  name: "hcloud-no-ssh-from-anywhere",
  description: "No hcloud firewall opens SSH to anywhere unless the stack file's `host.sshSources` says so.",
  configSchema: {
    properties: {
      sshFromAnywhere: {
        type: "boolean",
        default: false,
        description: "the stack file's `host.sshSources` lists `0.0.0.0/0` or `::/0`",
      },
    },
  },
  validateResource: onType(HCLOUD_FIREWALL, (props, args, report) => {
    if (args.getConfig<SshConfig>().sshFromAnywhere) return;
    const rules = known(
      () =>
        (props.rules ?? []) as { direction: string; protocol: string; port?: string; sourceIps?: string[] }[],
    );
    for (const r of rules ?? []) {
      const open = (r.sourceIps ?? []).filter((s) => ANYWHERE.includes(s));
      if (r.direction === "in" && r.protocol === "tcp" && coversSsh(r.port) && open.length > 0)
        report(
          `hcloud firewall \`${args.name}\` opens SSH (port ${r.port ?? "any"}/tcp) to ${list(open)}: expected \`host.sshSources\` in the stack file to name who may reach SSH (list \`0.0.0.0/0\` there to allow anywhere)`,
        );
    }
  }),
};

const list = (xs: readonly string[]) => (xs.length ? xs.map((x) => `\`${x}\``).join(", ") : "none");
const oneOf = (xs: readonly string[]) => (xs.length ? `one of ${list(xs)}` : "none");

/** Every rule of the pack, in the order a reviewer reads them. */
export const POLICIES: readonly ResourceValidationPolicy[] = [
  imagePinned,
  noPrivileged,
  capabilitiesAllowed,
  memoryLimit,
  restartPolicy,
  volumesProtected,
  hostPortsNotPublic,
  secretEnvSecret,
  hcloudFirewall,
  noSshFromAnywhere,
].map((p) => ({ enforcementLevel: "mandatory", ...p }));

/** Each rule's config schema, by name: what policy/config.ts may write. */
export const CONFIG_SCHEMAS: Readonly<Record<string, PolicyConfigSchema>> = Object.fromEntries(
  POLICIES.filter((p) => p.configSchema).map((p) => [p.name, p.configSchema!]),
);
