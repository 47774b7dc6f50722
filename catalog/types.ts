import type {
  BackupDef,
  CatalogContext,
  HealthcheckDef,
  SecretSource,
  ServicePart,
} from "../render/siteModel";

export interface ImageRef {
  /** Registry and repository, e.g. `docker.io/library/traefik`. */
  readonly repository: string;
  /** An exact version, never `latest`. */
  readonly tag: string;
  /** `sha256:...`, filled by Renovate where a registry is reachable. */
  readonly digest?: string;
}

/** A value of an environment variable. */
export type EnvValue =
  | string
  /** A password the program generates (random.RandomPassword), shared by the service's containers. */
  | { readonly generated: string }
  /** A secret the operator sets with `pulumi config set --secret <key>`. */
  | { readonly config: string }
  /** A secret the stack supplies at run time (e.g. the site's tailnet pre-auth key), by name. */
  | { readonly input: string };

export interface PortDef {
  readonly internal: number;
  /** Host port; also the key of the clash check. */
  readonly external: number;
  /** Defaults to "tcp". */
  readonly protocol?: "tcp" | "udp";
  /** Defaults to all addresses. */
  readonly ip?: string;
}

/** A named volume: where it is mounted, and how it is backed up. */
export interface VolumeDef {
  readonly path: string;
  readonly backup: BackupDef;
}

export interface ContainerDef {
  readonly image: ImageRef;
  readonly command?: readonly string[];
  readonly entrypoint?: readonly string[];
  readonly user?: string;
  readonly env?: Readonly<Record<string, EnvValue>>;
  readonly ports?: readonly PortDef[];
  /** Named volumes (state, retained on delete) by key. The volume is named `<container>-<key>`. */
  readonly volumes?: Readonly<Record<string, VolumeDef>>;
  /** A volume owned by another container of the same service (e.g. the cron job sharing the app's files). */
  readonly sharedVolumes?: readonly {
    readonly container: string;
    readonly volume: string;
    readonly path: string;
    /** Defaults to false. */
    readonly readOnly?: boolean;
  }[];
  /** Host paths (sockets, /proc): read-only unless `readOnly: false`. */
  readonly binds?: readonly {
    readonly hostPath: string;
    readonly path: string;
    readonly readOnly?: boolean;
  }[];
  /** Generated config files (never secrets: those go through env or `secretFiles`), uploaded into the container. */
  readonly files?: Readonly<Record<string, string>>;
  /**
   * Files holding one secret each, by path: for configs that read secrets from files (Alertmanager's `*_file`
   * fields), so the rendered config holds a path, never the value.
   */
  readonly secretFiles?: Readonly<Record<string, SecretSource>>;
  /** `host`: the host's network stack (a WireGuard tunnel routing the host's subnets). Defaults to bridge networks. */
  readonly networkMode?: "host";
  /** How Docker knows it works; `none` names why an image cannot say (e.g. no shell or client inside). */
  readonly healthcheck: HealthcheckDef | { readonly none: string };
  /**
   * Its Prometheus endpoint: the control plane scrapes it on this site's tailnet name at `port` (the tailnet node
   * forwards it), or by container name on the control plane itself. Ports are unique per site.
   */
  readonly metrics?: { readonly port: number; /** Defaults to "/metrics". */ readonly path?: string };
  /** Defaults to "unless-stopped". */
  readonly restart?: "unless-stopped" | "always" | "on-failure";
  readonly memoryMb: number;
  readonly cpus: number;
  /**
   * Site networks to join besides the service's own: `edge` (reached by Traefik), `metrics` (scraped), `ingress`
   * (the tailnet node and Traefik alone, on `mesh.ingressSubnet`), `egress-<service>` (a flow's consumer and its
   * egress node alone: render/policy.ts; the model adds the consumer's containers).
   */
  readonly networks?: readonly ("edge" | "metrics" | "ingress" | `egress-${string}`)[];
  /**
   * Networks shared only with the containers of the same service that name them too; the model names them
   * `<service>-<name>`. A Docker API consumer and its proxy share one (render/dockerApi.ts).
   */
  readonly privateNetworks?: readonly string[];
  /**
   * Joins the service's own network (a service of several containers has one). Defaults to true; false for a
   * container that only its private networks' peers may reach, such as a Docker API proxy, or that must share no
   * network with its siblings (the tailnet's nodes: each egress node is reached by its consumer alone).
   */
  readonly serviceNetwork?: boolean;
  /** Fixed addresses on networks that have a fixed range (`ingress`: render/traefik.ts ingressAddresses). */
  readonly addresses?: { readonly ingress?: string };
  readonly capabilities?: readonly string[];
  readonly devices?: readonly string[];
  /** Keys of containers of the same service that must exist first. */
  readonly dependsOn?: readonly string[];
}

export interface RouteDef {
  /** The container key serving it. Defaults to "main". */
  readonly container?: string;
  readonly subdomain: string;
  /** Only requests under this path. Defaults to the whole host. */
  readonly pathPrefix?: string;
  readonly port: number;
  /** The backend speaks TLS itself. Defaults to "http". */
  readonly scheme?: "http" | "https";
  /** Reachable from the tailnet only (Traefik ip allow-list). Defaults to false. */
  readonly private?: boolean;
  /** What the outside-in probe requests, where the route's root is no health signal. Defaults to the path prefix or `/`. */
  readonly probePath?: string;
}

/**
 * How a site runs the service as a secondary of another site's (its primary: `services.<name>.follows`): which files
 * of the primary's `main` container it pulls (render/sync.ts) and how it takes them in. A service without one runs on
 * one site only: its state has one writer (a database), or nothing keeps two copies alike.
 */
export interface SecondaryDef {
  /**
   * What makes the secondary answer as the primary: paths in the `main` container, each inside one of its volumes,
   * each with the command the secondary's `main` container runs after that file changed (once a run, however many
   * files ask for it).
   */
  readonly files: Readonly<Record<string, readonly string[]>>;
  /**
   * The secondary serves the service's routes too, as a standby, for a service that can answer from two sites at
   * once (nothing it serves is written through it): each site's Traefik sends a request to the primary's instance
   * while it passes its health check, else to a standby's, the other site's over the tailnet; each site's Pi-hole
   * sends tailnet clients to its own site (render/traefik.ts, render/dns.ts). Without it a secondary has no routes:
   * its admin UI is the primary's.
   */
  readonly servesRoutes?: boolean;
}

export interface ServiceDef {
  readonly description: string;
  /** Whether and how a site may run it as a secondary of another site's. Defaults to none: one site only. */
  readonly secondary?: SecondaryDef;
  /** Where it sits in the site's resource tree. Defaults to "site". */
  readonly part?: ServicePart;
  /** Routes by name. */
  readonly routes?: Readonly<Record<string, RouteDef>>;
  /** Services that must run on the same site (a dependency outside the service). */
  readonly requires?: readonly string[];
  /** Passwords to generate, by name, shared by the containers as `{ generated: name }`. */
  readonly generatedSecrets?: readonly string[];
  /** The containers by key: `main` is named like the service, the others `<service>-<key>`. */
  readonly containers: (ctx: CatalogContext) => Readonly<Record<string, ContainerDef>>;
}
