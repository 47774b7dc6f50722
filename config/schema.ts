import { isIP } from "node:net";
import { z } from "zod";
import { HCLOUD_LOCATIONS, HCLOUD_SERVER_TYPES, HCLOUD_TYPE_NAMES, offeredAt } from "./hcloudTypes";

/**
 * The schema of one site's stack config: the only place stack config is parsed.
 * Every message says what is expected; the caller prefixes the file and the field path.
 */

export const PROJECT = "qui3tly-cloud";
/** The config key (in `Pulumi.<site>.yaml`) that holds the site object. */
export const SITE_KEY = `${PROJECT}:site`;
/** Optional secret: the SSH private key for `existing` hosts. Without it the SSH agent is used. */
export const SSH_KEY_NAME = "sshPrivateKey";
export const SSH_KEY_KEY = `${PROJECT}:${SSH_KEY_NAME}`;
/**
 * Secret of every site but a control plane: the X25519 private key (base64) that opens what the control plane
 * seals for this site alone (its tailnet key, WireGuard key, backup passwords). Its public half is the stack file's
 * `mesh.sealPublicKey`; `npm run seal-key -- --stack <site>` makes the pair and sets both.
 */
export const SEAL_KEY_NAME = "sealKey";
export const SEAL_KEY_KEY = `${PROJECT}:${SEAL_KEY_NAME}`;
/** Raw 32 bytes in canonical base64 (the last character before `=` carries 4 bits, so only 16 of them fit). */
export const X25519_KEY_B64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
/** Required secret for `hcloud` hosts: the Hetzner Cloud API token (the hcloud provider's own key). */
export const HCLOUD_TOKEN_KEY = "hcloud:token";

export const ROLES = ["control-plane", "services"] as const;
export type Role = (typeof ROLES)[number];

const FQDN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

export const siteName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/, "expected a lowercase name of 2-32 letters, digits or '-'");
const fqdn = z.string().regex(FQDN, "expected a fully qualified domain name such as `example.org`");

/** An IPv4/IPv6 address or a DNS name. */
const address = z.string().refine((s) => isIP(s) !== 0 || FQDN.test(s) || s === "localhost", {
  message: "expected an IPv4 or IPv6 address or a DNS name",
});
const port = z
  .number()
  .int("expected a whole number")
  .min(1, "expected a port 1-65535")
  .max(65535, "expected a port 1-65535");

const cidr = z.string().refine(
  (s) => {
    const [ip, bits, extra] = s.split("/");
    const family = isIP(ip ?? "");
    const n = Number(bits);
    return (
      extra === undefined && family !== 0 && Number.isInteger(n) && n >= 0 && n <= (family === 4 ? 32 : 128)
    );
  },
  { message: "expected a CIDR range such as `203.0.113.0/24`" },
);

/** An image tag: exact, never `latest`. */
const imageTag = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, "expected a Docker image tag")
  .refine((t) => t !== "latest", { message: "expected an exact version tag, not `latest`" });
const imageDigest = z.string().regex(/^sha256:[a-f0-9]{64}$/, "expected `sha256:` followed by 64 hex digits");

/** Memory as Docker writes it: `512m`, `2g`. Parsed to MiB. */
const memory = z
  .string()
  .regex(/^[1-9][0-9]*[mg]$/, "expected a size such as `512m` or `2g`")
  .transform((s) => Number(s.slice(0, -1)) * (s.endsWith("g") ? 1024 : 1))
  .refine((mb) => mb >= 6, { message: "expected at least `6m` (Docker's minimum)" });
const cpus = z
  .number()
  .positive("expected a positive number of CPUs such as `0.5`")
  .min(0.01, "expected at least `0.01` CPUs (Docker's minimum)")
  .max(64, "expected at most 64 CPUs");

const resourcesSchema = z.strictObject({ memory: memory.optional(), cpus: cpus.optional() });

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "expected an environment variable name");
/** A plain value, or a reference to a secret config key set with `pulumi config set --secret <key>`. */
const envValue = z.union(
  [
    z.string(),
    z.strictObject({ secret: z.string().regex(/^[A-Za-z][A-Za-z0-9]*$/, "expected a config key name") }),
  ],
  { error: "expected a string (quote numbers) or `{ secret: <config key> }`" },
);
export type EnvOverride = z.infer<typeof envValue>;

