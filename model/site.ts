import type { z } from "zod";
import {
  CATALOG,
  ROLE_SERVICES,
  SERVICE_NAMES,
  isServiceName,
  type ContainerDef,
  type EnvValue,
  type ImageRef,
  type ServiceDef,
  type ServiceName,
} from "../catalog";
import { RESTIC_IMAGE, SQLITE_IMAGE } from "../catalog/backup";
import { secondaryShare } from "../catalog/helpers";
import { ConfigError, joinPath, type ConfigIssue } from "../config/errors";
import {
  HCLOUD_TOKEN_KEY,
  PROJECT,
  SITE_KEY,
  SSH_KEY_KEY,
  sshdPort,
  siteName,
  siteSchema,
  defaultBackupSchedules,
  type EnvOverride,
  DEFAULT_MONITORING,
  type Role,
  type ServiceOverride,
  type SiteConfig,
} from "../config/schema";
import type { ConfigSource } from "../config/source";
import { DOCKER_API_KEY } from "../render/dockerApi";
import { SHARE_KEY, followersOf } from "../render/share";
import type { Estate, Route } from "../render/estate";
import { egressConsumers, egressNetwork } from "../render/policy";
import {
  type CatalogContext,
  type ContainerModel,
  type ResolvedEnv,
  type ServiceModel,
  type SiteBackup,
  type SiteModel,
  type SiteTailnet,
  pulls,
} from "../render/siteModel";
import { capacity, capacityIssue } from "./capacity";
import { backupTarget, estateSite, hostedRepositories, meshHost } from "./estateSite";

/**
 * The catalog entries the stacks wire to the tailnet, by their catalog keys: a renamed entry fails to compile here,
 * not at deploy time.
 */
export const TAILNET_SERVICES = {
  headscale: "headscale",
  node: "tailscale",
} as const satisfies Record<keyof SiteTailnet, ServiceName>;

