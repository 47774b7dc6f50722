import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import {
  BackupKeys,
  Backups,
  Headscale,
  Host,
  LogKeys,
  SealedBundles,
  ServiceSet,
  WireguardKeys,
  openBundle,
  siteBundle,
  type SiteBundle,
  type SshClientFiles,
} from "../components";
import { PROJECT } from "../config/schema";
import { hostedRepositories, meshHost } from "../model/estateSite";
import { checkSealKey, sealRecipients } from "../model/seal";
import { TAILNET_SERVICES } from "../model/site";
import { renderBackupSecrets, repositoryUrl } from "../render/backup";
import { authKeyInput } from "../catalog/mesh";
import { loginServer, meshIdentities, renderTailnetAddressScript } from "../render/headscale";
import { logShippers } from "../render/monitoring";
import type { SiteModel } from "../render/siteModel";
import { renderWireguardConfig, tunnelSites } from "../render/wireguard";

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
   * Reads an entry of the control-plane stack's `controlPlane` output. Defaults to a `StackReference` to
   * `<organization>/<project>/<control plane>`.
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

export interface Site {
  readonly host: Host;
  readonly services: ServiceSet;
  /** The backup job, where the site backs up or keeps a repository. */
  readonly backups?: Backups;
  /** What the stack exports. */
  readonly outputs: SiteOutputs;
}