const containerOverride = z.strictObject({
  /** Replaces the catalog's tag. */
  version: imageTag.optional(),
  digest: imageDigest.optional(),
  env: z.record(envName, envValue).optional(),
  resources: resourcesSchema.optional(),
});

const routeOverride = z.strictObject({
  host: fqdn.optional(),
  /** Reachable from the tailnet only. */
  private: z.boolean().optional(),
});

const serviceOverride = containerOverride.extend({
  routes: z.record(z.string(), routeOverride).optional(),
  /** Overrides for the service's other containers, by their catalog key (e.g. `db`). */
  containers: z.record(z.string(), containerOverride).optional(),
});
export type ServiceOverride = z.infer<typeof serviceOverride>;

/**
 * A stack file's entry for a service: `true` (add it), `false` (remove it) or its overrides. Normalised to an
 * object before validation, not a union: zod reports a union's failure at the union, and the field would be lost.
 */
const serviceEntry = z.preprocess(
  (v) => (v === true ? {} : v === false ? { enabled: false } : v),
  serviceOverride.extend({
    enabled: z.boolean().optional(),
    /**
     * Run it here as a secondary of the named site's (its primary), which the secondary pulls its state from every
     * minute (render/sync.ts): only a service the catalog says can run so (`secondary`: Pi-hole). Defaults to none:
     * the service is this site's own.
     */
    follows: siteName.optional(),
  }),
);

const existingHost = z
  .strictObject({
    kind: z.literal("existing"),
    address,
    /** Defaults to "root". */
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "expected a Unix user name")
      .default("root"),
    /** Defaults to 22. */
    port: port.default(22),
    /**
     * The port the host's SSH server listens on, where it differs from `port` (a NAT or port forward between the
     * operator and the host): the tailnet node forwards admins' SSH there. Defaults to `port`.
     */
    sshdPort: port.optional(),
    /**
     * The host's SSH public key (`ssh-keyscan -t ed25519 <host>` without the host name), pinned: connections fail if
     * it changes. Defaults to trust on first use (`~/.ssh/known_hosts`).
     */
    hostKey: z
      .string()
      .regex(
        /^(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) [A-Za-z0-9+/=]+$/,
        "expected `<type> <base64 key>`, as `ssh-keyscan` prints",
      )
      .optional(),
    /**
     * The host's memory, as containers' `resources.memory` write it (`8g`). With `cpus`, what `npm run check` holds
     * the site's container limits against (model/capacity.ts); one without the other is refused. Defaults to unknown
     * (neither): the capacity is not checked, and `npm run check` warns.
     */
    memory: memory.optional(),
    /** The host's CPUs (vCPUs of a VPS). Defaults to unknown, as `memory`. */
    cpus: z
      .number()
      .positive("expected a positive number of CPUs such as `4`")
      .max(1024, "expected at most 1024 CPUs")
      .optional(),
    /**
     * What the host costs a month, in EUR without VAT, as the provider bills it (`npm run cost`). Defaults to unknown:
     * shown as "not declared".
     */
    monthlyPrice: z.number().nonnegative("expected a price in EUR such as `12.5`").optional(),
  })
  // Half a size is a mistake, not an unknown: the capacity check needs both, and would skip the site silently.
  .superRefine((h, ctx) => {
    if (h.memory !== undefined && h.cpus === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["cpus"],
        message: "expected the host's CPU count (such as `4`) alongside `host.memory`",
      });
    if (h.cpus !== undefined && h.memory === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["memory"],
        message: "expected the host's memory (such as `8g`) alongside `host.cpus`",
      });
  });

