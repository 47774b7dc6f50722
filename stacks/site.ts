import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import {
  BackupKeys,
  Backups,
  Headscale,
  Host,
  LogKeys,
  ServiceSet,
  WireguardKeys,
  type BackupCredentials,
  type SshClientFiles,
} from "../components";
import { PROJECT } from "../config/schema";
import { meshHost, type SiteModel } from "../model/site";
import { renderBackupSecrets, repositoryUrl } from "../render/backup";
import { authKeyInput } from "../catalog/mesh";
import { loginServer, meshIdentities, renderTailnetAddressScript } from "../render/headscale";
import { logShippers } from "../render/monitoring";
import { renderWireguardConfig, tunnelSites } from "../render/wireguard";

export interface SiteSecrets {
  /** The SSH private key, when set in config; otherwise the SSH agent is used. */
  readonly sshPrivateKey?: pulumi.Output<string>;
  /** The files Docker's ssh client reads (key, pinned host key). */
  readonly sshFiles?: SshClientFiles;
  /** Reads `<project>:<key>` as a secret. */
  readonly configSecret: (key: string) => pulumi.Output<string>;
  /**
   * Reads an entry of the control-plane stack's `controlPlane` output. Defaults to a `StackReference` to
   * `<organization>/<project>/<control plane>`.
   */
  readonly controlPlaneOutput?: (name: string) => pulumi.Output<unknown>;
}

/** What the control-plane stack exports for the other sites of its tailnet. */
export interface ControlPlaneOutputs {
  /** Pre-auth keys by site, then by node (`tailscale`, `tailscale-egress-<service>`): secret. */
  readonly meshAuthKeys: pulumi.Output<Record<string, Record<string, string>>>;
  /** WireGuard private keys by site: secret. */
  readonly wireguardPrivateKeys: pulumi.Output<Record<string, string>>;
  readonly wireguardPublicKeys: pulumi.Output<Record<string, string>>;
  /** Backup repository and REST passwords by site: secret. */
  readonly backupCredentials: pulumi.Output<Record<string, BackupCredentials>>;
  /** The REST servers' `site:bcrypt` lines by site: secret. */
  readonly backupHtpasswd: pulumi.Output<Record<string, string>>;
  /** Each site's password for pushing its logs to the control plane's Loki (through its Traefik), by site: secret. */
  readonly logPasswords: pulumi.Output<Record<string, string>>;
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
    /** Its `wg-quick` config, when it has a tunnel: secret (it holds the private key). */
    readonly wireguardConfig?: pulumi.Output<string>;
  };
  /** The control plane's exports for its sites. */
  readonly controlPlane?: ControlPlaneOutputs;
  /** Where and when the site is backed up; the repository password is secret: keep a copy offline (README). */
  readonly backup?: {
    readonly target: string;
    readonly repository: string;
    readonly schedule: string;
    readonly restoreTest: string;
    readonly password: pulumi.Output<string>;
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
  const isControlPlane = model.controlPlane === model.name;
  const members = model.estate.sites.filter((s) => s.controlPlane === model.controlPlane);
  const tunnels = tunnelSites(model.estate, model.controlPlane).map((s) => s.name);

  // The control plane makes every site's keys; the others read theirs from its stack.
  let wgKeys: {
    privateKeys: pulumi.Output<Record<string, string>>;
    publicKeys: pulumi.Output<Record<string, string>>;
  };
  let backupKeys: {
    credentials: pulumi.Output<Record<string, BackupCredentials>>;
    htpasswd: pulumi.Output<Record<string, string>>;
  };
  // The control plane keeps the hashes (its Traefik checks them); each other site reads its own password.
  const shippers = logShippers(model.estate, model.controlPlane);
  let logPasswords: pulumi.Output<Record<string, string>>;
  let logUsers: pulumi.Output<Record<string, string>> | undefined;
  let read: (<T = string>(key: string) => pulumi.Output<Record<string, T>>) | undefined;
  if (isControlPlane) {
    const logKeys = new LogKeys(model.name, { sites: shippers, protect: model.protect }, opts);
    logPasswords = logKeys.passwords;
    logUsers = logKeys.users;
    wgKeys = new WireguardKeys(model.name, { sites: tunnels }, opts);
    backupKeys = new BackupKeys(
      model.name,
      {
        sites: members.filter((s) => s.backupTarget !== undefined).map((s) => s.name),
        protect: model.protect,
      },
      opts,
    );
  } else {
    let ref: pulumi.StackReference | undefined;
    const fromControlPlane =
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
    read = <T>(key: string) => fromControlPlane(key) as pulumi.Output<Record<string, T>>;
    wgKeys = { privateKeys: read("wireguardPrivateKeys"), publicKeys: read("wireguardPublicKeys") };
    backupKeys = {
      credentials: read<BackupCredentials>("backupCredentials"),
      htpasswd: read("backupHtpasswd"),
    };
    logPasswords = read("logPasswords");
  }
  const backup = model.backup;
  const entry = <T>(keys: Record<string, T>, site: string): T =>
    controlPlaneEntry(keys, site, model.controlPlane);
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
  const nodes = (model.services.find((s) => s.name === "tailscale")?.containers ?? []).map((c) => c.name);
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
        ...(logUsers && shippers.length > 0
          ? {
              logsUsers: pulumi.secret(logUsers.apply((u) => shippers.map((x) => `${u[x]}\n`).join(""))),
            }
          : {}),
        ...(shippers.includes(model.name)
          ? { lokiPassword: pulumi.secret(logPasswords.apply((p) => entry(p, model.name))) }
          : {}),
        // The REST server's users: the sites whose repositories this site keeps.
        ...(backup.hosted.length > 0
          ? {
              backupHtpasswd: pulumi.secret(
                backupKeys.htpasswd.apply((h) => backup.hosted.map((x) => `${entry(h, x.site)}\n`).join("")),
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
      {
        connection: host.connection,
        identities: Object.fromEntries(members.map((m) => [m.name, meshIdentities(model.estate, m)])),
        container: services.containers["headscale"]!,
      },
      opts,
    );
    controlPlane = {
      meshAuthKeys: headscale.authKeys,
      wireguardPrivateKeys: wgKeys.privateKeys,
      wireguardPublicKeys: wgKeys.publicKeys,
      backupCredentials: backupKeys.credentials,
      backupHtpasswd: backupKeys.htpasswd,
      logPasswords,
    };
    setAuthKeys(keyOf(model.name, headscale.authKeys, model.controlPlane));
  } else {
    setAuthKeys(keyOf(model.name, read!<Record<string, string>>("meshAuthKeys"), model.controlPlane));
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
          backupKeys.credentials.apply((c) =>
            renderBackupSecrets({
              ...(target === undefined
                ? {}
                : {
                    repository: repositoryUrl(model.estate, model.name, target, entry(c, model.name).rest),
                    password: entry(c, model.name).repository,
                  }),
              ...Object.fromEntries(
                backup.hosted.map((x) => [`hosted/${x.site}`, entry(c, x.site).repository]),
              ),
            }),
          ),
        ),
      },
      // Its restore and restore test stop and start the containers; the tunnel out is the egress node.
      { ...opts, dependsOn: [host.ready, ...Object.values(services.containers)] },
    );
  }
  const tailscale = services.containers["tailscale"];
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
      name: meshHost(model.name, model.domain),
      address,
      loginServer: loginServer(model.estate, model.controlPlane, model.domain),
      ...(wireguardConfig ? { wireguardConfig } : {}),
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
            password: pulumi.secret(backupKeys.credentials.apply((c) => entry(c, model.name).repository)),
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
