import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { SEAL_KEY_KEY } from "../config/schema";
import { SealError, canonicalJson, seal, unseal } from "../render/seal";
import type { BackupCredentials } from "./backup";

/** A repository a site keeps for another site: what its REST server and retention need. */
export interface HostedRepository {
  /** restic's password of the kept repository: its retention and checks open it. */
  readonly repository: string;
  /** The other site's `site:bcrypt` line of the REST server's htpasswd file. */
  readonly htpasswd: string;
}

/**
 * Everything secret one site needs from its control plane, and nothing of any other site's: sealed to that site's
 * key (render/seal.ts). To hand a site a new secret, add its field here and one line to `siteBundle`.
 */
export interface SiteBundle {
  /** Its own tailnet nodes' pre-auth keys, by node (`tailscale`, `tailscale-egress-<service>`). */
  readonly meshAuthKeys?: Readonly<Record<string, string>>;
  /** Its WireGuard private key, when it has a tunnel. */
  readonly wireguardPrivateKey?: string;
  /** Its own backup credentials, when it is backed up. */
  readonly backup?: BackupCredentials;
  /** The repositories it keeps for other sites, by site. */
  readonly hosted?: Readonly<Record<string, HostedRepository>>;
  /** Its password for pushing its logs to the control plane's Loki (through its Traefik), when it ships logs. */
  readonly logPassword?: string;
}

/** The control plane's keys of every site, by site: what bundles are cut from. */
export interface ControlPlaneKeys {
  readonly meshAuthKeys: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly wireguardPrivateKeys: Readonly<Record<string, string>>;
  readonly backupCredentials: Readonly<Record<string, BackupCredentials>>;
  readonly backupHtpasswd: Readonly<Record<string, string>>;
  readonly logPasswords: Readonly<Record<string, string>>;
}

/** One site's bundle: its own entries, and of the sites whose repositories it keeps (`hosted`) what it needs. */
export function siteBundle(site: string, hosted: readonly string[], keys: ControlPlaneKeys): SiteBundle {
  const kept = hosted.flatMap((s) => {
    const repository = keys.backupCredentials[s]?.repository;
    const htpasswd = keys.backupHtpasswd[s];
    return repository === undefined || htpasswd === undefined ? [] : [[s, { repository, htpasswd }] as const];
  });
  const bundle: SiteBundle = {
    meshAuthKeys: keys.meshAuthKeys[site],
    wireguardPrivateKey: keys.wireguardPrivateKeys[site],
    backup: keys.backupCredentials[site],
    hosted: kept.length > 0 ? Object.fromEntries(kept) : undefined,
    logPassword: keys.logPasswords[site],
  };
  // What a site does not have leaves no key at all.
  return Object.fromEntries(Object.entries(bundle).filter(([, v]) => v !== undefined)) as SiteBundle;
}

export interface SealedBundlesArgs {
  /** The bundle of each site to seal for, by site. */
  readonly bundles: Readonly<Record<string, pulumi.Input<SiteBundle>>>;
  /** Each of those sites' sealing public key (its stack file's `mesh.sealPublicKey`). */
  readonly recipients: Readonly<Record<string, string>>;
}

/**
 * Every site's bundle sealed to that site's key, on the control plane: what it exports instead of the keys, so a
 * site's stack (which reads every output of the control plane's) can open its own bundle and no other. The
 * sealing secret (random, kept in state) makes sealing deterministic: unchanged bundles give unchanged outputs.
 */
export class SealedBundles extends pulumi.ComponentResource {
  /** Boxes by site: secret (ciphertext, but kept encrypted in state all the same). */
  public readonly sealed: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: SealedBundlesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:mesh:SealedBundles", name, {}, opts);
    // Replacing it only re-seals every bundle (new boxes, same contents): nothing to protect.
    const secret = new random.RandomBytes(`${name}-seal`, { length: 32 }, { parent: this });
    const boxes: Record<string, pulumi.Output<string>> = {};
    for (const [site, bundle] of Object.entries(args.bundles)) {
      const publicKey = args.recipients[site];
      if (publicKey === undefined)
        throw new pulumi.ResourceError(`no sealing key for site \`${site}\``, this);
      boxes[site] = pulumi
        .all([secret.base64, bundle])
        .apply(([s, b]) => seal(canonicalJson(b), site, publicKey, Buffer.from(s, "base64")));
    }
    this.sealed = pulumi.secret(pulumi.all(boxes));
    this.registerOutputs({ sealed: this.sealed });
  }
}

/**
 * Opens a site's box from its control plane's `sealed` output with the site's private key; the errors say which
 * stack to run or which config key to fix.
 */
export function openBundle(
  sealed: Readonly<Record<string, string>> | undefined,
  site: string,
  controlPlane: string,
  privateKey: string,
): SiteBundle {
  const box = sealed?.[site];
  if (box === undefined) {
    throw new Error(
      `site \`${site}\` has no sealed keys in \`${controlPlane}\`'s stack yet: run \`pulumi up --stack ${controlPlane}\` first (it seals keys for every stack file with \`mesh.sealPublicKey\`)`,
    );
  }
  try {
    return JSON.parse(unseal(box, site, privateKey)) as SiteBundle;
  } catch (e) {
    if (!(e instanceof SealError)) throw e;
    throw new Error(
      `site \`${site}\`: the keys \`${controlPlane}\` sealed for it do not open with \`${SEAL_KEY_KEY}\` (${e.message}): set the key whose public half is \`mesh.sealPublicKey\` in Pulumi.${site}.yaml, or run \`npm run seal-key -- --stack ${site}\` and then \`pulumi up --stack ${controlPlane}\``,
    );
  }
}