const hcloudHost = z
  .strictObject({
    kind: z.literal("hcloud"),
    /** A type of config/hcloudTypes.ts: its size is what the capacity check holds the site's limits against. */
    serverType: z.string().refine((t) => t in HCLOUD_SERVER_TYPES, {
      message: `expected a Hetzner server type of config/hcloudTypes.ts: ${HCLOUD_TYPE_NAMES.join(", ")} (a newer one is added there, with its size and price)`,
    }),
    location: z.enum(HCLOUD_LOCATIONS),
    /** Defaults to "debian-12". */
    image: z.string().min(1).default("debian-12"),
    /** Public keys (`ssh-ed25519 AAAA...`) to install for root. */
    sshKeys: z
      .array(
        z
          .string()
          .regex(
            /^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/,
            "expected an OpenSSH public key",
          ),
      )
      .min(1, "expected at least one SSH public key"),
    /**
     * Who may reach SSH (the server's firewall). Required: SSH from anywhere is a choice the stack file makes, by
     * listing `0.0.0.0/0` and `::/0` (the policy pack refuses it otherwise).
     */
    sshSources: z
      .array(cidr, {
        error: (i) =>
          `${i.input === undefined ? "required: " : ""}expected the CIDR ranges that may reach SSH, such as ` +
          "`[203.0.113.0/24]` (`[0.0.0.0/0, ::/0]` for anywhere)",
      })
      .min(1, "expected at least one CIDR range"),
  })
  .superRefine((h, ctx) => {
    const t = HCLOUD_SERVER_TYPES[h.serverType];
    if (t && !offeredAt(t, h.location))
      ctx.addIssue({
        code: "custom",
        path: ["serverType"],
        message: `\`${h.serverType}\` is not offered in \`${h.location}\`; expected one of ${HCLOUD_TYPE_NAMES.filter((n) => offeredAt(HCLOUD_SERVER_TYPES[n]!, h.location)).join(", ")} there (config/hcloudTypes.ts)`,
      });
  });

/** An IPv4 address as a 32-bit number. */
export const ipv4Int = (ip: string): number => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);

const ipv4 = z
  .string()
  .refine((s) => isIP(s) === 4, { message: "expected an IPv4 address such as `10.90.0.1`" });
/** A tailnet user (Headscale user name or OIDC email). */
const meshUser = z
  .string()
  .regex(/^[A-Za-z0-9._%+-]+(@[A-Za-z0-9.-]+)?$/, "expected a Headscale user name or an email address");
/** Who a declared flow is from: a site, a role, or the admins. */
const flowEnd = z
  .string()
  .regex(
    /^(site:[a-z][a-z0-9-]*[a-z0-9]|role:(control-plane|services)|admins)$/,
    "expected `site:<name>`, `role:control-plane`, `role:services` or `admins`",
  );

/** A WireGuard site-to-site endpoint: this site's side of a tunnel to every other site that has one. */
const wireguardSchema = z.strictObject({
  /** This site's address inside the tunnel network, unique in the estate. */
  address: ipv4,
  /** Defaults to 51820. */
  port: port.default(51820),
  /** Where peers reach this site. Defaults to the host's address. */
  endpoint: address.optional(),
  /** Private networks behind this site that peers route into the tunnel. */
  subnets: z.array(cidr).default([]),
});

