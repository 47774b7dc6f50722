import type { CatalogContext, Route } from "../catalog/types";
import { toYaml } from "./yaml";

/** Tailscale's address ranges: `private` routes answer only these. */
export const TAILNET_RANGES = ["100.64.0.0/10", "fd7a:115c:a1e0::/48"] as const;

export function renderTraefikStatic(ctx: Pick<CatalogContext, "acmeEmail">): string {
  return toYaml({
    global: { checkNewVersion: false, sendAnonymousUsage: false },
    log: { level: "INFO" },
    accessLog: { format: "json" },
    entryPoints: {
      web: { address: ":80", http: { redirections: { entryPoint: { to: "websecure", scheme: "https" } } } },
      websecure: { address: ":443", http: { tls: { certResolver: "letsencrypt" } } },
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

export function renderTraefikDynamic(routes: readonly Route[]): string {
  const routers: Record<string, unknown> = {};
  const services: Record<string, unknown> = {};
  for (const r of routes) {
    const id = routeId(r);
    routers[id] = {
      rule: traefikRule(r),
      entryPoints: ["websecure"],
      service: id,
      ...(r.private ? { middlewares: ["tailnet-only"] } : {}),
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
      middlewares: { "tailnet-only": { ipAllowList: { sourceRange: [...TAILNET_RANGES] } } },
      serversTransports: { "self-signed": { insecureSkipVerify: true } },
      routers,
      services,
    },
  });
}
