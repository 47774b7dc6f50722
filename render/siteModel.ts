import type {
  AcmeDnsChallenge,
  BackupConfig,
  HostConfig,
  MeshConfig,
  MonitoringConfig,
  Role,
} from "../config/schema";
import type { Estate, Route } from "./estate";

/** The plain, fully resolved description of one site: what render functions and components consume. */
export interface SiteModel {
  /** The stack file this came from, for error messages. */
  readonly file: string;
  readonly name: string;
  readonly role: Role;
  readonly domain: string;
  readonly acmeEmail: string;
  /** Traefik's certificates by the DNS challenge; none: the HTTP challenge. */
  readonly acmeDnsChallenge?: AcmeDnsChallenge;
  readonly timezone: string;
  readonly protect: boolean;
  /** Registry every image is pulled through, if any. */
  readonly registry?: string;
  /** The control-plane site (itself on the control plane). */
  readonly controlPlane: string;
  readonly host: HostConfig;
  /** Sorted by name. */
  readonly services: readonly ServiceModel[];
  readonly routes: readonly Route[];
  /** Docker networks to create: the site-wide ones and one per multi-container service. */
  readonly networks: readonly string[];
  readonly mesh: MeshConfig;
  /** Control plane only: retention and alert receivers, defaults filled in. */
  readonly monitoring?: MonitoringConfig;
  /** The other sites, as far as this one needs them (empty when loaded alone). */
  readonly estate: Estate;
  readonly backup: SiteBackup;
  /** The containers that hold the site's part of the tailnet: the stacks wire these, never names of their own. */
  readonly tailnet: SiteTailnet;
  /** The services it runs as secondaries of other sites' (render/sync.ts), sorted by service. */
  readonly follows: readonly SiteFollow[];
}

/** A service run as a secondary: what its job pulls from the primary, into which container, and how it reloads. */
export interface SiteFollow {
  readonly service: string;
  /** The site that runs the primary. */
  readonly primary: string;
  /** The secondary's `main` container, where the files go. */
  readonly container: string;
  /** Each file, with the command its container runs after it changed (catalog/types.ts SecondaryDef); none for a
   * standby that serves the primary's routes and pulls nothing. */
  readonly files: Readonly<Record<string, readonly string[]>>;
}

/** Whether a secondary pulls anything from its primary (a job, a share, a flow, gauges): a standby pulls nothing. */
export const pulls = (f: Pick<SiteFollow, "files">): boolean => Object.keys(f.files).length > 0;

/** Container names, from the catalog's own keys (model/site.ts TAILNET_SERVICES). */
export interface SiteTailnet {
  /** Headscale's container, where the site runs it: on every control plane (a stack file that removes it is refused). */
  readonly headscale?: string;
  /** The site's tailnet node, whose address the stack reports; none when the stack file removes it. */
  readonly node?: string;
}

/** Where and when the site's volumes are backed up; the repositories it keeps for other sites. */
export interface SiteBackup {
  /** The site that keeps this site's repository; none in an estate of one site. */
  readonly target?: string;
  /** The target as the stack file names it, if it does (the estate resolves the default). */
  readonly configuredTarget?: string;
  /** Cron schedules, defaults filled in. */
  readonly schedule: string;
  readonly restoreTest: string;
  readonly retention: BackupConfig["retention"];
  /** The sites whose repositories this site keeps, with the retention each asks for. Sorted by name. */
  readonly hosted: readonly { readonly site: string; readonly retention: BackupConfig["retention"] }[];
  /** The job's images (through the site's registry, like the containers'). */
  readonly images: { readonly restic: string; readonly sqlite: string };
}

/** A volume a container owns, and how it is backed up. */
export interface VolumeModel {
  readonly volume: string;
  readonly path: string;
  readonly backup: BackupDef;
}

/**
 * Where a service sits in its site's resource tree (components/site.ts): the tailnet's control (`Tailnet`, on the
 * control plane), the site's own place on the tailnet (`MeshNode`), `Monitoring`, or the site itself.
 */
export type ServicePart = "tailnet" | "mesh-node" | "monitoring" | "site";

export interface ServiceModel {
  /** A catalog entry's name (catalog/index.ts ServiceName). */
  readonly name: string;
  readonly description: string;
  /** Where it sits in the site's resource tree. */
  readonly part: ServicePart;
  readonly generatedSecrets: readonly string[];
  readonly containers: readonly ContainerModel[];
}

/** A resolved env value: plain text, a generated password, or a secret config key. */
export type ResolvedEnv =
  string | { readonly generated: string } | { readonly config: string } | { readonly input: string };

/** Where a secret env value comes from, for reviewable output: its source, never its value. */
export function describeSecret(v: Exclude<ResolvedEnv, string>): string {
  if ("generated" in v) return `<generated password: ${v.generated}>`;
  if ("config" in v) return `<secret config: ${v.config}>`;
  return `<secret input: ${v.input}>`;
}

export interface PortModel {
  readonly internal: number;
  readonly external: number;
  readonly protocol: "tcp" | "udp";
  /** The host address it binds; "0.0.0.0" for all. */
  readonly ip: string;
}