/** The site's place on the tailnet (Headscale + Tailscale) and its WireGuard tunnel. */
const meshSchema = z.strictObject({
  /** Private networks this site's node advertises to the tailnet (approved automatically for this site). */
  routes: z.array(cidr).default([]),
  /** Extra tags (without `tag:`) for this site's node, besides `tag:<site>` and `tag:<role>`. */
  tags: z
    .array(z.string().regex(/^[a-z][a-z0-9-]*$/, "expected a tag name such as `backup-target`"))
    .default([]),
  /**
   * The Headscale URL nodes log in to. Defaults to `https://headscale.<domain>` on the control plane, through
   * Traefik. Set it where nodes reach Headscale another way (the sandbox: its Traefik has no trusted certificate).
   */
  loginServer: z
    .url({ protocol: /^https?$/, error: "expected an http(s) URL such as `https://headscale.example.org`" })
    .optional(),
  /**
   * Control plane only: also publish Headscale's HTTP API on this host port, for a `loginServer` that does not go
   * through Traefik (the sandbox). Defaults to none: nodes log in through Traefik with TLS.
   */
  headscalePort: port.optional(),
  /** Control plane only: the tailnet users in `group:admins` (SSH and admin UIs on every site). */
  admins: z.array(meshUser).default([]),
  /**
   * Control plane only: flows to allow besides the ones the model implies (monitoring, logs, backups, admins), e.g.
   * `{ from: site:lady, service: nextcloud, to: site:master, ports: [25], why: "mail relay" }`. Only `service` on the
   * `from` site(s) can use it, through an egress node of its own (`tailscale-egress-<service>:1055`, an HTTP proxy);
   * the site's other containers cannot. Everything else is denied.
   */
  flows: z
    .array(
      z
        .strictObject({
          from: flowEnd,
          /** The service on the `from` site(s) the flow is for; none when `from` is `admins` (people). */
          service: z
            .string()
            .regex(/^[a-z][a-z0-9-]*$/, "expected a service name such as `nextcloud`")
            .optional(),
          to: flowEnd.refine((s) => s !== "admins", {
            message: "expected a site or a role: admins are people",
          }),
          ports: z.array(port).min(1, "expected at least one port"),
          why: z.string().min(1, "expected a reason: every open flow says why"),
        })
        .superRefine((f, ctx) => {
          if (f.from === "admins" && f.service !== undefined)
            ctx.addIssue({
              code: "custom",
              path: ["service"],
              message: "expected none: a flow from `admins` is for people, not a service",
            });
          if (f.from !== "admins" && f.service === undefined)
            ctx.addIssue({
              code: "custom",
              path: ["service"],
              message:
                "required: the service on the `from` site(s) this flow is for (only it can use the flow), such as `nextcloud`",
            });
        }),
    )
    .default([]),
  wireguard: wireguardSchema.optional(),
  /**
   * Every site but a control plane: the public half of the site's sealing key (`qui3tly-cloud:sealKey`), to which
   * the control plane seals this site's keys and passwords. Written by `npm run seal-key -- --stack <site>`.
   */
  sealPublicKey: z
    .string()
    .regex(
      X25519_KEY_B64,
      "expected an X25519 public key: 32 bytes of base64 (44 characters), as `npm run seal-key` writes it",
    )
    .optional(),
  /**
   * The Docker network between this site's tailnet node and Traefik, and nothing else: Traefik trusts the PROXY
   * header (the tailnet client's address, which `private` routes check) from this range only, and the node reaches
   * the host's SSH at its gateway (the first address). A private IPv4 network of /16 to /29 that no other network
   * on the host uses. Defaults to "10.255.255.248/29".
   */
  ingressSubnet: cidr
    .refine(
      (s) => {
        const [ip, bits] = s.split("/");
        const n = Number(bits);
        if (isIP(ip!) !== 4 || n < 16 || n > 29) return false;
        const a = ipv4Int(ip!);
        if (a % 2 ** (32 - n) !== 0) return false;
        const within = (net: string, len: number) =>
          Math.floor(a / 2 ** (32 - len)) === ipv4Int(net) / 2 ** (32 - len);
        return within("10.0.0.0", 8) || within("172.16.0.0", 12) || within("192.168.0.0", 16);
      },
      {
        message:
          "expected a private IPv4 network (in 10/8, 172.16/12 or 192.168/16) of /16 to /29, such as `10.255.255.248/29`",
      },
    )
    .default("10.255.255.248/29"),
});
export type MeshConfig = z.infer<typeof meshSchema>;

/** A secret config key name (`pulumi config set --secret <key>`), as in env overrides. */
const secretKey = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9]*$/, "expected a config key name such as `smtpPassword`");
const httpUrl = z.url({ protocol: /^https?$/, error: "expected an http(s) URL" });
/** Prometheus durations and sizes, as its flags take them. */
const promDuration = z.string().regex(/^[1-9][0-9]*(h|d|w|y)$/, "expected a duration such as `30d` or `12w`");
const promSize = z.string().regex(/^[1-9][0-9]*(MB|GB|TB)$/, "expected a size such as `20GB`");

