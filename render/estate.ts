import type { BackupConfig, MeshConfig, Role } from "../config/schema";

/**
 * The estate's shape: every site of the project, as the control plane needs to know it (what to scrape, probe and
 * admit to the tailnet). Plain data the render functions take; model/estate.ts builds it from the stack files.
 */

/** A Traefik route: `https://<host>` to `<container>:<port>`. */
export interface Route {
  readonly name: string;
  readonly service: string;
  readonly container: string;
  readonly host: string;
  readonly pathPrefix?: string;
  readonly port: number;
  readonly scheme: "http" | "https";
  /** Reachable from the tailnet only. */
  readonly private: boolean;
  /** The path the outside-in probe requests. */
  readonly probePath: string;
  /**
   * The other sites that serve it too (a standby: catalog/types.ts SecondaryDef `servesRoutes`), whose Traefik this
   * site's reaches over the tailnet (render/traefik.ts). None: this site's alone.
   */
  readonly peers?: readonly string[];
  /**
   * With peers: this site's instance is the standby (a secondary's), which its Traefik uses only while the primary's
   * fails its health check; else this site's own instance first, the peers' while it fails.
   */
  readonly standby?: boolean;
}

/** A Prometheus endpoint of a container. */
export interface MetricsEndpoint {
  readonly service: string;
  readonly container: string;
  readonly port: number;
  readonly path: string;
  /**
   * On no network the control plane's Prometheus shares (an egress node): scraped through the site's tailnet node,
   * on the control plane too.
   */
  readonly throughNode: boolean;
}

/** One site, as the rest of the estate sees it. */
export interface EstateSite {
  readonly name: string;
  /** Its stack file, for error messages. */
  readonly file: string;
  readonly role: Role;
  readonly domain: string;
  readonly controlPlane: string;
  /** Its MagicDNS name on the tailnet: on its control plane's domain (model/estateSite.ts meshHost). */
  readonly meshHost: string;
  /** Where peers reach it from the internet: the host's address, when the stack file says it. */
  readonly address?: string;
  /** `<address>:<ssh port>`, when the stack file says it: the server the stack manages. */
  readonly server?: string;
  readonly services: readonly string[];
  /** Every container's name, sorted: what should be running there. */
  readonly containers: readonly string[];
  readonly routes: readonly Route[];
  /** Sorted by port. */
  readonly metrics: readonly MetricsEndpoint[];
  readonly mesh: MeshConfig;
  /** Its stack file's backup settings (the target it names, if any; the retention its repository applies). */
  readonly backup: Pick<BackupConfig, "target" | "retention">;
  /**
   * The services it runs as secondaries of other sites' (`services.<name>.follows`), sorted by service, and whether
   * each pulls its primary's state (a standby that only serves routes pulls nothing).
   */
  readonly follows: readonly {
    readonly service: string;
    readonly primary: string;
    readonly pulls: boolean;
  }[];
  /** The site that keeps its backup repository, once the estate is known (see backupTarget). */
  readonly backupTarget?: string;
}

export interface Estate {
  /** Sorted by name. */
  readonly sites: readonly EstateSite[];
}