/** Durations (`30s`, `5m`, `1h`, or Go's `1m30s`) in seconds. */
export function seconds(duration: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(duration);
  if (!m || duration === "") throw new Error(`expected a duration such as \`30s\`, got \`${duration}\``);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

/** Seconds as Go prints a duration (`1m0s`): Docker reports them so, and a different spelling is a diff. */
export function goDuration(total: number): string {
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

/** The label on every container and volume the program makes: the site it belongs to. */
export const SITE_LABEL = "cloud.qui3tly.site";
/** The label on every container: its catalog service (the policy pack's allow-list is by service). */
export const SERVICE_LABEL = "cloud.qui3tly.service";
export const containerName = (service: string, key: string) =>
  key === "main" ? service : `${service}-${key}`;

const SITE = (...rest: PropertyKey[]) => joinPath([SITE_KEY, ...rest]);

/**
 * Reads, validates and resolves one stack's config. Throws ConfigError naming every problem. `capacity: false`
 * skips the capacity check (model/capacity.ts): loadEstate's passes, whose models may still lack what the estate
 * adds (a repository kept for another site, egress nodes); the site loaded within its estate is checked.
 */
export function loadSite(
  source: ConfigSource,
  estate: Estate = { sites: [] },
  opts: { readonly capacity?: boolean } = {},
): SiteModel {
  const issues: ConfigIssue[] = [];
  const issue = (path: string, message: string) => issues.push({ file: source.file, path, message });

  const stackName = siteName.safeParse(source.stack);
  if (!stackName.success) {
    issue("(stack name)", `\`${source.stack}\`: ${stackName.error.issues[0]?.message ?? "invalid"}`);
  }
  if (!source.has(SITE_KEY)) {
    issue(SITE_KEY, "expected the site object (role, domain, host, services ...)");
    throw new ConfigError(issues);
  }
  if (source.isSecret(SITE_KEY)) {
    issue(SITE_KEY, "expected a plain object, not a secret: secrets have their own keys");
    throw new ConfigError(issues);
  }
  const parsed = siteSchema.safeParse(source.get(SITE_KEY));
  if (!parsed.success) {
    for (const i of parsed.error.issues) issue(SITE(...i.path), zodMessage(i));
    throw new ConfigError(issues);
  }
  const site = parsed.data;
  checkSecrets(site, source, issue);
  if (site.role === "services" && site.controlPlane === undefined) {
    issue(SITE("controlPlane"), "expected the name of the control-plane site this site reports to");
  }
  if (site.role === "services" && site.controlPlane === source.stack) {
    issue(SITE("controlPlane"), "expected another site: this site's role is `services`, not `control-plane`");
  }
  if (site.role === "services" && site.monitoring !== undefined) {
    issue(
      SITE("monitoring"),
      "expected it on the control plane only: its Prometheus and Alertmanager read it",
    );
  }
  if (site.role === "control-plane" && site.mesh.sealPublicKey !== undefined) {
    issue(
      SITE("mesh", "sealPublicKey"),
      "expected no value on a control plane: it makes the keys it would seal, and reads nothing sealed",
    );
  }
  if (site.role === "control-plane" && site.controlPlane !== undefined) {
    issue(SITE("controlPlane"), "expected no value: a control-plane site is its own control plane");
  }
  const names = placedServices(source.stack, site, estate, issue);
  if (issues.length > 0) throw new ConfigError(issues);

  // A site loaded without its estate (or before it joins one) is its own: its node forwards its own exporters,
  // its tunnel has no peers yet.
  let within = estate;
  if (!estate.sites.some((x) => x.name === source.stack)) {
    const alone = resolve(source, site, names, estate, issue);
    if (issues.length > 0) throw new ConfigError(issues);
    within = { sites: [...estate.sites, estateSite(alone)].sort((a, b) => a.name.localeCompare(b.name)) };
  }
  const model = resolve(source, site, names, within, issue);
  // Refused here, not only by `npm run check`: `pulumi up` of an overcommitted site fails before any resource.
  const overcommit = opts.capacity === false ? undefined : capacityIssue(source.file, capacity(model));
  if (overcommit) issues.push(overcommit);
  if (issues.length > 0) throw new ConfigError(issues);
  return model;
}

function zodMessage(i: z.core.$ZodIssue): string {
  // A bad record key: zod wraps the key's own issue.
  if (i.code === "invalid_key")
    return `key \`${String(i.path.at(-1))}\`: ${i.issues[0]?.message ?? i.message}`;
  if (i.code === "unrecognized_keys") return `unknown field(s) ${i.keys.map((k) => `\`${k}\``).join(", ")}`;
  if (i.code === "invalid_type" && i.message.includes("received undefined")) return `required: ${i.message}`;
  return i.message;
}

type Issue = (path: string, message: string) => void;

function checkSecrets(site: SiteConfig, source: ConfigSource, issue: Issue): void {
  const mustBeSecret = (key: string, why: string) => {
    if (!source.has(key))
      issue(key, `missing secret: ${why}; set it with \`pulumi config set --secret ${key}\``);
    else if (!source.isSecret(key)) {
      issue(
        key,
        `expected a secret, found plain text: set it again with \`pulumi config set --secret ${key}\``,
      );
    }
  };
  if (source.has(SSH_KEY_KEY)) mustBeSecret(SSH_KEY_KEY, "the SSH private key");
  if (site.host.kind === "hcloud")
    mustBeSecret(HCLOUD_TOKEN_KEY, "an `hcloud` host needs the Hetzner Cloud API token");
  const receivers = site.monitoring?.receivers;
  for (const [receiver, key] of [
    ["email", receivers?.email?.passwordSecret],
    ["ntfy", receivers?.ntfy?.tokenSecret],
    ["webhook", receivers?.webhook?.bearerSecret],
  ] as const) {
    if (key !== undefined) mustBeSecret(`${PROJECT}:${key}`, `the \`${receiver}\` alert receiver reads it`);
  }
  // Every `{ secret: <config key> }` of an env: the services' overrides, the DNS challenge's settings.
  const envSecrets = (env: Record<string, EnvOverride> | undefined, why: (name: string) => string) => {
    for (const [name, value] of Object.entries(env ?? {}))
      if (typeof value === "object") mustBeSecret(`${PROJECT}:${value.secret}`, why(name));
  };
  for (const [svc, override] of Object.entries(site.services))
    for (const env of [override.env, ...Object.values(override.containers ?? {}).map((c) => c.env)])
      envSecrets(env, () => `\`${svc}\` reads it from env`);
  envSecrets(
    site.acmeDnsChallenge?.env,
    (name) => `Traefik's DNS challenge reads it (\`acmeDnsChallenge.env.${name}\`)`,
  );
}

