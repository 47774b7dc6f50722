import * as fs from "node:fs";
import * as path from "node:path";
import { type AcmeDnsChallenge, SITE_KEY, ipv4Int } from "../config/schema";
import { CROWDSEC_LOG_CONTAINER, dockerApiHost } from "./dockerApi";
import type { Route } from "./estate";
import type { CatalogContext, SiteModel } from "./siteModel";
import { toYaml } from "./yaml";

/** Tailscale's address ranges: `private` routes answer only these. */
export const TAILNET_RANGES = ["100.64.0.0/10", "fd7a:115c:a1e0::/48"] as const;

/**
 * Traefik's entrypoint for the tailnet: the site's node forwards its port 443 here with a PROXY header, so routes
 * see the tailnet client's address. Not published on the host; reached on the `ingress` network only.
 */
export const TAILNET_ENTRYPOINT_PORT = 8443;

/**
 * Traefik's entrypoint for other sites' logs, on the control plane: its tailnet node forwards the tailnet's Loki
 * port here (render/headscale.ts), never to Loki itself. Not published on the host. Its one route is the push path,
 * behind each site's own password; everything else on it (queries, tail, the API) has no route: 404.
 */
export const LOGS_ENTRYPOINT_PORT = 3100;
/** Where Loki takes pushes: the only path the logs entrypoint routes. */
export const LOKI_PUSH_PATH = "/loki/api/v1/push";
/** Traefik's secret files (uploaded, never rendered into a config): outside the watched dynamic directory. */
const SECRETS_DIR = "/etc/traefik/secrets";
/** The logs entrypoint's users, `site:bcrypt` a line. */
export const LOGS_USERS_FILE = `${SECRETS_DIR}/logs-users`;
/** The header Loki takes the tenant from: the authenticated site's name, whatever the client sent. */
export const TENANT_HEADER = "X-Scope-OrgID";

/**
 * Where a site's Traefik takes its peers' fallback requests (routes served on two sites, Route.peers): its `peer`
 * entrypoint, plain HTTP with a PROXY header from the node, which forwards the tailnet's port of the same number
 * there. On that entrypoint a route goes to the site's own instance only, never on to another site: no loops.
 */
export const PEER_PORT = 8444;
/**
 * How often each site's Traefik checks each instance of a route it shares (the route's probe path), and how long it
 * waits: its own on the host, the other site's across the tailnet. Traefik takes an instance out at its first failed
 * check and back at its first good one: a change within the interval and the timeout (5 s at most).
 */
export const FAILOVER_HEALTH = {
  local: { interval: "2s", timeout: "2s" },
  peers: { interval: "3s", timeout: "2s" },
} as const;

/** The sites a site's routes fall back to, sorted: each gets a forwarder on the site (peerForwarderKey). */
export const peerSites = (routes: readonly Route[]): string[] =>
  [...new Set(routes.flatMap((r) => r.peers ?? []))].sort();
/** The container key, in Traefik's service, of the forwarder to a peer, and its name. */
export const peerForwarderKey = (site: string) => `peer-${site}`;
const peerForwarderName = (site: string) => `traefik-${peerForwarderKey(site)}`;
/** The forwarder's program (render/peer-forward.py) and where it goes in its container. */
export const PEER_FORWARD_SCRIPT = fs.readFileSync(path.join(__dirname, "peer-forward.py"), "utf8");
export const PEER_FORWARD_SCRIPT_PATH = "/usr/local/lib/qcloud/peer-forward.py";

/**
 * The `ingress` network's fixed addresses: its gateway (the host itself; Docker's own choice, made explicit), the
 * tailnet node (the one source Traefik believes PROXY headers from), Traefik (where the node forwards) and Pi-hole
 * (the site's resolver for the tailnet: the node routes `<resolver>/32` to it, render/dns.ts).
 */