export interface ContainerModel {
  /** Its service's catalog name (catalog/index.ts ServiceName). */
  readonly service: string;
  /** The catalog key: `main`, `db` ... */
  readonly key: string;
  /** The Docker container name (unique on the host, stable: the resource name derives from it). */
  readonly name: string;
  /** `repository:tag` or `repository:tag@sha256:...`. */
  readonly image: string;
  readonly command?: readonly string[];
  readonly entrypoint?: readonly string[];
  readonly user?: string;
  readonly env: Readonly<Record<string, ResolvedEnv>>;
  /**
   * The env keys the catalog gives a secret value, sorted: a stack file's plain override of one is plain text, which
   * the policy pack refuses (policy/rules.ts `secret-env-not-plain`).
   */
  readonly secretEnv: readonly string[];
  readonly ports: readonly PortModel[];
  /** Named volumes mounted: the ones it owns and the ones it shares. */
  readonly mounts: readonly { readonly volume: string; readonly path: string; readonly readOnly?: boolean }[];
  /** The named volumes this container owns (created with it, retained on delete). */
  readonly ownedVolumes: readonly string[];
  /** The same volumes, with how each is backed up. */
  readonly volumes: readonly VolumeModel[];
  readonly binds: readonly { readonly hostPath: string; readonly path: string; readonly readOnly: boolean }[];
  readonly files: Readonly<Record<string, string>>;
  /** Files holding one secret each, by path. */
  readonly secretFiles: Readonly<Record<string, SecretSource>>;
  readonly networkMode?: "host";
  readonly healthcheck?: Required<HealthcheckDef>;
  readonly metrics?: { readonly port: number; readonly path: string };
  readonly restart: "unless-stopped" | "always" | "on-failure";
  readonly memoryMb: number;
  readonly cpus: number;
  readonly networks: readonly string[];
  /** Fixed addresses, by network. */
  readonly addresses: Readonly<Record<string, string>>;
  readonly capabilities: readonly string[];
  readonly devices: readonly string[];
  /** Container names. */
  readonly dependsOn: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
}

/** Log rotation for every container: a full disk is the commonest way a small server dies. */
export const LOG_OPTS = { "max-size": "10m", "max-file": "3" } as const;

/** Docker network names: prefixed so they never collide with what an operator made by hand. */
export const networkName = (name: string) => `qcloud-${name}`;

/** Resource names may not hold `:` or `/`: image refs become `docker.io-library-redis-7.4.1-alpine`. */
export const imageKey = (ref: string) => ref.replace(/[^A-Za-z0-9._-]+/g, "-");

/** What a catalog entry can know about the site it is placed on. */
export interface CatalogContext {
  readonly site: string;
  readonly role: Role;
  readonly domain: string;
  readonly timezone: string;
  readonly acmeEmail: string;
  /** Traefik's certificates by the DNS challenge; none: the HTTP challenge. */
  readonly acmeDnsChallenge?: AcmeDnsChallenge;
  /** This service's routes, resolved to host names (after the site's overrides). */
  readonly hosts: Readonly<Record<string, string>>;
  /** Every route on the site: Traefik renders its dynamic config from these. */
  readonly siteRoutes: readonly Route[];
  /** Every service placed on the site. */
  readonly siteServices: readonly string[];
  /** Where this site's log shipper pushes (Loki on the control plane). */
  readonly lokiPushUrl: string;
  /** Every site of the estate (this one included): what the control plane scrapes, probes and admits. */
  readonly estate: Estate;
  /** This site's mesh settings. */
  readonly mesh: MeshConfig;
  /** The port the host's SSH server listens on (the tailnet node forwards admins' SSH there). */
  readonly sshdPort: number;
  /** The control-plane site's name. */
  readonly controlPlane: string;
  /** Retention and alert receivers (the control plane's; defaults elsewhere, where nothing reads them). */
  readonly monitoring: MonitoringConfig;
}

// The parts of a catalog entry (catalog/types.ts ContainerDef) that the model passes on unchanged.

/**
 * A secret from a config key the operator sets, from the stack at run time (by input name), or a password the
 * program generates (`generatedSecrets`).
 */
export type SecretSource =
  { readonly config: string } | { readonly input: string } | { readonly generated: string };

export interface HealthcheckDef {
  readonly test: readonly string[];
  /**
   * Defaults to "10s", as a kubelet probes: Docker 20.10 (Debian's) has no faster interval while starting, so a
   * container is healthy at the first probe after its start, and everything that waits on it waits that long.
   * It is unhealthy once its start period and `retries` x interval pass with no good probe (60 s by default), and
   * `up` fails on it 30 s later: a slow starter sets its `startPeriod` (UISP's is 300 s).
   */
  readonly interval?: string;
  /** Defaults to "5s". */
  readonly timeout?: string;
  /** Defaults to 3. */
  readonly retries?: number;
  /** Defaults to "30s". */
  readonly startPeriod?: string;
}

/**
 * How a volume is kept in the backups, consistently (render/backup.ts runs it): every retained volume says so,
 * or says why it is not kept.
 */
export type BackupDef =
  /** A restic snapshot of the volume's files, taken while the service runs. */
  | { readonly method: "files" }
  /** A logical dump (`pg_dump`) from the running database, never its data directory; restored with `psql`. */
  | { readonly method: "postgres"; readonly database: string; readonly user: string }
  /**
   * SQLite databases (paths relative to the volume) copied online with `.backup`; the rest of the volume as files.
   */
  | { readonly method: "sqlite"; readonly databases: readonly string[] }
  /** The application's own export (paths relative to the volume, where it writes it); the rest is not kept. */
  | { readonly method: "export"; readonly paths: readonly string[]; readonly why: string }
  /** Not kept, and why (a cache, history that is not worth its size, data rebuilt by itself). */
  | { readonly method: "none"; readonly why: string };
export type BackupMethod = BackupDef["method"];
