import type { CatalogContext } from "../catalog/types";
import { TAILNET_RANGES } from "./traefik";
import { toYaml } from "./yaml";

/** The tailnet's MagicDNS base domain: every site is `<site>.<this>`. */
export const meshDomain = (domain: string) => `mesh.${domain}`;

/** Headscale's config: the embedded DERP relay and MagicDNS, no dependence on Tailscale's servers. */
export function renderHeadscaleConfig(ctx: Pick<CatalogContext, "domain" | "hosts">): string {
  return toYaml({
    server_url: `https://${ctx.hosts.api}`,
    listen_addr: "0.0.0.0:8080",
    metrics_listen_addr: "0.0.0.0:9091",
    grpc_listen_addr: "127.0.0.1:50443",
    grpc_allow_insecure: false,
    noise: { private_key_path: "/var/lib/headscale/noise_private.key" },
    prefixes: { v4: TAILNET_RANGES[0], v6: TAILNET_RANGES[1], allocation: "sequential" },
    derp: {
      server: {
        enabled: true,
        region_id: 999,
        region_code: "qcloud",
        region_name: "qui3tly.cloud embedded DERP",
        stun_listen_addr: "0.0.0.0:3478",
        private_key_path: "/var/lib/headscale/derp_server_private.key",
        automatically_add_embedded_derp_region: true,
      },
      urls: [],
      paths: [],
      auto_update_enabled: false,
    },
    disable_check_updates: true,
    ephemeral_node_inactivity_timeout: "30m",
    database: { type: "sqlite", sqlite: { path: "/var/lib/headscale/db.sqlite", write_ahead_log: true } },
    log: { level: "info", format: "text" },
    dns: {
      magic_dns: true,
      base_domain: meshDomain(ctx.domain),
      nameservers: { global: ["1.1.1.1", "9.9.9.9"] },
    },
    // /var/run/headscale does not exist in the image; the data volume does.
    unix_socket: "/var/lib/headscale/headscale.sock",
    unix_socket_permission: "0770",
  });
}
