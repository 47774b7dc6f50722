import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { hostedRepositories, meshHost } from "../model/estateSite";
import { checkSealKey, sealRecipients } from "../model/seal";
import { TAILNET_SERVICES } from "../model/site";
import {
  imageKey,
  networkName,
  pulls,
  type ServicePart,
  type ServiceModel,
  type SiteModel,
} from "../render/siteModel";
import { failoverHosts } from "../render/dns";
import { networkSubnet } from "../render/traefik";
import { authKeyInput } from "../catalog/mesh";
import { renderBackupSecrets, repositoryUrl } from "../render/backup";
import { loginServer, meshIdentities } from "../render/headscale";
import { logShippers } from "../render/monitoring";
import { renderWireguardConfig, tunnelSites } from "../render/wireguard";
import { BackupKeys, Backups } from "./backup";
import { Host, type SshClientFiles } from "./host";
import { FailoverRecords } from "./failover";
import { Sync } from "./sync";
import { MeshNode, Tailnet } from "./mesh";
import { Monitoring } from "./monitoring";
import { SealedBundles, openBundle, siteBundle, type SiteBundle } from "./sealedBundles";
import { WAS_ROOT, WAS_SERVICE_SET } from "./aliases";
import { deployServices, type SiteResources } from "./service";

export interface SiteSecrets {
  /** The SSH private key, when set in config; otherwise the SSH agent is used. */
  readonly sshPrivateKey?: pulumi.Output<string>;
  /** The files Docker's ssh client reads (key, pinned host key). */
  readonly sshFiles?: SshClientFiles;
  /** Reads `<project>:<key>` as a secret. */
  readonly configSecret: (key: string) => pulumi.Output<string>;
  /**
   * The site's sealing private key (`qui3tly-cloud:sealKey`, decrypted), on every site but a control plane: it
   * opens what the control plane sealed for this site alone. Checked against the stack file before any resource;
   * used only inside secret outputs.
   */
  readonly sealKey?: string;
  /**
   * Reads an entry of the control-plane stack's `controlPlane` output, on every site but a control plane
   * (stacks/site.ts: a `StackReference` to `<organization>/<project>/<control plane>`).
   */
  readonly controlPlaneOutput?: (name: string) => pulumi.Output<unknown>;
}

/**
 * What the control-plane stack exports for the other sites of its tailnet. Every site's stack reads all of it
 * (a `StackReference` keeps the whole outputs in its state): so no key in the clear, only each site's bundle
 * sealed to that site's key, and public keys.
 */
export interface ControlPlaneOutputs {
  /** Each site's `SiteBundle` (its keys and passwords) sealed to its `mesh.sealPublicKey`, by site: secret. */
  readonly sealed: pulumi.Output<Record<string, string>>;
  readonly wireguardPublicKeys: pulumi.Output<Record<string, string>>;
}

export interface SiteOutputs {
  readonly site: string;
  readonly role: string;
  readonly hostAddress: pulumi.Output<string>;
  /** Container names by service. */
  readonly containers: pulumi.Output<Record<string, string[]>>;
  /** `https://...` by `<service>-<route>`. */
  readonly urls: Record<string, string>;
  readonly counts: { readonly services: number; readonly containers: number };
  readonly mesh: {
    /** Its MagicDNS name. */
    readonly name: string;
    /** Its tailnet IPv4 address, once joined. */
    readonly address: pulumi.Output<string>;
    readonly loginServer: string;
    /**
     * Its `wg-quick` config, when it has a tunnel: secret (it holds the private key). Not on a control plane, whose
     * outputs every site reads.
     */
    readonly wireguardConfig?: pulumi.Output<string>;
  };
  /** The control plane's exports for its sites. */
  readonly controlPlane?: ControlPlaneOutputs;
  /**
   * Where and when the site is backed up; the repository password is secret: keep a copy offline (README). A
   * control plane exports no password: every site reads its outputs.
   */
  readonly backup?: {
    readonly target: string;
    readonly repository: string;
    readonly schedule: string;
    readonly restoreTest: string;
    readonly password?: pulumi.Output<string>;
  };
}