/**
 * The role's services, plus the stack file's additions, minus its removals, plus what the estate asks of the site
 * (the repository of every site that backs up here); sorted.
 */
function placedServices(self: string, site: SiteConfig, estate: Estate, issue: Issue): ServiceName[] {
  const placed = new Set<ServiceName>(ROLE_SERVICES[site.role]);
  if (hostedRepositories(estate, self).length > 0) placed.add("backup-repository");
  for (const [name, override] of Object.entries(site.services)) {
    if (!isServiceName(name)) {
      issue(SITE("services", name), `unknown service; expected one of ${SERVICE_NAMES.join(", ")}`);
      continue;
    }
    if (name === "backup-repository") {
      issue(
        SITE("services", name),
        "expected no entry: the estate places it on every site that keeps another site's backups (their `backup.target`)",
      );
      continue;
    }
    if (override.enabled === false) placed.delete(name);
    else placed.add(name);
    if (override.follows !== undefined) {
      const follows = SITE("services", name, "follows");
      const can = SERVICE_NAMES.filter((n) => (CATALOG[n] as ServiceDef).secondary !== undefined);
      if (!(CATALOG[name] as ServiceDef).secondary) {
        issue(
          follows,
          `\`${name}\` runs on one site only (its state has one writer, or nothing keeps two copies alike); expected a service that can run as a secondary: ${[...can].sort().join(", ")}`,
        );
      } else if (override.follows === self) {
        issue(follows, "expected another site: the primary a secondary pulls from");
      } else if (override.enabled === false) {
        issue(follows, "expected no value on a service this site does not run");
      } else if (override.routes !== undefined) {
        issue(
          SITE("services", name, "routes"),
          (CATALOG[name] as ServiceDef).secondary?.servesRoutes
            ? `expected no route settings on a secondary: it serves the primary's routes (on \`${override.follows}\`) as they are`
            : `expected no routes on a secondary: its admin UI is the primary's (on \`${override.follows}\`), whose changes it takes every minute`,
        );
      }
    }
  }
  // The tunnel runs where the mesh settings say, from them alone.
  if (site.mesh.wireguard) placed.add("wireguard");
  else if (placed.has("wireguard")) {
    placed.delete("wireguard");
    issue(
      SITE("services", "wireguard"),
      "expected `mesh.wireguard` instead: the tunnel is set up from there",
    );
  }
  for (const name of placed) {
    for (const needed of (CATALOG[name] as ServiceDef).requires ?? []) {
      if (!placed.has(needed as ServiceName)) {
        const why = site.services[needed]?.enabled === false ? "do not set it to `false`" : "add it";
        issue(SITE("services", needed), `\`${name}\` needs \`${needed}\` on the same site: ${why}`);
      }
    }
  }
  for (const { role, service, when, why } of NEEDS) {
    if (
      (role === undefined || role === site.role) &&
      (when === undefined || placed.has(when)) &&
      !placed.has(service)
    )
      issue(SITE("services", service), `expected \`${service}\` on this site: ${why}`);
  }
  return [...placed].sort();
}