/** Control plane only: how long metrics are kept, and where alerts go. */
const monitoringSchema = z.strictObject({
  /**
   * How often Prometheus scrapes and evaluates rules. Defaults to "30s". Alerts that wait for consecutive failed
   * scrapes (SiteDown: 6) scale with it: the sandbox sets `5s` to see an alert fire in half a minute.
   */
  interval: z
    .string()
    .regex(/^[1-9][0-9]*s$/, "expected seconds such as `30s`")
    .default("30s"),
  retention: z
    .strictObject({
      /** Defaults to "30d". */
      time: promDuration.default("30d"),
      /** Defaults to "20GB": the oldest blocks go first when the volume would grow past it. */
      size: promSize.default("20GB"),
    })
    .default({ time: "30d", size: "20GB" }),
  /**
   * Where this repository's `docs/runbooks.md` is readable (a Git web view): every alert links its section.
   * Defaults to the path `docs/runbooks.md`, relative to a checkout.
   */
  runbookUrl: httpUrl.optional(),
  /** Without any, every alert goes to the ntfy bridge on the control plane. */
  receivers: z
    .strictObject({
      /** Warnings, as a digest. */
      email: z
        .strictObject({
          /** `host:port` of the SMTP server (STARTTLS). */
          smarthost: z
            .string()
            .regex(/^[a-z0-9.-]+:[0-9]{1,5}$/, "expected `host:port` such as `smtp.example.org:587`"),
          from: z.email("expected an email address"),
          to: z.array(z.email("expected an email address")).min(1, "expected at least one address"),
          /** Defaults to `from`. */
          username: z.string().min(1).optional(),
          /** The secret config key holding the SMTP password. */
          passwordSecret: secretKey,
        })
        .optional(),
      /** Critical alerts, as push notifications. */
      ntfy: z
        .strictObject({
          /** The topic URL, e.g. `https://ntfy.example.org/alerts`. */
          url: httpUrl,
          /** The secret config key holding an ntfy access token (`tk_...`). */
          tokenSecret: secretKey,
        })
        .optional(),
      /** Every alert, to a chat or incident tool. */
      webhook: z.strictObject({ url: httpUrl, bearerSecret: secretKey.optional() }).optional(),
    })
    .default({}),
});
export type MonitoringConfig = z.infer<typeof monitoringSchema>;
/** What a control plane gets when its stack file says nothing. */
export const DEFAULT_MONITORING: MonitoringConfig = monitoringSchema.parse({});

/** One cron field: numbers, ranges, steps, lists or `*`. */
const CRON_FIELD = "(\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*";
const cronSchedule = z
  .string()
  .regex(
    new RegExp(`^${CRON_FIELD}( ${CRON_FIELD}){4}$`),
    "expected a cron schedule of five fields (minute hour day month weekday) such as `17 3 * * *`",
  );
const keep = z
  .number()
  .int("expected a whole number")
  .min(0, "expected 0 or more snapshots to keep")
  .max(1000, "expected at most 1000");

/** Where and when the site's volumes are backed up (render/backup.ts), and how long snapshots are kept. */
const backupSchema = z.strictObject({
  /**
   * The site that keeps this site's repository (restic's REST server there, append-only), reached over the
   * tailnet. Defaults to the control plane for a services site, and to the first services site (by name) for the
   * control plane.
   */
  target: siteName.optional(),
  /** When the backup runs (the host's cron). Defaults to a daily time between 01:00 and 04:59 from the site's name. */
  schedule: cronSchedule.optional(),
  /** When the restore test runs. Defaults to a weekly time from the site's name. */
  restoreTest: cronSchedule.optional(),
  /** Snapshots the repository's side keeps (`restic forget --prune`), per service. Defaults to 7, 4 and 6. */
  retention: z
    .strictObject({ daily: keep.default(7), weekly: keep.default(4), monthly: keep.default(6) })
    .prefault({})
    .refine((r) => r.daily + r.weekly + r.monthly > 0, {
      message: "expected at least one snapshot kept: all zero would delete every backup",
    }),
});
export type BackupConfig = z.infer<typeof backupSchema>;

/**
 * A site's default backup times, spread by its name so sites do not all back up at once: daily between 01:00 and
 * 04:59, and the restore test weekly (its day and minute from the name too) at 05:00-05:59.
 */
export function defaultBackupSchedules(site: string): { schedule: string; restoreTest: string } {
  const h = [...site].reduce((n, c) => (n * 31 + c.charCodeAt(0)) % 1_000_003, 7);
  return { schedule: `${h % 60} ${1 + (h % 4)} * * *`, restoreTest: `${(h >> 3) % 60} 5 * * ${h % 7}` };
}