export interface SiteArgs extends SiteSecrets {
  /** The site, resolved from its stack file and the estate's. */
  readonly model: SiteModel;
}

/** The services of a site in one part of its tree, in the model's order. */
const partOf = (model: SiteModel, part: ServicePart): ServiceModel[] =>
  model.services.filter((s) => s.part === part);

/**
 * One site, the root of its stack: its `Host`; the networks and images its services share; the catalog's services,
 * each a `Service`, under the part of the tree the catalog gives it (`Tailnet` on the control plane, `MeshNode`,
 * `Monitoring`, or the site itself); the keys a control plane makes and seals for every site; its `Backups`.
 *
 * It was the stack's `ServiceSet` (aliased), and what the stack held besides it is aliased from the stack's root:
 * an existing stack upgrades with no replacement.
 */
export class Site extends pulumi.ComponentResource {
  public readonly host: Host;
  /** The backup job, where the site backs up or keeps a repository. */
  public readonly backups?: Backups;
  /** Its secondaries' sync job, where it runs any (`services.<name>.follows`). */
  public readonly sync?: Sync;
  /** Every container of the site, by name. */
  public readonly containers: Readonly<Record<string, docker.Container>>;
  /** What the stack exports. */
  public readonly outputs: SiteOutputs;

  constructor(name: string, args: SiteArgs, opts?: pulumi.ComponentResourceOptions) {
    const { model } = args;
    const isControlPlane = model.controlPlane === model.name;
    // Before any resource, this one included: the control plane needs every site's public key, a site its own
    // private key.
    const recipients = isControlPlane ? sealRecipients(model.estate, model.name) : {};
    checkSealKey(model, args.sealKey, true);
    super("qcloud:site:Site", name, {}, { ...opts, aliases: [...(opts?.aliases ?? []), WAS_SERVICE_SET] });
    /** The stack's own children before the tree had a `Site`. */
    const wasRoot = { parent: this, aliases: [WAS_ROOT] };

    this.host = new Host(
      name,
      {
        host: model.host,
        protect: model.protect,
        ports: [
          ...model.services.flatMap((s) => s.containers.flatMap((c) => c.ports)),
          // The tunnel listens on the host's network: no published port says so.
          ...(model.mesh.wireguard
            ? [
                {
                  internal: model.mesh.wireguard.port,
                  external: model.mesh.wireguard.port,
                  protocol: "udp" as const,
                  ip: "0.0.0.0",
                },
              ]
            : []),
        ],
        ...(args.sshPrivateKey ? { privateKey: args.sshPrivateKey } : {}),
        ...(args.sshFiles ? { sshFiles: args.sshFiles } : {}),
      },
      wasRoot,
    );
    const host = this.host;
    const provider = host.provider;
    // Shared by the services: made once here. Images are kept on destroy: the next up, or a rollback, pulls nothing.
    const networks = Object.fromEntries(
      model.networks.map((n) => {
        const fixed = networkSubnet(model, n);
        return [
          n,
          new docker.Network(
            `${name}-${n}`,
            { name: networkName(n), ...(fixed ? { ipamConfigs: [fixed] } : {}) },
            { parent: this, provider },
          ),
        ];
      }),
    );
    const images = new Map<string, docker.RemoteImage>();
    const refs = model.services.flatMap((s) => s.containers.map((c) => c.image));
    for (const ref of [...new Set(refs)].sort()) {
      images.set(
        ref,
        new docker.RemoteImage(
          `${name}-${imageKey(ref)}`,
          { name: ref, keepLocally: true },
          { parent: this, provider },
        ),
      );
    }
    const resources = (inputs: Record<string, pulumi.Output<string>>): SiteResources => ({
      site: model,
      provider,
      networks,
      images,
      configSecret: args.configSecret,
      inputs,
    });

    const members = model.estate.sites.filter((s) => s.controlPlane === model.controlPlane);
    const tunnels = tunnelSites(model.estate, model.controlPlane).map((s) => s.name);
    const shippers = logShippers(model.estate, model.controlPlane);
    const backup = model.backup;
    /** A field of this site's bundle, or the error that says which stack to run first. */
    const need = <T>(value: T | undefined, what: string): T => {
      if (value === undefined) {
        throw new Error(
          `site \`${model.name}\` has no ${what} in \`${model.controlPlane}\`'s stack yet: run \`pulumi up --stack ${model.controlPlane}\` first (it makes one for every stack file)`,
        );
      }
      return value;
    };

    // The control plane makes every site's keys; the others open the bundle it sealed for them.
    let tailnet: Tailnet | undefined;
    let monitoring: Monitoring;
    let backupKeys: BackupKeys | undefined;
    let wgKeys: {
      privateKeys: pulumi.Output<Record<string, string>>;
      publicKeys: pulumi.Output<Record<string, string>>;
    };
    /** This site's own keys and the passwords of the repositories it keeps: secret. */
    let bundle: pulumi.Output<SiteBundle>;
    /** Its nodes' pre-auth keys, by node. */
    let authKeys: pulumi.Output<Record<string, string>>;
    if (isControlPlane) {
      tailnet = new Tailnet(
        name,
        {
          resources: resources({}),
          // The model names it on every control plane: a stack file without Headscale there is refused (model/site.ts).
          services: partOf(model, "tailnet"),
          headscale: model.tailnet.headscale!,
          connection: host.connection,
          identities: Object.fromEntries(members.map((m) => [m.name, meshIdentities(model.estate, m)])),
          tunnels,
        },
        { parent: this },
      );
      wgKeys = { privateKeys: tailnet.wireguardPrivateKeys, publicKeys: tailnet.wireguardPublicKeys };
      monitoring = new Monitoring(
        name,
        { resources: resources({}), services: partOf(model, "monitoring"), logShippers: shippers },
        { parent: this },
      );
      backupKeys = new BackupKeys(
        name,
        {
          sites: members.filter((s) => s.backupTarget !== undefined).map((s) => s.name),
          protect: model.protect,
        },
        wasRoot,
      );
      const logKeys = monitoring.logKeys!;
      bundle = pulumi.secret(
        pulumi
          .all([wgKeys.privateKeys, backupKeys.credentials, backupKeys.htpasswd, logKeys.passwords])
          .apply(([wireguardPrivateKeys, backupCredentials, backupHtpasswd, logPasswords]) =>
            siteBundle(
              model.name,
              backup.hosted.map((x) => x.site),
              // Its own pre-auth keys come from its Headscale.
              { meshAuthKeys: {}, wireguardPrivateKeys, backupCredentials, backupHtpasswd, logPasswords },
            ),
          ),
      );
      authKeys = keyOf(model.name, tailnet.authKeys, model.controlPlane);
    } else {
      const read = args.controlPlaneOutput;
      if (!read)
        throw new pulumi.ResourceError(
          `site \`${name}\` reads its control plane's outputs: none given`,
          this,
        );
      const sealKey = args.sealKey!;
      bundle = pulumi.secret(
        read("sealed").apply((sealed) =>
          openBundle(sealed as Record<string, string> | undefined, model.name, model.controlPlane, sealKey),
        ),
      );
      wgKeys = {
        privateKeys: pulumi.secret(
          bundle.apply((b): Record<string, string> =>
            b.wireguardPrivateKey === undefined ? {} : { [model.name]: b.wireguardPrivateKey },
          ),
        ),
        publicKeys: read("wireguardPublicKeys") as pulumi.Output<Record<string, string>>,
      };
      monitoring = new Monitoring(
        name,
        {
          resources: resources(
            shippers.includes(model.name)
              ? { lokiPassword: pulumi.secret(bundle.apply((b) => need(b.logPassword, "log push password"))) }
              : {},
          ),
          services: partOf(model, "monitoring"),
        },
        { parent: this },
      );
      authKeys = bundle.apply((b) => need(b.meshAuthKeys, "pre-auth keys"));
    }

    // Each of the site's nodes joins with a key of its own: the site's node, and one egress node per flow consumer.
    const nodes = (model.services.find((s) => s.name === TAILNET_SERVICES.node)?.containers ?? []).map(
      (c) => c.name,
    );
    const wireguardConfig = tunnels.includes(model.name)
      ? pulumi.secret(
          pulumi.all([wgKeys.privateKeys, wgKeys.publicKeys]).apply(([priv, publicKeys]) =>
            renderWireguardConfig(model.estate, model.name, {
              privateKey: controlPlaneEntry(priv, model.name, model.controlPlane),
              publicKeys,
            }),
          ),
        )
      : undefined;
    const mesh = new MeshNode(
      name,
      {
        resources: resources({
          ...Object.fromEntries(
            nodes.map((node) => [
              authKeyInput(node),
              pulumi.secret(authKeys.apply((k) => nodeKey(k, model.name, node, model.controlPlane))),
            ]),
          ),
          ...(wireguardConfig ? { wireguardConfig } : {}),
        }),
        services: partOf(model, "mesh-node"),
        ...(model.tailnet.node === undefined ? {} : { node: model.tailnet.node }),
        connection: host.connection,
      },
      { parent: this },
    );

    const logKeys = monitoring.logKeys;
    const own = deployServices(
      this,
      // A services site that runs a tailnet's control service has no tailnet of its own: it sits with the others.
      [...partOf(model, "site"), ...(tailnet ? [] : partOf(model, "tailnet"))],
      resources({
        // Traefik's logs users (the control plane).
        ...(logKeys && shippers.length > 0
          ? {
              logsUsers: pulumi.secret(logKeys.users.apply((u) => shippers.map((x) => `${u[x]}\n`).join(""))),
            }
          : {}),
        // The REST server's users: the sites whose repositories this site keeps.
        ...(backup.hosted.length > 0
          ? {
              backupHtpasswd: pulumi.secret(
                bundle.apply((b) =>
                  backup.hosted
                    .map(
                      (x) => `${need(b.hosted?.[x.site], `backup repository of \`${x.site}\``).htpasswd}\n`,
                    )
                    .join(""),
                ),
              ),
            }
          : {}),
      }),
    );
    this.containers = {
      ...(tailnet?.containers ?? {}),
      ...monitoring.containers,
      ...mesh.containers,
      ...own,
    };

    // Peers' UDP flows to the ports published beyond loopback, after their containers start: on Docker's DNAT.
    const udp = model.services
      .flatMap((s) => s.containers)
      .filter((c) => this.containers[c.name])
      .map((c) => ({
        container: this.containers[c.name]!,
        publisher: {
          container: c.name,
          ports: c.ports.filter((p) => p.protocol === "udp" && p.ip !== "127.0.0.1").map((p) => p.external),
        },
      }))
      .filter((x) => x.publisher.ports.length > 0);
    if (udp.length > 0) host.dropStaleUdpFlows(udp);

    let controlPlane: ControlPlaneOutputs | undefined;
    if (tailnet) {
      // Each site's bundle, cut from every site's keys and sealed to that site's key alone.
      const keys = pulumi
        .all([
          tailnet.authKeys,
          wgKeys.privateKeys,
          backupKeys!.credentials,
          backupKeys!.htpasswd,
          logKeys!.passwords,
        ])
        .apply(([meshAuthKeys, wireguardPrivateKeys, backupCredentials, backupHtpasswd, logPasswords]) => ({
          meshAuthKeys,
          wireguardPrivateKeys,
          backupCredentials,
          backupHtpasswd,
          logPasswords,
        }));
      const sealed = new SealedBundles(
        name,
        {
          recipients,
          bundles: Object.fromEntries(
            Object.keys(recipients).map((site) => [
              site,
              keys.apply((k) =>
                siteBundle(
                  site,
                  hostedRepositories(model.estate, site).map((s) => s.name),
                  k,
                ),
              ),
            ]),
          ),
        },
        wasRoot,
      );
      controlPlane = { sealed: sealed.sealed, wireguardPublicKeys: wgKeys.publicKeys };
    }

    // Routes it serves with other sites: its Pi-hole sends tailnet clients to its own node (render/dns.ts).
    const failover = failoverHosts(model.routes);
    const pihole = model.services.find((s) => s.name === "pihole")?.containers.find((c) => c.key === "main");
    if (failover.length > 0 && pihole && this.containers[pihole.name]) {
      new FailoverRecords(
        name,
        {
          pihole: this.containers[pihole.name]!,
          piholeName: pihole.name,
          address: mesh.address,
          hosts: failover,
          connection: host.connection,
        },
        { parent: this },
      );
    }

    if (model.follows.some(pulls)) {
      // It runs `docker exec` in the secondaries, which reach their primaries through their egress nodes.
      this.sync = new Sync(
        name,
        { site: model, connection: host.connection },
        { parent: this, dependsOn: [host.ready, ...Object.values(this.containers)] },
      );
    }

    if (backup.target !== undefined || backup.hosted.length > 0) {
      const target = backup.target;
      this.backups = new Backups(
        name,
        {
          site: model,
          connection: host.connection,
          provider,
          secrets: pulumi.secret(
            bundle.apply((b) =>
              renderBackupSecrets({
                ...(target === undefined
                  ? {}
                  : {
                      repository: repositoryUrl(
                        model.estate,
                        model.name,
                        target,
                        need(b.backup, "backup credentials").rest,
                      ),
                      password: need(b.backup, "backup credentials").repository,
                    }),
                ...Object.fromEntries(
                  backup.hosted.map((x) => [
                    `hosted/${x.site}`,
                    need(b.hosted?.[x.site], `backup repository of \`${x.site}\``).repository,
                  ]),
                ),
              }),
            ),
          ),
        },
        // Its restore and restore test stop and start the containers; the tunnel out is the egress node.
        { ...wasRoot, dependsOn: [host.ready, ...Object.values(this.containers)] },
      );
    }

    this.outputs = {
      site: model.name,
      role: model.role,
      hostAddress: host.address,
      containers: pulumi.output(
        Object.fromEntries(model.services.map((s) => [s.name, s.containers.map((c) => c.name)])),
      ),
      urls: Object.fromEntries(
        model.routes.map((r) => [`${r.service}-${r.name}`, `https://${r.host}${r.pathPrefix ?? "/"}`]),
      ),
      counts: {
        services: model.services.length,
        containers: model.services.reduce((n, s) => n + s.containers.length, 0),
      },
      mesh: {
        name: meshHost(model.estate, model, model.name),
        address: mesh.address,
        loginServer: loginServer(model.estate, model.controlPlane, model.domain),
        // The control plane's outputs are read by every site: its own private key stays in its state.
        ...(wireguardConfig && !isControlPlane ? { wireguardConfig } : {}),
      },
      ...(controlPlane ? { controlPlane } : {}),
      ...(backup.target === undefined
        ? {}
        : {
            backup: {
              target: backup.target,
              repository: repositoryUrl(model.estate, model.name, backup.target),
              schedule: backup.schedule,
              restoreTest: backup.restoreTest,
              // Not the control plane's, which every site would read (its repository's site holds it anyway).
              ...(isControlPlane
                ? {}
                : {
                    password: pulumi.secret(
                      bundle.apply((b) => need(b.backup, "backup credentials").repository),
                    ),
                  }),
            },
          }),
    };
    this.registerOutputs({ containers: this.outputs.containers, hostAddress: host.address });
  }
}

/** A site's entry of a control-plane export, or the error that says which stack to run first. */
function keyOf<T>(
  site: string,
  keys: pulumi.Output<Record<string, T>>,
  controlPlane: string,
): pulumi.Output<T> {
  return keys.apply((k) => controlPlaneEntry(k, site, controlPlane));
}

/** A node's pre-auth key among its site's, or the error that says which stack to run first. */
export function nodeKey(
  keys: Record<string, string>,
  site: string,
  node: string,
  controlPlane: string,
): string {
  const key = keys[node];
  if (!key) {
    throw new Error(
      `site \`${site}\` has no key for its node \`${node}\` in \`${controlPlane}\`'s stack yet: run \`pulumi up --stack ${controlPlane}\` first (it makes one for every node of every stack file)`,
    );
  }
  return key;
}

export function controlPlaneEntry<T = string>(
  keys: Record<string, T> | undefined,
  site: string,
  controlPlane: string,
): T {
  const key = keys?.[site];
  if (!key) {
    throw new Error(
      `site \`${site}\` has no key in \`${controlPlane}\`'s stack yet: run \`pulumi up --stack ${controlPlane}\` first (it makes one for every stack file)`,
    );
  }
  return key;
}
