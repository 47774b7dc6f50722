import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { EstateSite } from "../../model/estate";
import {
  parsePreAuthKey,
  renderPreAuthKeyExpireScript,
  renderPreAuthKeyScript,
} from "../../render/headscale";

export interface HeadscaleArgs {
  /** The control-plane host, over SSH. */
  readonly connection: command.types.input.remote.ConnectionArgs;
  /** The sites that join this control plane's tailnet, itself included. */
  readonly sites: readonly EstateSite[];
  /** The Headscale container: keys are made once it runs. */
  readonly container: pulumi.Resource;
}

/**
 * The tailnet's membership on the control plane: a reusable pre-auth key per site, valid for a year
 * (PRE_AUTH_KEY_EXPIRY), made once through the headscale CLI and kept in state as secrets, expired when the key is
 * replaced or the site leaves the estate. A node needs its key only to join (its own key then lives in its state
 * volume), and again to rejoin after losing that volume: a restore.
 */
export class Headscale extends pulumi.ComponentResource {
  /** Pre-auth keys by site name: secret. */
  public readonly authKeys: pulumi.Output<Record<string, string>>;

  constructor(name: string, args: HeadscaleArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:mesh:Headscale", name, {}, opts);
    const keys: Record<string, pulumi.Output<string>> = {};
    for (const site of args.sites) {
      const cmd = new command.remote.Command(
        `${name}-key-${site.name}`,
        {
          connection: args.connection,
          create: renderPreAuthKeyScript(site),
          // A key replaced (new tags, `--replace`) or of a site whose stack file is gone is expired at once, not
          // left valid until its expiry.
          delete: renderPreAuthKeyExpireScript(),
          // Its stdout is the key: kept out of the engine's log (and so out of CI logs), secret in state.
          logging: "stderr",
          // A new script (new tags, a new expiry) makes a new key; the old one is expired by its delete.
          triggers: [renderPreAuthKeyScript(site)],
        },
        { parent: this, dependsOn: [args.container], additionalSecretOutputs: ["stdout"] },
      );
      keys[site.name] = cmd.stdout.apply(parsePreAuthKey);
    }
    this.authKeys = pulumi.secret(pulumi.all(keys));
    this.registerOutputs({ authKeys: this.authKeys });
  }
}