/**
 * What a site cannot run without (on a `role`; `when` another service runs), whatever its stack file says: what the
 * stacks and the rendered configs address by name, beyond the catalog's `requires`. The estate adds what other sites
 * need of a site (model/estate.ts checkRequired).
 */
const NEEDS: readonly {
  readonly role?: Role;
  readonly service: ServiceName;
  readonly when?: ServiceName;
  readonly why: string;
}[] = [
  {
    role: "control-plane",
    service: TAILNET_SERVICES.headscale,
    why: "a control plane is its tailnet's Headscale, which makes every site's pre-auth key (its own too); do not set it to `false`",
  },
  {
    role: "control-plane",
    service: "loki",
    when: "promtail",
    why: "a control plane's `promtail` pushes to its own Loki; do not set it to `false`, or set `promtail` to `false` too",
  },
  {
    service: "blackbox",
    when: "prometheus",
    why: "Prometheus probes every route through it; do not set it to `false`, or set `prometheus` to `false` too",
  },
];

function resolve(
  source: ConfigSource,
  site: SiteConfig,
  names: ServiceName[],
  estate: Estate,
  issue: Issue,
): SiteModel {
  const name = source.stack;
  const overrideOf = (svc: ServiceName): ServiceOverride => site.services[svc] ?? {};

  // Pass 1: routes, so that every service (Traefik above all) can see the site's routes.
  const routes: Route[] = [];
  const hostsBySvc = new Map<ServiceName, Record<string, string>>();
  for (const svc of names) {
    const def: ServiceDef = CATALOG[svc];
    // A secondary has no routes (its admin UI is the primary's), unless it serves them too, as a standby: then it
    // serves the primary's routes as they are, once the estate knows them (placedServices refuses route settings on
    // a secondary), and each site's Traefik reaches the other's (render/traefik.ts).
    const primary = site.services[svc]?.follows;
    if (primary !== undefined && !def.secondary?.servesRoutes) continue;
    const peers =
      primary !== undefined
        ? [primary]
        : def.secondary?.servesRoutes
          ? followersOf(estate, name, svc).map((f) => f.site)
          : [];
    const primaryRoutes = estate.sites.find((x) => x.name === primary)?.routes ?? [];
    const overrides = overrideOf(svc).routes ?? {};
    for (const r of Object.keys(overrides)) {
      if (!def.routes?.[r]) {
        const known = Object.keys(def.routes ?? {});
        issue(
          SITE("services", svc, "routes", r),
          `unknown route; expected ${known.length ? known.join(", ") : "none"}`,
        );
      }
    }
    const hosts: Record<string, string> = {};
    for (const [r, rd] of Object.entries(def.routes ?? {})) {
      const o = overrides[r] ?? {};
      const theirs = primaryRoutes.find((x) => x.service === svc && x.name === r);
      const host = theirs?.host ?? o.host ?? `${rd.subdomain}.${site.domain}`;
      hosts[r] = host;
      routes.push({
        name: r,
        service: svc,
        container: containerName(svc, rd.container ?? "main"),
        host,
        ...(rd.pathPrefix === undefined ? {} : { pathPrefix: rd.pathPrefix }),
        port: rd.port,
        scheme: rd.scheme ?? "http",
        private: theirs?.private ?? o.private ?? rd.private ?? false,
        probePath: rd.probePath ?? rd.pathPrefix ?? "/",
        ...(peers.length > 0 ? { peers, ...(primary !== undefined ? { standby: true } : {}) } : {}),
      });
    }
    hostsBySvc.set(svc, hosts);
  }
  const routeKeys = new Map<string, Route>();
  for (const r of routes) {
    const k = `${r.host}${r.pathPrefix ?? "/"}`;
    const other = routeKeys.get(k);
    if (other) {
      issue(
        SITE("services", r.service, "routes", r.name, "host"),
        `\`${k}\` is already routed to \`${other.service}\`; expected a host name no other route uses`,
      );
    }
    routeKeys.set(k, r);
  }
  if (routes.length > 0 && !names.includes("traefik")) {
    issue(SITE("services", "traefik"), "expected Traefik on a site with routes: do not set it to `false`");
  }

  const controlPlane = site.controlPlane ?? name;
  const lokiPushUrl =
    site.role === "control-plane"
      ? "http://loki:3100/loki/api/v1/push"
      : `http://${meshHost(estate, { controlPlane, domain: site.domain }, controlPlane)}:3100/loki/api/v1/push`;

  const acme = site.acmeDnsChallenge ? { acmeDnsChallenge: site.acmeDnsChallenge } : {};
  // Pass 2: containers.
  const resolved: ServiceModel[] = names.map((svc) => {
    const def: ServiceDef = CATALOG[svc];
    const ctx: CatalogContext = {
      site: name,
      role: site.role,
      domain: site.domain,
      timezone: site.timezone,
      acmeEmail: site.acmeEmail,
      ...acme,
      hosts: hostsBySvc.get(svc) ?? {},
      siteRoutes: routes,
      siteServices: names,
      lokiPushUrl,
      estate,
      mesh: site.mesh,
      sshdPort: sshdPort(site.host),
      controlPlane,
      monitoring: site.monitoring ?? DEFAULT_MONITORING,
    };
    const own = def.containers(ctx);
    // A primary that other sites follow serves them its state (render/sync.ts).
    const followed = def.secondary !== undefined && followersOf(estate, name, svc).some((f) => f.pulls);
    const defs: Readonly<Record<string, ContainerDef>> = followed
      ? { ...own, [SHARE_KEY]: secondaryShare(def.secondary!, own) }
      : own;
    const override = overrideOf(svc);
    for (const k of Object.keys(override.containers ?? {})) {
      // A primary's share exists once another site follows it, which a site loaded alone does not know yet.
      const share = k === SHARE_KEY && def.secondary !== undefined && pulls(def.secondary);
      if (k === "main" || (!defs[k] && !share)) {
        const known = Object.keys(defs).filter((x) => x !== "main");
        issue(
          SITE("services", svc, "containers", k),
          `unknown container; expected ${known.length ? known.join(", ") : "none (this service has one container)"}` +
            (k === "main" ? " (set the main container's fields on the service itself)" : ""),
        );
      }
    }
    // A service's own network joins the containers that are not someone's private peer alone.
    const multi = Object.values(defs).filter((d) => d.serviceNetwork !== false).length > 1;
    const mainTag = defs.main?.image.tag;
    const containers = Object.entries(defs).map(([key, cdef]) => {
      const own = key === "main" ? override : (override.containers?.[key] ?? {});
      // Containers released with the main one (same tag: Nextcloud's cron, UISP's parts) follow its version.
      const follows = key !== "main" && override.version !== undefined && cdef.image.tag === mainTag;
      const o = follows ? { version: override.version, ...own } : own;
      return resolveContainer(name, site.images.registry, svc, key, cdef, o, multi);
    });
    return {
      name: svc,
      description: def.description,
      part: def.part ?? "site",
      generatedSecrets: def.generatedSecrets ?? [],
      containers,
    };
  });

  // Each flow's consumer joins its egress node's network, alone with it: only it can use that node's proxy. Not its
  // Docker API proxy, which shares a network with its consumer alone (render/dockerApi.ts).
  const consumers = egressConsumers(estate, name);
  const services = resolved.map((s) =>
    consumers.includes(s.name) && s.name !== "tailscale"
      ? {
          ...s,
          containers: s.containers.map((c) =>
            c.networkMode || c.key === DOCKER_API_KEY
              ? c
              : { ...c, networks: [...c.networks, egressNetwork(s.name)] },
          ),
        }
      : s,
  );
  checkHostPorts(services, issue);
  checkMetricsPorts(services, issue);

  const main = (svc: ServiceName) =>
    services.find((s) => s.name === svc)?.containers.find((c) => c.key === "main")?.name;
  const headscale = main(TAILNET_SERVICES.headscale);
  const node = main(TAILNET_SERVICES.node);
  const networks = new Set<string>();
  for (const s of services) {
    for (const c of s.containers) c.networks.forEach((n) => networks.add(n));
  }
  return {
    file: source.file,
    name,
    role: site.role,
    domain: site.domain,
    acmeEmail: site.acmeEmail,
    ...acme,
    timezone: site.timezone,
    protect: site.protect,
    ...(site.images.registry ? { registry: site.images.registry } : {}),
    controlPlane,
    host: site.host,
    services,
    routes,
    networks: [...networks].sort(),
    mesh: site.mesh,
    ...(site.role === "control-plane" ? { monitoring: site.monitoring ?? DEFAULT_MONITORING } : {}),
    estate,
    backup: resolveBackup(name, site, estate),
    tailnet: {
      ...(headscale ? { headscale } : {}),
      ...(node ? { node } : {}),
    },
    follows: names.flatMap((svc) => {
      const primary = site.services[svc]?.follows;
      const secondary = (CATALOG[svc] as ServiceDef).secondary;
      const container = main(svc);
      return primary !== undefined && secondary && container
        ? [{ service: svc, primary, container, files: secondary.files }]
        : [];
    }),
  };
}

