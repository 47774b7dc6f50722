import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import {
  parsePreAuthKey,
  renderPreAuthKeyExpireScript,
  renderPreAuthKeyScript,
  type MeshIdentity,
} from "../../render/headscale";

export interface HeadscaleArgs {
  /** The control-plane host, over SSH. */
  readonly connection: command.types.input.remote.ConnectionArgs;
  /** The nodes of each site that joins this control plane's tailnet (itself included), by site. */
  readonly identities: Readonly<Record<string, readonly MeshIdentity[]>>;
  /** The Headscale container: keys are made once it runs. */
  readonly container: pulumi.Resource;
}

/**
 * The tailnet's membership on the control plane: a reusable pre-auth key per node identity (each site's node, and
 * an egress node per flow consumer), tagged with that identity's tags, valid for a year (PRE_AUTH_KEY_EXPIRY), made
 * once through the headscale CLI and kept in state as secrets, expired when the key is replaced or the site (or the
 * consumer) leaves the estate. A node needs its key only to join (its own key then lives in its state volume), and
 * again to rejoin after losing that volume: a restore.
 */
export class Headscale extends pulumi.ComponentResource {
  /** Pre-auth keys by site, then by node (`tailscale`, `tailscale-egress-<service>`): secret. */
  public readonly authKeys: pulumi.Output<Record<string, Record<string, string>>>;

  constructor(name: string, args: HeadscaleArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:mesh:Headscale", name, {}, opts);
    const keys: Record<string, pulumi.Output<Record<string, string>>> = {};
    for (const [site, identities] of Object.entries(args.identities)) {
      const nodes: Record<string, pulumi.Output<string>> = {};
      for (const identity of identities) {
        const script = renderPreAuthKeyScript(site, identity);
        // The site's node keeps the name it always had (an existing key stays); egress nodes' carry theirs.
        const suffix = identity.node === "tailscale" ? "" : `-${identity.node}`;
        const cmd = new command.remote.Command(
          `${name}-key-${site}${suffix}`,
          {
            connection: args.connection,
            create: script,
            // A key replaced (new tags, `--replace`) or of a node gone from the estate is expired at once, not
            // left valid until its expiry.
            delete: renderPreAuthKeyExpireScript(site, identity),
            // Its stdout is the key: kept out of the engine's log (and so out of CI logs), secret in state.
            logging: "stderr",
            // A new script (new tags, a new expiry) makes a new key; the old one is expired by its delete.
            triggers: [script],
          },
          {
            parent: this,
            dependsOn: [args.container],
            additionalSecretOutputs: ["stdout"],
            // The old key is expired before the new one is made: the id file is then the old key's.
            deleteBeforeReplace: true,
          },
        );
        nodes[identity.node] = cmd.stdout.apply(parsePreAuthKey);
      }
      keys[site] = pulumi.all(nodes);
    }
    this.authKeys = pulumi.secret(pulumi.all(keys));
    this.registerOutputs({ authKeys: this.authKeys });
  }
}
