import { LOG_OPTS, networkName, type ResolvedEnv, type SiteModel } from "./siteModel";
import { networkSubnet } from "./traefik";
import { toYaml } from "./yaml";

/** The `${VAR}` a compose file reads a secret from: the value goes in the environment or `.env`, never the file. */
export function composeSecretVar(service: string, v: Exclude<ResolvedEnv, string>): string {
  const name =
    "generated" in v
      ? `${service}_${v.generated}`
      : "config" in v
        ? `config_${v.config}`
        : `input_${v.input}`;
  return `QCLOUD_${name.replace(/[^A-Za-z0-9]/g, "_").toUpperCase()}`;
}

/**
 * A Docker Compose file (format 2.4, which docker-compose 1.x and 2.x both take) for the same containers the
 * program deploys: for the converge benchmark and for operators who want to compare. Config files are bind-mounted
 * from `./files/<container>/<path>` (render them with `npm run render`); secrets come from `${QCLOUD_...}`, secret
 * files from `./secrets/<container>/<path>`.
 */
export function renderCompose(model: SiteModel): string {
  // Compose interpolates `$` in every string: `$$` keeps a literal one for the container's shell.
  const esc = (x: string) => x.replace(/\$/g, "$$$$");
  const services: Record<string, unknown> = {};
  const probed = new Set(
    model.services.flatMap((s) => s.containers.filter((c) => c.healthcheck).map((c) => c.name)),
  );
  const volumes: Record<string, unknown> = {};
  for (const s of model.services) {
    for (const c of s.containers) {
      for (const v of c.ownedVolumes) volumes[v] = { name: v };
      const hc = c.healthcheck;
      services[c.name] = {
        container_name: c.name,
        image: c.image,
        ...(c.entrypoint ? { entrypoint: c.entrypoint.map(esc) } : {}),
        ...(c.command ? { command: c.command.map(esc) } : {}),
        ...(c.user ? { user: c.user } : {}),
        environment: Object.fromEntries(
          Object.entries(c.env)
            .sort(([a], [b]) => a.localeCompare(b))
            // `$$` keeps a literal `$` from compose's interpolation.
            .map(([k, v]) => [
              k,
              typeof v === "string" ? v.replace(/\$/g, "$$$$") : `\${${composeSecretVar(s.name, v)}}`,
            ]),
        ),
        ports: c.ports.map((p) => `${p.ip}:${p.external}:${p.internal}/${p.protocol}`),
        volumes: [
          ...c.mounts.map((m) => `${m.volume}:${m.path}${m.readOnly ? ":ro" : ""}`),
          ...c.binds.map((b) => `${b.hostPath}:${b.path}${b.readOnly ? ":ro" : ""}`),
          ...Object.keys(c.files).map((f) => `./files/${c.name}${f}:${f}:ro`),
          // Secret files are never rendered: the operator puts each value at this path beside the compose file.
          ...Object.keys(c.secretFiles).map((f) => `./secrets/${c.name}${f}:${f}:ro`),
        ],
        ...(hc
          ? {
              healthcheck: {
                test: hc.test.map(esc),
                interval: hc.interval,
                timeout: hc.timeout,
                retries: hc.retries,
                start_period: hc.startPeriod,
              },
            }
          : {}),
        restart: c.restart,
        mem_limit: `${c.memoryMb}m`,
        memswap_limit: `${c.memoryMb}m`,
        cpus: c.cpus,
        logging: { driver: "json-file", options: { ...LOG_OPTS } },
        ...(c.networkMode
          ? { network_mode: c.networkMode }
          : Object.keys(c.addresses).length > 0
            ? {
                networks: Object.fromEntries(
                  c.networks.map((n) => {
                    const address = c.addresses[n];
                    return [networkName(n), address ? { ipv4_address: address } : {}];
                  }),
                ),
              }
            : { networks: c.networks.map(networkName) }),
        ...(c.capabilities.length ? { cap_add: [...c.capabilities] } : {}),
        ...(c.devices.length ? { devices: [...c.devices] } : {}),
        labels: { ...c.labels, "cloud.qui3tly.managed-by": "compose" },
        // Like the program: a dependent starts once its dependencies are healthy (or started, without a probe).
        ...(c.dependsOn.length
          ? {
              depends_on: Object.fromEntries(
                c.dependsOn.map((d) => [
                  d,
                  { condition: probed.has(d) ? "service_healthy" : "service_started" },
                ]),
              ),
            }
          : {}),
      };
    }
  }
  return toYaml({
    version: "2.4",
    services,
    networks: Object.fromEntries(
      model.networks.map((n) => {
        const fixed = networkSubnet(model, n);
        return [networkName(n), { name: networkName(n), ...(fixed ? { ipam: { config: [fixed] } } : {}) }];
      }),
    ),
    volumes,
  });
}