/** `[registry/]repository:tag[@digest]`: what Docker pulls. */
const imageRef = (registry: string | undefined, repository: string, tag: string, digest?: string) =>
  `${registry ? `${registry}/` : ""}${repository}:${tag}${digest ? `@${digest}` : ""}`;

function resolveBackup(name: string, site: SiteConfig, estate: Estate): SiteBackup {
  const target = backupTarget(estate, {
    name,
    role: site.role,
    controlPlane: site.controlPlane ?? name,
    backup: site.backup,
  });
  const defaults = defaultBackupSchedules(name);
  const ref = (i: ImageRef) => imageRef(site.images.registry, i.repository, i.tag, i.digest);
  return {
    ...(target ? { target } : {}),
    ...(site.backup.target ? { configuredTarget: site.backup.target } : {}),
    schedule: site.backup.schedule ?? defaults.schedule,
    restoreTest: site.backup.restoreTest ?? defaults.restoreTest,
    retention: site.backup.retention,
    hosted: hostedRepositories(estate, name).map((s) => ({ site: s.name, retention: s.backup.retention })),
    images: { restic: ref(RESTIC_IMAGE), sqlite: ref(SQLITE_IMAGE) },
  };
}

function resolveContainer(
  site: string,
  registry: string | undefined,
  svc: ServiceName,
  key: string,
  def: ContainerDef,
  o: Omit<ServiceOverride, "routes" | "containers">,
  ownNetwork: boolean,
): ContainerModel {
  const name = containerName(svc, key);
  const tag = o.version ?? def.image.tag;
  // A new version invalidates the catalog's digest: only an explicit digest pins it then.
  const digest = o.digest ?? (o.version === undefined ? def.image.digest : undefined);
  const env: Record<string, ResolvedEnv> = { ...(def.env as Record<string, EnvValue> | undefined) };
  for (const [k, v] of Object.entries(o.env ?? {})) env[k] = typeof v === "string" ? v : { config: v.secret };
  const owned = Object.entries(def.volumes ?? {}).map(([v, vd]) => ({
    volume: `${name}-${v}`,
    path: vd.path,
    backup: vd.backup,
  }));
  const shared = (def.sharedVolumes ?? []).map((s) => ({
    volume: `${containerName(svc, s.container)}-${s.volume}`,
    path: s.path,
    ...(s.readOnly ? { readOnly: true } : {}),
  }));
  const hc = def.healthcheck;
  return {
    service: svc,
    key,
    name,
    image: imageRef(registry, def.image.repository, tag, digest),
    ...(def.command ? { command: def.command } : {}),
    ...(def.entrypoint ? { entrypoint: def.entrypoint } : {}),
    ...(def.user ? { user: def.user } : {}),
    env,
    secretEnv: Object.entries(def.env ?? {})
      .filter(([, v]) => typeof v !== "string")
      .map(([k]) => k)
      .sort(),
    ports: (def.ports ?? []).map((p) => ({
      internal: p.internal,
      external: p.external,
      protocol: p.protocol ?? "tcp",
      ip: p.ip ?? "0.0.0.0",
    })),
    mounts: [...owned.map(({ volume, path }) => ({ volume, path })), ...shared],
    ownedVolumes: owned.map((v) => v.volume),
    volumes: owned,
    binds: (def.binds ?? []).map((b) => ({
      hostPath: b.hostPath,
      path: b.path,
      readOnly: b.readOnly ?? true,
    })),
    files: { ...def.files },
    secretFiles: { ...def.secretFiles },
    ...(def.networkMode ? { networkMode: def.networkMode } : {}),
    ...("test" in hc
      ? {
          healthcheck: {
            test: hc.test,
            interval: goDuration(seconds(hc.interval ?? "10s")),
            timeout: goDuration(seconds(hc.timeout ?? "5s")),
            retries: hc.retries ?? 3,
            startPeriod: goDuration(seconds(hc.startPeriod ?? "30s")),
          },
        }
      : {}),
    ...(def.metrics ? { metrics: { port: def.metrics.port, path: def.metrics.path ?? "/metrics" } } : {}),
    restart: def.restart ?? "unless-stopped",
    memoryMb: o.resources?.memory ?? def.memoryMb,
    cpus: o.resources?.cpus ?? def.cpus,
    networks: [
      ...(ownNetwork && def.serviceNetwork !== false ? [svc] : []),
      ...(def.privateNetworks ?? []).map((n) => `${svc}-${n}`),
      ...(def.networks ?? []),
    ],
    addresses: { ...def.addresses },
    capabilities: def.capabilities ?? [],
    devices: def.devices ?? [],
    dependsOn: (def.dependsOn ?? []).map((k) => containerName(svc, k)),
    labels: {
      [SITE_LABEL]: site,
      [SERVICE_LABEL]: svc,
      "cloud.qui3tly.container": key,
      "cloud.qui3tly.managed-by": "pulumi",
    },
  };
}

