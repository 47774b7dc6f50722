import { resolverAddress } from "../render/dns";
import { loginServer, renderServeConfig } from "../render/headscale";
import { ingressAddresses } from "../render/traefik";
import { WG_INTERFACE } from "../render/wireguard";
import { MESH_PROXY_PORT, egressConsumers, egressNetwork, egressNode } from "../render/policy";
import type { CatalogContext } from "../render/siteModel";
import { files, httpHealth, image } from "./helpers";
import type { ContainerDef, EnvValue, ServiceDef } from "./types";

/** The tailnet: Tailscale nodes on every site, joined to the control plane's Headscale. */

/** The node's WireGuard (disco) port, Tailscale's default. */
export const NODE_WIREGUARD_PORT = 41641;
/** The tailnet's port for the node's own health and metrics (containerboot). */
export const NODE_METRICS_PORT = 9002;
/** The egress nodes', from here up in their consumers' order (metrics ports are unique per site). */
const EGRESS_METRICS_PORT = 9003;

/** The input a node's pre-auth key comes in by (the stack supplies one per node: stacks/site.ts). */
export const authKeyInput = (node: string) => (node === "tailscale" ? "meshAuthKey" : `meshAuthKey:${node}`);

/** What every node of a site sets: the login server, its own key from the control plane, no log upload, health. */
function nodeEnv(
  ctx: CatalogContext,
  node: string,
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
    // Read on first login only (TS_AUTH_ONCE): the node key then lives in the state volume. Each node has a key of
    // its own, whose tags are its identity: the site's for the site's node, one consumer's for an egress node.
    TS_AUTHKEY: { input: authKeyInput(node) },
    TS_AUTH_ONCE: "true",
    TS_HOSTNAME: hostname,
    TS_STATE_DIR: "/var/lib/tailscale",
    // The site's own resolver stays in charge; MagicDNS names resolve in the node.
    TS_ACCEPT_DNS: "false",
    // No --advertise-tags: the pre-auth key carries the node's tags (render/headscale.ts meshIdentities), and Headscale
    // refuses tags a node asks for itself unless an owner may grant them.
    TS_EXTRA_ARGS: [`--login-server=${server}`, ...extraArgs].join(" "),
    TS_ENABLE_HEALTH_CHECK: "true",
    TS_ENABLE_METRICS: "true",
    TS_LOCAL_ADDR_PORT: `0.0.0.0:${metricsPort}`,
  };
}

/**
 * A site's tailnet nodes, apart because one must not do another's job:
 * - `tailscale`, the site on the tailnet (`<site>.mesh.<domain>`): forwards the site's exporters (and on the
 *   control plane Loki's port, to Traefik) to their containers, admins' SSH to the host and their HTTPS to
 *   Traefik's tailnet entrypoint (render/headscale.ts renderServeConfig); advertises the site's routes. It opens no
 *   connection for anyone on the site: Traefik believes the PROXY headers it sends. It joins each egress network
 *   only to forward that egress node's metrics.
 * - `tailscale-egress-<service>`, one per flow consumer on the site (render/policy.ts: Prometheus, promtail, the
 *   backup job, the stack file's `mesh.flows[].service`): the HTTP proxy through which that one consumer reaches
 *   other sites, on a network it shares with that consumer alone, joined with a key whose one tag is the
 *   consumer's identity (`tag:<site>-<service>`): the policy gives it that consumer's flows and nothing else.
 */
export const tailscale: ServiceDef = {
  description:
    "This site's tailnet nodes: one forwards the site's exporters, admins' SSH and HTTPS in from the tailnet; one per flow consumer proxies that consumer out",
  part: "mesh-node",
  containers: (ctx) => {
    const consumers = egressConsumers(ctx.estate, ctx.site);
    const egress = Object.fromEntries(
      consumers.map((service, i): [string, ContainerDef] => {
        const node = egressNode(service);
        const metricsPort = EGRESS_METRICS_PORT + i;
        return [
          `egress-${service}`,
          {
            image: image("docker.io/tailscale/tailscale", "v1.102.5"),
            env: {
              ...nodeEnv(ctx, node, `${ctx.site}-egress-${service}`, metricsPort),
              // Userspace networking: its proxy dials the tailnet itself; no TUN device, no capabilities.
              TS_USERSPACE: "true",
              TS_OUTBOUND_HTTP_PROXY_LISTEN: `0.0.0.0:${MESH_PROXY_PORT}`,
            },
            volumes: { state: files("/var/lib/tailscale") },
            healthcheck: httpHealth(`http://127.0.0.1:${metricsPort}/healthz`, "60s"),
            // Scraped through the site's node (MeshNodeOffline): on the control plane, its loss darkens every
            // other site's metrics.
            metrics: { port: metricsPort },
            memoryMb: 96,
            cpus: 0.25,
            // Its consumer's network, and no other (not the service's own, with the other egress nodes): nothing
            // else on the site reaches its proxy.
            networks: [egressNetwork(service)],
            serviceNetwork: false,
          },
        ];
      }),
    );
    const resolver = resolverAddress({ services: ctx.siteServices, mesh: ctx.mesh });
    const main: ContainerDef = {
      image: image("docker.io/tailscale/tailscale", "v1.102.5"),
      env: {
        ...nodeEnv(ctx, "tailscale", ctx.site, NODE_METRICS_PORT, ["--accept-routes"]),
        TS_USERSPACE: "false",
        // The site's routes, and its Pi-hole's address where it answers the tailnet (render/dns.ts).
        TS_ROUTES: [...ctx.mesh.routes, ...(resolver ? [`${resolver}/32`] : [])].join(","),
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
      // The egress networks: to forward their nodes' metrics (it opens no connection for their consumers).
      networks: ["metrics", "ingress", ...consumers.map(egressNetwork)],
      // Not the service's own network, which would put it beside the egress nodes for no reason.
      serviceNetwork: false,
      // The one address Traefik believes PROXY headers from.
      addresses: { ingress: ingressAddresses(ctx.mesh.ingressSubnet).node },
    };
    return { main, ...egress };
  },
};

/** The tunnel's interface (render/wireguard.ts names the same). */
const WG_CONFIG = `/config/wg_confs/${WG_INTERFACE}.conf`;

export const wireguard: ServiceDef = {
  description:
    "WireGuard site-to-site tunnels to the estate's other tunnel sites: what must not depend on the control plane",
  part: "mesh-node",
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
