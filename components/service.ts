import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { inServiceSet } from "./aliases";
import { SITE_LABEL, seconds } from "../model/site";
import {
  LOG_OPTS,
  type ContainerModel,
  type ResolvedEnv,
  type ServiceModel,
  type SiteModel,
} from "../render/siteModel";

/** What every service of a site shares: made once by the `Site`, handed to each `Service`. */
export interface SiteResources {
  readonly site: SiteModel;
  /** Docker on the site's host. */
  readonly provider: docker.Provider;
  /** The site's Docker networks by name: services share them. */
  readonly networks: Readonly<Record<string, docker.Network>>;
  /** The site's images by reference: each is pulled once, whichever services run it. */
  readonly images: ReadonlyMap<string, docker.RemoteImage>;
  /** Reads a secret config key (`pulumi config set --secret <key>`) that an env override names. */
  readonly configSecret: (key: string) => pulumi.Output<string>;
  /** Secrets the stack supplies by name (`{ input: name }` in the catalog), e.g. the tailnet pre-auth key. */
  readonly inputs?: Readonly<Record<string, pulumi.Output<string>>>;
}

export interface ServiceArgs extends SiteResources {
  /** The catalog service, as the model placed it on the site. */
  readonly service: ServiceModel;
}

/** `NET_ADMIN` -> `CAP_NET_ADMIN`, the name Docker reads back. */
const dockerCapability = (c: string) => (c.startsWith("CAP_") ? c : `CAP_${c}`);

/**
 * One catalog service on a site: its generated secrets, its volumes (kept when it goes) and its containers, with
 * their uploads. Named `<site>-<service>`; its children `<site>-<container>`, `<site>-<volume>`,
 * `<site>-<service>-<secret>`: the names they always had.
 */

export class Service extends pulumi.ComponentResource {
  /** Its containers' names. */
  public readonly containerNames: pulumi.Output<string[]>;
  /** Its containers by name. */
  public readonly containers: Readonly<Record<string, docker.Container>>;

