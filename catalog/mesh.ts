import { loginServer, renderServeConfig } from "../render/headscale";
import { ingressAddresses } from "../render/traefik";
import { WG_INTERFACE } from "../render/wireguard";
import { MESH_PROXY_PORT } from "../render/prometheus";
import { files, httpHealth, image } from "./helpers";
import type { CatalogContext, EnvValue, ServiceDef } from "./types";

/** The tailnet: Tailscale nodes on every site, joined to the control plane's Headscale. */

/** The node's WireGuard (disco) port, Tailscale's default. */
export const NODE_WIREGUARD_PORT = 41641;
/** The tailnet's port for the node's own health and metrics (containerboot). */
export const NODE_METRICS_PORT = 9002;
/** The egress node's, beside it on the same site (metrics ports are unique per site). */
const EGRESS_METRICS_PORT = 9003;

/** What both of a site's nodes set: the login server, a key from the control plane, no log upload, health. */
function nodeEnv(
  ctx: CatalogContext,
  hostname: string,
  metricsPort: number,
  extraArgs: readonly string[] = [],
): Record<string, EnvValue> {
  const server = loginServer(ctx.estate, ctx.controlPlane, ctx.domain);
  return {
    // A self-hosted tailnet: no log upload to Tailscale Inc.
    TS_NO_LOGS_NO_SUPPORT: "true",
    // The embedded DERP relay speaks what Headscale speaks: plain HTTP only where the login server does.
    ...(server.startsWith("http://") ? { TS_DEBUG_USE_DERP_HTTP: "1" } : {}),
    // Read on first login only (TS_AUTH_ONCE): the node key then lives in the state volume. Both nodes use the
    // site's reusable key, so both carry the site's tags.
    TS_AUTHKEY: { input: "meshAuthKey" },
    TS_AUTH_ONCE: "true",
    TS_HOSTNAME: hostname,
    TS_STATE_DIR: "/var/lib/tailscale",
    // The site's own resolver stays in charge; MagicDNS names resolve in the node.
    TS_ACCEPT_DNS: "false",
    // No --advertise-tags: the pre-auth key carries the site's tags (render/policy.ts nodeTags), and Headscale
    // refuses tags a node asks for itself unless an owner may grant them.
    TS_EXTRA_ARGS: [`--login-server=${server}`, ...extraArgs].join(" "),
    TS_ENABLE_HEALTH_CHECK: "true",
    TS_ENABLE_METRICS: "true",
    TS_LOCAL_ADDR_PORT: `0.0.0.0:${metricsPort}`,
  };
}

/**
 * Two tailnet nodes per site, apart because one must not do the other's job:
 * - `tailscale`, the site on the tailnet (`<site>.mesh.<domain>`): forwards the site's exporters (and the control
 *   plane's Loki) to their containers, admins' SSH to the host and their HTTPS to Traefik's tailnet entrypoint
 *   (render/headscale.ts renderServeConfig); advertises the site's routes. It opens no connection for anyone on
 *   the site: Traefik believes the PROXY headers it sends.
 * - `tailscale-egress`: the HTTP proxy through which Prometheus and promtail reach other sites. Any container on
 *   `metrics` may use it, so it must not be the node Traefik believes: it is not on the `ingress` network.
 */
export const tailscale: ServiceDef = {
  description:
    "This site's tailnet nodes: one forwards the site's exporters, admins' SSH and HTTPS in from the tailnet; one proxies scrapes and logs out",
  containers: (ctx) => ({
    main: {
      image: image("docker.io/tailscale/tailscale", "v1.102.5"),
      env: {
        ...nodeEnv(ctx, ctx.site, NODE_METRICS_PORT, ["--accept-routes"]),
        TS_USERSPACE: "false",
        TS_ROUTES: ctx.mesh.routes.join(","),
        TS_SERVE_CONFIG: "/config/serve.json",
        // A fixed WireGuard port, published: peers connect directly instead of through the DERP relay, and
        // keep connecting while Headscale (and the relay it embeds) is down.
        TS_TAILSCALED_EXTRA_ARGS: `--port=${NODE_WIREGUARD_PORT}`,
      },
      ports: [{ internal: NODE_WIREGUARD_PORT, external: NODE_WIREGUARD_PORT, protocol: "udp" }],
      // The node's identity: restored, the site rejoins as itself, without a new key.
      volumes: { state: files("/var/lib/tailscale") },
      files: { "/config/serve.json": renderServeConfig(ctx) },
      healthcheck: httpHealth(`http://127.0.0.1:${NODE_METRICS_PORT}/healthz`, "60s"),
      metrics: { port: NODE_METRICS_PORT },
      // A kernel TUN device in the container's own network namespace: the host's network is not touched.
      devices: ["/dev/net/tun"],
      capabilities: ["NET_ADMIN", "NET_RAW"],
      memoryMb: 128,
      cpus: 0.5,
      networks: ["metrics", "ingress"],
      // The one address Traefik believes PROXY headers from.
      addresses: { ingress: ingressAddresses(ctx.mesh.ingressSubnet).node },
    },
    egress: {
      image: image("docker.io/tailscale/tailscale", "v1.102.5"),
      env: {
        ...nodeEnv(ctx, `${ctx.site}-egress`, EGRESS_METRICS_PORT),
        // Userspace networking: its proxy dials the tailnet itself; no TUN device, no capabilities.
        TS_USERSPACE: "true",
        TS_OUTBOUND_HTTP_PROXY_LISTEN: `0.0.0.0:${MESH_PROXY_PORT}`,
      },
      volumes: { egress: files("/var/lib/tailscale") },
      healthcheck: httpHealth(`http://127.0.0.1:${EGRESS_METRICS_PORT}/healthz`, "60s"),
      // Scraped like the node (MeshNodeOffline): on the control plane, its loss darkens every other site.
      metrics: { port: EGRESS_METRICS_PORT },
      memoryMb: 96,
      cpus: 0.25,
      networks: ["metrics"],
    },
  }),
};

/** The tunnel's interface (render/wireguard.ts names the same). */
const WG_CONFIG = `/config/wg_confs/${WG_INTERFACE}.conf`;

export const wireguard: ServiceDef = {
  description:
    "WireGuard site-to-site tunnels to the estate's other tunnel sites: what must not depend on the control plane",
  containers: (ctx) => ({
    main: {
      image: image("lscr.io/linuxserver/wireguard", "1.0.20250521"),
      // The host's network: the tunnel routes between the host and the peers' private subnets.
      networkMode: "host",
      env: { TZ: ctx.timezone },
      // Holds the private key: a secret in state, made by the control plane's stack.
      secretFiles: { [WG_CONFIG]: { input: "wireguardConfig" } },
      // The kernel module where the host has it; /dev/net/tun for wireguard-go where it does not.
      binds: [{ hostPath: "/lib/modules", path: "/lib/modules" }],
      capabilities: ["NET_ADMIN", "SYS_MODULE"],
      devices: ["/dev/net/tun"],
      healthcheck: { test: ["CMD", "wg", "show", WG_INTERFACE], startPeriod: "60s" },
      memoryMb: 64,
      cpus: 0.25,
    },
  }),
};