/** Builds one site: its host, then the services its role and stack file place there. */
export function deploySite(
  model: SiteModel,
  secrets: SiteSecrets,
  opts?: pulumi.ComponentResourceOptions,
): Site {
  const isControlPlane = model.controlPlane === model.name;
  // Before any resource: the control plane needs every site's public key, a site its own private key.
  const recipients = isControlPlane ? sealRecipients(model.estate, model.name) : {};
  checkSealKey(model, secrets.sealKey, true);
  const host = new Host(
    model.name,
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
      ...(secrets.sshPrivateKey ? { privateKey: secrets.sshPrivateKey } : {}),
      ...(secrets.sshFiles ? { sshFiles: secrets.sshFiles } : {}),
    },
    opts,
  );
  const members = model.estate.sites.filter((s) => s.controlPlane === model.controlPlane);
  const tunnels = tunnelSites(model.estate, model.controlPlane).map((s) => s.name);

  // The control plane makes every site's keys; the others open the bundle it sealed for them.
  let wgKeys: {
    privateKeys: pulumi.Output<Record<string, string>>;
    publicKeys: pulumi.Output<Record<string, string>>;
  };
  let backupKeys: BackupKeys | undefined;
  /** This site's own keys and the passwords of the repositories it keeps: secret. */
  let bundle: pulumi.Output<SiteBundle>;
  // The control plane keeps the hashes (its Traefik checks them); each other site reads its own password.
  const shippers = logShippers(model.estate, model.controlPlane);
  let logKeys: LogKeys | undefined;
  if (isControlPlane) {
    logKeys = new LogKeys(model.name, { sites: shippers, protect: model.protect }, opts);
    wgKeys = new WireguardKeys(model.name, { sites: tunnels }, opts);
    backupKeys = new BackupKeys(
      model.name,
      {
        sites: members.filter((s) => s.backupTarget !== undefined).map((s) => s.name),
        protect: model.protect,
      },
      opts,
    );
    // Its own pre-auth keys come from Headscale, which runs in its own service set (below).
    bundle = pulumi.secret(
      pulumi
        .all([wgKeys.privateKeys, backupKeys.credentials, backupKeys.htpasswd, logKeys.passwords])
        .apply(([wireguardPrivateKeys, backupCredentials, backupHtpasswd, logPasswords]) =>
          siteBundle(
            model.name,
            model.backup.hosted.map((x) => x.site),
            { meshAuthKeys: {}, wireguardPrivateKeys, backupCredentials, backupHtpasswd, logPasswords },
          ),
        ),
    );
  } else {
    let ref: pulumi.StackReference | undefined;
    const read =
      secrets.controlPlaneOutput ??
      ((key: string) => {
        ref ??= new pulumi.StackReference(
          `${model.name}-control-plane`,
          { name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${model.controlPlane}` },
          opts,
        );
        // The control plane exports them under `controlPlane` (see index.ts).
        return ref.requireOutput("controlPlane").apply((cp) => (cp as Record<string, unknown>)[key]);
      });
    const sealKey = secrets.sealKey!;
    bundle = pulumi.secret(
      read("sealed").apply((sealed) =>
        openBundle(sealed as Record<string, string> | undefined, model.name, model.controlPlane, sealKey),
      ),
    );
    const publicKeys = read("wireguardPublicKeys") as pulumi.Output<Record<string, string>>;
    wgKeys = {
      privateKeys: pulumi.secret(
        bundle.apply((b): Record<string, string> =>
          b.wireguardPrivateKey === undefined ? {} : { [model.name]: b.wireguardPrivateKey },
        ),
      ),
      publicKeys,
    };
  }
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

  // On the control plane the key comes from Headscale, which runs in the same set: resolved once it does.
  // Each of the site's nodes joins with a key of its own: the site's node, and one egress node per flow consumer.
  const nodes = (model.services.find((s) => s.name === TAILNET_SERVICES.node)?.containers ?? []).map(
    (c) => c.name,
  );
  const [authKeys, setAuthKeys] = pulumi.deferredOutput<Record<string, string>>();
  const services = new ServiceSet(
    model.name,
    {
      site: model,
      provider: host.provider,
      configSecret: secrets.configSecret,
      inputs: {
        ...Object.fromEntries(
          nodes.map((node) => [
            authKeyInput(node),
            pulumi.secret(authKeys.apply((k) => nodeKey(k, model.name, node, model.controlPlane))),
          ]),
        ),
        ...(wireguardConfig ? { wireguardConfig } : {}),
        // Traefik's logs users (the control plane), or this site's own push password.
        ...(logKeys && shippers.length > 0
          ? {
              logsUsers: pulumi.secret(logKeys.users.apply((u) => shippers.map((x) => `${u[x]}\n`).join(""))),
            }
          : {}),
        ...(shippers.includes(model.name)
          ? { lokiPassword: pulumi.secret(bundle.apply((b) => need(b.logPassword, "log push password"))) }
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
      },
    },
    // The caller's dependsOn applies to the host; the services wait for the host.
    { ...opts, dependsOn: [host.ready] },
  );

  let controlPlane: ControlPlaneOutputs | undefined;
  if (isControlPlane) {
    const headscale = new Headscale(
      model.name,
      // The model names it on every control plane: a stack file without Headscale there is refused (model/site.ts).
      {
        connection: host.connection,
        identities: Object.fromEntries(members.map((m) => [m.name, meshIdentities(model.estate, m)])),
        container: services.containers[model.tailnet.headscale!]!,
      },
      opts,
    );
    // Each site's bundle, cut from every site's keys and sealed to that site's key alone.
    const keys = pulumi
      .all([
        headscale.authKeys,
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
      model.name,
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
      opts,
    );
    controlPlane = { sealed: sealed.sealed, wireguardPublicKeys: wgKeys.publicKeys };
    setAuthKeys(keyOf(model.name, headscale.authKeys, model.controlPlane));
  } else {
    setAuthKeys(bundle.apply((b) => need(b.meshAuthKeys, "pre-auth keys")));
  }
  let backups: Backups | undefined;
  if (backup.target !== undefined || backup.hosted.length > 0) {
    const target = backup.target;
    backups = new Backups(
      model.name,
      {
        site: model,
        connection: host.connection,
        provider: host.provider,
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
      { ...opts, dependsOn: [host.ready, ...Object.values(services.containers)] },
    );
  }
  const tailscale = model.tailnet.node === undefined ? undefined : services.containers[model.tailnet.node];
  const address = tailscale
    ? new command.remote.Command(
        `${model.name}-tailnet-address`,
        {
          connection: host.connection,
          create: renderTailnetAddressScript(),
          // A new node container may have a new address.
          triggers: [tailscale.id],
        },
        { ...opts, dependsOn: [tailscale] },
      ).stdout.apply((s) => s.trim())
    : pulumi.output("");
  const outputs: SiteOutputs = {
    site: model.name,
    role: model.role,
    hostAddress: host.address,
    containers: services.containerNames,
    urls: Object.fromEntries(
      model.routes.map((r) => [`${r.service}-${r.name}`, `https://${r.host}${r.pathPrefix ?? "/"}`]),
    ),
    counts: {
      services: model.services.length,
      containers: model.services.reduce((n, s) => n + s.containers.length, 0),
    },
    mesh: {
      name: meshHost(model.estate, model, model.name),
      address,
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
  return { host, services, ...(backups ? { backups } : {}), outputs };
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

/** Secret config keys of this project, read as secrets. */
export function projectSecret(key: string): pulumi.Output<string> {
  return new pulumi.Config(PROJECT).requireSecret(key);
}