/** The names lego's providers give their credentials (`HETZNER_API_KEY`, `CF_DNS_API_TOKEN`, `AWS_SECRET_ACCESS_KEY`). */
const CREDENTIAL_NAME = /(TOKEN|SECRET|PASSWORD|API_KEY|APIKEY|SECRET_KEY|SECRET_ACCESS_KEY)$/;
/** Traefik's ACME DNS challenge (its `certificatesResolvers.<name>.acme.dnsChallenge`), through lego's providers. */
const acmeDnsChallengeSchema = z.strictObject({
  /** A lego DNS provider's code, as Traefik's docs list them: `hetzner`, `cloudflare`, `route53`, `rfc2136`, ... */
  provider: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9.-]*$/,
      "expected a DNS provider's code as Traefik's docs list it, such as `hetzner`",
    )
    .refine((p) => p !== "manual", {
      message: "expected a provider with an API: `manual` waits for a person at every renewal",
    }),
  /**
   * The provider's settings, as its documentation names them (`HETZNER_API_KEY`): a plain value, or
   * `{ secret: <config key> }` for a credential, which Traefik reads from a file (lego's `<NAME>_FILE`), never from
   * its environment.
   */
  env: z
    .record(
      envName.refine((n) => !n.endsWith("_FILE"), {
        message: "expected the setting's own name: a `{ secret: <config key> }` value becomes its `_FILE`",
      }),
      envValue,
    )
    .default({})
    .superRefine((env, ctx) => {
      for (const [name, value] of Object.entries(env))
        if (typeof value === "string" && CREDENTIAL_NAME.test(name))
          ctx.addIssue({
            code: "custom",
            path: [name],
            message:
              "expected `{ secret: <config key> }`: a credential in plain text would be in the stack file and in Traefik's environment",
          });
    }),
  /** The resolvers lego checks the record's propagation with (`host:port`). Defaults to the host's. */
  resolvers: z
    .array(z.string().regex(/^[A-Za-z0-9.:[\]-]+:[0-9]{1,5}$/, "expected `host:port` such as `1.1.1.1:53`"))
    .optional(),
});
export type AcmeDnsChallenge = z.infer<typeof acmeDnsChallengeSchema>;

const hostSchema = z.discriminatedUnion("kind", [existingHost, hcloudHost], {
  error: "expected `kind: existing` or `kind: hcloud`",
});
export type HostConfig = z.infer<typeof hostSchema>;
/** The port the program reaches the host's SSH on (an hcloud server's is 22). */
export const sshPort = (host: HostConfig): number => (host.kind === "existing" ? host.port : 22);
/** The port the host's sshd listens on: `sshPort`, unless a NAT in between maps it (`sshdPort`). */
export const sshdPort = (host: HostConfig): number =>
  (host.kind === "existing" ? host.sshdPort : undefined) ?? sshPort(host);

export const siteSchema = z.strictObject({
  role: z.enum(ROLES),
  domain: fqdn,
  acmeEmail: z.email("expected an email address for Let's Encrypt"),
  /**
   * Get Traefik's certificates by Let's Encrypt's DNS challenge, through the DNS provider's API, instead of the HTTP
   * challenge. Needed where a site serves a name whose public address is another site's: a standby
   * (`follows`, README "A site down"), whose HTTP challenge would reach the primary. Defaults to none: the HTTP
   * challenge.
   */
  acmeDnsChallenge: acmeDnsChallengeSchema.optional(),
  /** Defaults to "Etc/UTC". */
  timezone: z
    .string()
    .regex(/^[A-Za-z]+(\/[A-Za-z0-9_+-]+)*$/, "expected an IANA time zone such as `Europe/Berlin`")
    .default("Etc/UTC"),
  /** `protect` stateful volumes against deletion. Defaults to true; sandboxes turn it off. */
  protect: z.boolean().default(true),
  /** The control-plane site this site reports to. Required for role `services`. */
  controlPlane: siteName.optional(),
  host: hostSchema,
  images: z
    .strictObject({
      /**
       * Pull every image through this registry, keeping its path (`<registry>/docker.io/library/redis:7.4.1`):
       * a mirror, an air-gapped network's registry, or the sandbox's.
       */
      registry: z
        .string()
        .regex(/^[a-z0-9.-]+(:[0-9]{1,5})?$/, "expected a registry host such as `registry.example.org:5000`")
        .optional(),
    })
    .default({}),
  /** Defaults to no extra routes, tags, flows, and no WireGuard tunnel. */
  mesh: meshSchema.prefault({}),
  /** Control plane only: metrics retention and alert receivers. Defaults to 30d/20GB, alerts to the ntfy bridge. */
  monitoring: monitoringSchema.optional(),
  /** Defaults to daily backups to the default target, a weekly restore test, and 7 daily, 4 weekly, 6 monthly. */
  backup: backupSchema.prefault({}),
  /** Services to add to the role's set (`true` or overrides) or remove from it (`false`). */
  services: z.record(z.string(), serviceEntry).default({}),
});
export type SiteConfig = z.infer<typeof siteSchema>;