  constructor(name: string, args: ServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:service:Service", name, {}, opts);
    const { site, service, provider, networks, images } = args;
    const prefix = `${site.name}-`;
    if (name !== `${prefix}${service.name}`) {
      throw new pulumi.ResourceError(
        `a service's name is \`<site>-<service>\`: \`${prefix}${service.name}\``,
        this,
      );
    }
    const child = { parent: this, provider, aliases: [inServiceSet(site.name)] };

    const passwords = new Map<string, random.RandomPassword>();
    for (const secret of service.generatedSecrets) {
      // No special characters: these land in URLs, shell lines and config files.
      passwords.set(
        secret,
        new random.RandomPassword(
          `${name}-${secret}`,
          { length: 32, special: false },
          // Databases keep the first password in their retained volumes: losing it locks the apps out.
          { parent: this, aliases: child.aliases, protect: site.protect },
        ),
      );
    }

    const volumes = new Map<string, docker.Volume>();
    for (const c of service.containers) {
      for (const v of c.ownedVolumes) {
        // State outlives its container: a replace or a destroy never takes the data with it.
        volumes.set(
          v,
          new docker.Volume(
            `${prefix}${v}`,
            { name: v, labels: [{ label: SITE_LABEL, value: site.name }] },
            { ...child, retainOnDelete: true, protect: site.protect },
          ),
        );
      }
    }

    const holdsSecret = (c: ContainerModel) => Object.values(c.env).some((v) => typeof v !== "string");
    const holdsSecretFile = (c: ContainerModel) => Object.keys(c.secretFiles).length > 0;
    const value = (c: ContainerModel, v: ResolvedEnv): pulumi.Input<string> => {
      if (typeof v === "string") return v;
      if ("generated" in v) return passwords.get(v.generated)!.result;
      if ("config" in v) return args.configSecret(v.config);
      const input = args.inputs?.[v.input];
      if (!input) throw new pulumi.ResourceError(`\`${c.name}\` needs the input \`${v.input}\``, this);
      return input;
    };
    const envOf = (c: ContainerModel): pulumi.Output<string[]> => {
      const keys = Object.keys(c.env).sort();
      const envs = pulumi.all(keys.map((k) => pulumi.interpolate`${k}=${value(c, c.env[k]!)}`));
      // Explicit, not only inherited: one secret value makes the whole list secret in state and outputs.
      return holdsSecret(c) ? pulumi.secret(envs) : envs;
    };

    const containers: Record<string, docker.Container> = {};
    // The catalog lists dependencies before dependents within a service; resolve lazily to stay order-free.
    const build = (c: ContainerModel): docker.Container => {
      const done = containers[c.name];
      if (done) return done;
      const deps = c.dependsOn.map((d) => build(service.containers.find((x) => x.name === d)!));
      const hc = c.healthcheck;
      containers[c.name] = new docker.Container(
        `${prefix}${c.name}`,
        {
          name: c.name,
          image: images.get(c.image)!.imageId,
          ...(c.command ? { command: [...c.command] } : {}),
          ...(c.entrypoint ? { entrypoints: [...c.entrypoint] } : {}),
          ...(c.user ? { user: c.user } : {}),
          envs: envOf(c),
          ports: c.ports.map((p) => ({
            internal: p.internal,
            external: p.external,
            protocol: p.protocol,
            ip: p.ip,
          })),
          volumes: [
            ...c.mounts.map((m) => ({
              volumeName: m.volume,
              containerPath: m.path,
              ...(m.readOnly ? { readOnly: true } : {}),
            })),
            ...c.binds.map((b) => ({ hostPath: b.hostPath, containerPath: b.path, readOnly: b.readOnly })),
          ],
          uploads: [
            ...Object.entries(c.files).map(([file, content]) => ({ file, content })),
            // Secret files (Alertmanager's `*_file` credentials, a tunnel's config): secret in state like the env.
            ...Object.entries(c.secretFiles).map(([file, v]) => ({
              file,
              content: pulumi.secret(value(c, v)),
            })),
          ],
          ...(hc
            ? {
                healthcheck: {
                  tests: [...hc.test],
                  interval: hc.interval,
                  timeout: hc.timeout,
                  retries: hc.retries,
                  startPeriod: hc.startPeriod,
                },
                // `up` returns only when the container is healthy, so a broken service fails the deployment.
                wait: true,
                waitTimeout: seconds(hc.startPeriod) + hc.retries * seconds(hc.interval) + 30,
              }
            : {}),
          restart: c.restart,
          mustRun: true,
          memory: c.memoryMb,
          // No swap: a container at its limit should be killed and restarted, not thrash the host.
          memorySwap: c.memoryMb,
          // Docker reports whole CPUs as "1.0": say it the same way, or every preview shows a diff.
          cpus: Number.isInteger(c.cpus) ? c.cpus.toFixed(1) : String(c.cpus),
          logDriver: "json-file",
          logOpts: { ...LOG_OPTS },
          ...(c.networkMode
            ? { networkMode: c.networkMode }
            : {
                networksAdvanced: c.networks.map((n) => {
                  const address = c.addresses[n];
                  return { name: networks[n]!.name, ...(address ? { ipv4Address: address } : {}) };
                }),
              }),
          // As Docker reports them (`CAP_NET_ADMIN`): in the catalog's short form, every refresh would see drift.
          ...(c.capabilities.length ? { capabilities: { adds: c.capabilities.map(dockerCapability) } } : {}),
          ...(c.devices.length ? { devices: c.devices.map((hostPath) => ({ hostPath })) } : {}),
          labels: Object.entries(c.labels).map(([label, value]) => ({ label, value })),
        },
        {
          ...child,
          dependsOn: [...deps, ...c.mounts.map((m) => volumes.get(m.volume)!)],
          // Names are fixed (Traefik and peers address containers by name): the old one must go first.
          deleteBeforeReplace: true,
          // The provider takes a new healthcheck as an update, which Docker cannot apply to a container: every
          // refresh would find the old one again. A new container is how it changes.
          replaceOnChanges: ["healthcheck"],
          ...(holdsSecret(c) || holdsSecretFile(c)
            ? {
                additionalSecretOutputs: [
                  ...(holdsSecret(c) ? ["envs"] : []),
                  ...(holdsSecretFile(c) ? ["uploads"] : []),
                ],
              }
            : {}),
        },
      );
      return containers[c.name]!;
    };
    service.containers.forEach(build);
    this.containers = containers;
    this.containerNames = pulumi.output(service.containers.map((c) => c.name));
    this.registerOutputs({ containerNames: this.containerNames });
  }
}

/**
 * Each of `services` as a `Service` under `parent` (the site, or the part of its tree the catalog puts it in): its
 * containers by name.
 */
export function deployServices(
  parent: pulumi.Resource,
  services: readonly ServiceModel[],
  resources: SiteResources,
): Record<string, docker.Container> {
  const containers: Record<string, docker.Container> = {};
  for (const service of services) {
    const s = new Service(`${resources.site.name}-${service.name}`, { ...resources, service }, { parent });
    Object.assign(containers, s.containers);
  }
  return containers;
}