/** The tailnet node forwards each metrics port to its container: one container per port on a site. */
function checkMetricsPorts(services: readonly ServiceModel[], issue: Issue): void {
  const seen = new Map<number, string>();
  for (const s of services) {
    for (const c of s.containers) {
      if (!c.metrics) continue;
      const other = seen.get(c.metrics.port);
      if (other) {
        issue(
          SITE("services", s.name),
          `metrics port ${c.metrics.port} of \`${c.name}\` is already \`${other}\`'s; expected each metrics port once per site`,
        );
      }
      seen.set(c.metrics.port, c.name);
    }
  }
}

/** Two containers cannot publish the same port and protocol on overlapping addresses. */
function checkHostPorts(services: readonly ServiceModel[], issue: Issue): void {
  const seen = new Map<string, { container: string; ip: string }[]>();
  for (const s of services) {
    for (const c of s.containers) {
      for (const p of c.ports) {
        const k = `${p.external}/${p.protocol}`;
        const taken = seen.get(k) ?? [];
        const clash = taken.find((t) => t.ip === p.ip || t.ip === "0.0.0.0" || p.ip === "0.0.0.0");
        if (clash) {
          issue(
            SITE("services", s.name),
            `host port ${k} of \`${c.name}\` is already published by \`${clash.container}\`; expected each host port once`,
          );
        }
        seen.set(k, [...taken, { container: c.name, ip: p.ip }]);
      }
    }
  }
}
