import type { CatalogContext, Route } from "../catalog/types";
import { ipv4Int } from "../config/schema";
import { toYaml } from "./yaml";

/** Tailscale's address ranges: `private` routes answer only these. */
export const TAILNET_RANGES = ["100.64.0.0/10", "fd7a:115c:a1e0::/48"] as const;

/**
 * Traefik's entrypoint for the tailnet: the site's node forwards its port 443 here with a PROXY header, so routes
 * see the tailnet client's address. Not published on the host; reached on the `ingress` network only.
 */
export const TAILNET_ENTRYPOINT_PORT = 8443;

/** The `ingress` network's gateway, the host itself: its first address (Docker's own choice, made explicit). */
export function ingressGateway(subnet: string): string {
  const n = ipv4Int(subnet.split("/")[0]!) + 1;
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

export function renderTraefikStatic(ctx: Pick<CatalogContext, "acmeEmail" | "mesh">): string {
  return toYaml({
    global: { checkNewVersion: false, sendAnonymousUsage: false },
    log: { level: "INFO" },
    accessLog: { format: "json" },
    entryPoints: {
      web: { address: ":80", http: { redirections: { entryPoint: { to: "websecure", scheme: "https" } } } },
      websecure: { address: ":443", http: { tls: { certResolver: "letsencrypt" } } },
      // The PROXY header is believed only from the ingress network, where the node and Traefik are alone.
      tailnet: {
        address: `:${TAILNET_ENTRYPOINT_PORT}`,
        proxyProtocol: { trustedIPs: [ctx.mesh.ingressSubnet] },
        http: { tls: { certResolver: "letsencrypt" } },
      },
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
          httpChallenge: { entryPoint: "web" },
        },
      },
    },
  });
}

/** The router/service name of a route: stable, from the service and route names. */
export const routeId = (r: Route) => `${r.service}-${r.name}`;

export function traefikRule(r: Route): string {
  const host = `Host(\`${r.host}\`)`;
  return r.pathPrefix === undefined ? host : `${host} && PathPrefix(\`${r.pathPrefix}\`)`;
}

/** The CrowdSec bouncer Traefik asks before every request, where CrowdSec runs on the site. */
export const CROWDSEC_BOUNCER = "http://crowdsec-bouncer:8080/api/v1/forwardAuth";

export function renderTraefikDynamic(routes: readonly Route[], opts: { readonly crowdsec: boolean }): string {
  const routers: Record<string, unknown> = {};
  const services: Record<string, unknown> = {};
  for (const r of routes) {
    const id = routeId(r);
    routers[id] = {
      rule: traefikRule(r),
      entryPoints: ["websecure", "tailnet"],
      service: id,
      ...(r.private || opts.crowdsec
        ? { middlewares: [...(r.private ? ["tailnet-only"] : []), ...(opts.crowdsec ? ["crowdsec"] : [])] }
        : {}),
    };
    services[id] = {
      loadBalancer: {
        servers: [{ url: `${r.scheme}://${r.container}:${r.port}` }],
        // Appliances (UniFi, UISP) serve self-signed TLS inside the host only.
        ...(r.scheme === "https" ? { serversTransport: "self-signed" } : {}),
      },
    };
  }
  return toYaml({
    http: {
      middlewares: {
        "tailnet-only": { ipAllowList: { sourceRange: [...TAILNET_RANGES] } },
        ...(opts.crowdsec
          ? { crowdsec: { forwardAuth: { address: CROWDSEC_BOUNCER, trustForwardHeader: true } } }
          : {}),
      },
      serversTransports: { "self-signed": { insecureSkipVerify: true } },
      routers,
      services,
    },
  });
}

/** CrowdSec reads Traefik's access log from Docker (through the socket proxy), parsed as Traefik's. */
export function renderCrowdsecAcquisition(): string {
  return toYaml({
    source: "docker",
    container_name: ["traefik"],
    docker_host: "tcp://socket-proxy:2375",
    labels: { type: "traefik" },
  });
}
