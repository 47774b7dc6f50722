import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

export interface LogKeysArgs {
  /** The sites whose shippers push to the control plane's Loki through its Traefik (render/monitoring.ts). */
  readonly sites: readonly string[];
  /** Protect the passwords against deletion (a new one means a new deployment of the site). Defaults to true. */
  readonly protect?: boolean;
}

/**
 * Each site's password for pushing logs, made on the control plane (as the backup credentials are): the site's
 * shipper sends it, the control plane's Traefik checks it against a bcrypt hash and names Loki's tenant after the
 * site it belongs to. One password per site: a leak lets the holder write that site's logs, and no other's.
 */
export class LogKeys extends pulumi.ComponentResource {
  /** Push passwords by site: secret. */
  public readonly passwords: pulumi.Output<Record<string, string>>;
  /** `site:bcrypt hash` lines of Traefik's users file, by site: secret. */
  public readonly users: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: LogKeysArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:monitoring:LogKeys", name, {}, opts);
    const protect = args.protect ?? true;
    const passwords: Record<string, pulumi.Output<string>> = {};
    const users: Record<string, pulumi.Output<string>> = {};
    for (const site of args.sites) {
      // Letters and digits only: it lands in a file read whole, and in an HTTP header (base64).
      const password = new random.RandomPassword(
        `${name}-logs-${site}`,
        { length: 40, special: false },
        { parent: this, protect },
      );
      passwords[site] = password.result;
      users[site] = pulumi.interpolate`${site}:${password.bcryptHash}`;
    }
    this.passwords = pulumi.secret(pulumi.all(passwords));
    this.users = pulumi.secret(pulumi.all(users));
    this.registerOutputs({ passwords: this.passwords, users: this.users });
  }
}