export function ingressAddresses(subnet: string): {
  readonly gateway: string;
  readonly node: string;
  readonly traefik: string;
  readonly resolver: string;
} {
  const base = ipv4Int(subnet.split("/")[0]!);
  const ip = (n: number) => [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
  return { gateway: ip(base + 1), node: ip(base + 2), traefik: ip(base + 3), resolver: ip(base + 4) };
}

/** A network's fixed range, where it has one: `ingress` (ingressAddresses). */
export function networkSubnet(
  site: Pick<SiteModel, "mesh">,
  name: string,
): { readonly subnet: string; readonly gateway: string } | undefined {
  if (name !== "ingress") return undefined;
  return { subnet: site.mesh.ingressSubnet, gateway: ingressAddresses(site.mesh.ingressSubnet).gateway };
}

export function renderTraefikStatic(
  ctx: Pick<CatalogContext, "acmeEmail" | "acmeDnsChallenge" | "mesh" | "siteServices" | "siteRoutes">,
  opts: { readonly logs: boolean } = { logs: false },
): string {
  return toYaml({
    global: { checkNewVersion: false, sendAnonymousUsage: false },
    log: { level: "INFO" },
    accessLog: { format: "json" },
    entryPoints: {
      web: { address: ":80", http: { redirections: { entryPoint: { to: "websecure", scheme: "https" } } } },
      websecure: { address: ":443", http: { tls: { certResolver: "letsencrypt" } } },
      // Where the site's tailnet node forwards admins' HTTPS. The PROXY header is believed from that node's
      // fixed address on the ingress network only.
      ...(ctx.siteServices.includes("tailscale")
        ? {
            tailnet: {
              address: `:${TAILNET_ENTRYPOINT_PORT}`,
              proxyProtocol: { trustedIPs: [`${ingressAddresses(ctx.mesh.ingressSubnet).node}/32`] },
              http: { tls: { certResolver: "letsencrypt" } },
            },
          }
        : {}),
      // Plain HTTP: only the tailnet node forwards here, and the tailnet is WireGuard-encrypted end to end.
      ...(opts.logs ? { logs: { address: `:${LOGS_ENTRYPOINT_PORT}` } } : {}),
      // Other sites' fallback requests for the routes this site shares with them, from the node alone (as above).
      ...(ctx.siteServices.includes("tailscale") && peerSites(ctx.siteRoutes).length > 0
        ? {
            peer: {
              address: `:${PEER_PORT}`,
              proxyProtocol: { trustedIPs: [`${ingressAddresses(ctx.mesh.ingressSubnet).node}/32`] },
            },
          }
        : {}),
      metrics: { address: ":8082" },
    },
    ping: { entryPoint: "metrics" },
    metrics: { prometheus: { entryPoint: "metrics", addRoutersLabels: true } },
    providers: { file: { directory: "/etc/traefik/dynamic", watch: true } },
    certificatesResolvers: {
      letsencrypt: {
        acme: {
          email: ctx.acmeEmail,
          storage: "/letsencrypt/acme.json",
          // The DNS challenge where the site has one: it proves the name whichever site its address points at.
          ...(ctx.acmeDnsChallenge
            ? {
                dnsChallenge: {
                  provider: ctx.acmeDnsChallenge.provider,
                  ...(ctx.acmeDnsChallenge.resolvers ? { resolvers: ctx.acmeDnsChallenge.resolvers } : {}),
                },
              }
            : { httpChallenge: { entryPoint: "web" } }),
        },
      },
    },
  });
}

/**
 * Traefik's environment and secret files for the DNS challenge's provider (lego): each plain setting as it is, each
 * credential as `<NAME>_FILE`, the path of a file holding the config secret, so it is in no container's environment.
 */
export function acmeDnsEnv(challenge: AcmeDnsChallenge | undefined): {
  env: Record<string, string>;
  secretFiles: Record<string, { config: string }>;
} {
  const env: Record<string, string> = {};
  const secretFiles: Record<string, { config: string }> = {};
  for (const [name, value] of Object.entries(challenge?.env ?? {})) {
    if (typeof value === "string") {
      env[name] = value;
      continue;
    }
    const file = `${SECRETS_DIR}/acme-${name}`;
    env[`${name}_FILE`] = file;
    secretFiles[file] = { config: value.secret };
  }
  return { env, secretFiles };
}

/**
 * What `npm run check` says about a site that serves another site's routes as a standby with the HTTP challenge:
 * Let's Encrypt's request for the name reaches the site its public address points at (the primary), so this
 * site's Traefik gets no certificate for it and serves its default one, which browsers refuse.
 */
export function standbyCertWarning(
  m: Pick<SiteModel, "file" | "name" | "routes" | "acmeDnsChallenge">,
): string | undefined {
  const standby = m.routes.filter((r) => r.standby);
  if (m.acmeDnsChallenge !== undefined || standby.length === 0) return undefined;
  const names = standby.map((r) => `${r.host} (${r.service}, ${r.peers![0]}'s)`).join(", ");
  return (
    `${m.file}: \`${SITE_KEY}.acmeDnsChallenge\` is not set: ${m.name} serves ${names} as a standby, and the HTTP ` +
    "challenge for those names reaches the site their public address points at, so its Traefik has no " +
    "certificate for them and clients that reach it get its default one, which browsers refuse; set the DNS " +
    'challenge with your DNS provider (README "A site down: what is redundant")'
  );
}

/** The router/service name of a route: stable, from the service and route names. */
export const routeId = (r: Route) => `${r.service}-${r.name}`;

export function traefikRule(r: Route): string {
  const host = `Host(\`${r.host}\`)`;
  return r.pathPrefix === undefined ? host : `${host} && PathPrefix(\`${r.pathPrefix}\`)`;
}

/** The CrowdSec bouncer Traefik asks before every request, where CrowdSec runs on the site. */
export const CROWDSEC_BOUNCER = "http://crowdsec-bouncer:8080/api/v1/forwardAuth";

export function renderTraefikDynamic(
  routes: readonly Route[],
  opts: { readonly crowdsec: boolean; readonly tailnet: boolean; readonly logs?: boolean },
): string {
  const routers: Record<string, unknown> = {};
  const services: Record<string, unknown> = {};
  for (const r of routes) {
    const id = routeId(r);
    routers[id] = {
      rule: traefikRule(r),
      entryPoints: ["websecure", ...(opts.tailnet ? ["tailnet"] : [])],
      service: id,
      ...(r.private || opts.crowdsec
        ? { middlewares: [...(r.private ? ["tailnet-only"] : []), ...(opts.crowdsec ? ["crowdsec"] : [])] }
        : {}),
    };
    const local = {
      servers: [{ url: `${r.scheme}://${r.container}:${r.port}` }],
      // Appliances (UniFi, UISP) serve self-signed TLS inside the host only.
      ...(r.scheme === "https" ? { serversTransport: "self-signed" } : {}),
    };
    if (!r.peers?.length || !opts.tailnet) {
      services[id] = { loadBalancer: local };
      continue;
    }
    // Served on other sites too: on every site the primary's instance while it passes its health check, else a
    // standby's; another site's through this site's forwarders, to its `peer` entrypoint, where the route goes to its
    // own instance alone.
    const [first, then] = r.standby ? ["peers", "local"] : ["local", "peers"];
    services[id] = { failover: { service: `${id}-${first}`, fallback: `${id}-${then}` } };
    const check = (kind: keyof typeof FAILOVER_HEALTH) => ({
      path: r.probePath,
      hostname: r.host,
      ...FAILOVER_HEALTH[kind],
    });
    services[`${id}-local`] = { loadBalancer: { ...local, healthCheck: check("local") } };
    services[`${id}-peers`] = {
      loadBalancer: {
        servers: r.peers.map((p) => ({ url: `http://${peerForwarderName(p)}:${PEER_PORT}` })),
        serversTransport: "peer",
        healthCheck: check("peers"),
      },
    };
    routers[`${id}-peer`] = {
      rule: traefikRule(r),
      entryPoints: ["peer"],
      service: `${id}-local`,
      ...(r.private ? { middlewares: ["tailnet-only"] } : {}),
    };
  }
  if (opts.logs) {
    // Exactly the push path, on the logs entrypoint only: a query, the tail or any other API call finds no route.
    routers["logs-push"] = {
      rule: `Path(\`${LOKI_PUSH_PATH}\`)`,
      entryPoints: ["logs"],
      middlewares: ["logs-tenant-clear", "logs-tenant"],
      service: "logs-push",
    };
    services["logs-push"] = { loadBalancer: { servers: [{ url: `http://loki:${LOGS_ENTRYPOINT_PORT}` }] } };
  }
  return toYaml({
    http: {
      middlewares: {
        "tailnet-only": { ipAllowList: { sourceRange: [...TAILNET_RANGES] } },
        ...(opts.crowdsec
          ? { crowdsec: { forwardAuth: { address: CROWDSEC_BOUNCER, trustForwardHeader: true } } }
          : {}),
        ...(opts.logs
          ? {
              // Whatever tenant the client names is dropped first (an empty value removes the header): basicAuth's
              // headerField adds the user beside a client's own `X-Scope-OrgID` rather than replacing it (Traefik
              // v3.2.3, test/mesh.test.ts), and Loki would see both ...
              "logs-tenant-clear": { headers: { customRequestHeaders: { [TENANT_HEADER]: "" } } },
              // ... then the site's own password decides it: the tenant is the user who authenticated, and Loki
              // never sees the password.
              "logs-tenant": {
                basicAuth: {
                  usersFile: LOGS_USERS_FILE,
                  realm: "loki",
                  headerField: TENANT_HEADER,
                  removeHeader: true,
                },
              },
            }
          : {}),
      },
      serversTransports: {
        "self-signed": { insecureSkipVerify: true },
        // Another site, across the tailnet: a tunnel that died (a power cut) fails a request, it does not hang it.
        ...(peerSites(routes).length > 0 && opts.tailnet
          ? {
              peer: {
                forwardingTimeouts: {
                  dialTimeout: "2s",
                  responseHeaderTimeout: "10s",
                  idleConnTimeout: "30s",
                },
              },
            }
          : {}),
      },
      routers,
      services,
    },
  });
}

/** CrowdSec reads Traefik's access log from Docker (through the socket proxy), parsed as Traefik's. */
export function renderCrowdsecAcquisition(): string {
  return toYaml({
    source: "docker",
    container_name: [CROWDSEC_LOG_CONTAINER],
    docker_host: dockerApiHost("crowdsec"),
    labels: { type: "traefik" },
  });
}
