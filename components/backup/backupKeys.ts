import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

export interface BackupKeysArgs {
  /** The sites whose backups have a repository. */
  readonly sites: readonly string[];
  /** Protect the passwords against deletion: without its password a repository is noise. Defaults to true. */
  readonly protect?: boolean;
}

/** One site's backup credentials. */
export interface BackupCredentials {
  /** restic's repository password: it encrypts the backups. */
  readonly repository: string;
  /** The site's user on the REST server that keeps its repository. */
  readonly rest: string;
}

/**
 * Every site's backup credentials, made on the control plane (as the tailnet's keys are): the repository password
 * and the REST server user's password, kept in state as secrets; the REST server gets the user's bcrypt hash.
 */
export class BackupKeys extends pulumi.ComponentResource {
  /** By site: secret. */
  public readonly credentials: pulumi.Output<Record<string, BackupCredentials>>;
  /** `site:bcrypt hash` lines of the REST servers' htpasswd files, by site: secret. */
  public readonly htpasswd: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: BackupKeysArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:backup:BackupKeys", name, {}, opts);
    const protect = args.protect ?? true;
    const creds: Record<string, pulumi.Output<BackupCredentials>> = {};
    const lines: Record<string, pulumi.Output<string>> = {};
    for (const site of args.sites) {
      // Letters and digits only: these land in a URL and in files read line by line.
      const password = (what: string) =>
        new random.RandomPassword(
          `${name}-backup-${site}-${what}`,
          { length: 40, special: false },
          { parent: this, protect },
        );
      const repository = password("repository");
      const rest = password("rest");
      creds[site] = pulumi
        .all([repository.result, rest.result])
        .apply(([r, u]) => ({ repository: r, rest: u }));
      lines[site] = pulumi.interpolate`${site}:${rest.bcryptHash}`;
    }
    this.credentials = pulumi.secret(pulumi.all(creds));
    this.htpasswd = pulumi.secret(pulumi.all(lines));
    this.registerOutputs({ credentials: this.credentials, htpasswd: this.htpasswd });
  }
}
