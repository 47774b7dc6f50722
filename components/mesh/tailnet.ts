import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceModel } from "../../render/siteModel";
import type { MeshIdentity } from "../../render/headscale";
import { WAS_ROOT } from "../aliases";
import { deployServices, type SiteResources } from "../service";
import { Headscale } from "./headscale";
import { WireguardKeys } from "./wireguardKeys";

export interface TailnetArgs {
  /** What the control plane's services share. */
  readonly resources: SiteResources;
  /** The tailnet's control services on this site: Headscale, whose config and policy the catalog renders. */
  readonly services: readonly ServiceModel[];
  /** Headscale's container among them (the model's `tailnet.headscale`). */
  readonly headscale: string;
  /** The control-plane host, over SSH: the pre-auth keys are made with Headscale's CLI. */
  readonly connection: command.types.input.remote.ConnectionArgs;
  /** The nodes of each site that joins this tailnet (the control plane included), by site. */
  readonly identities: Readonly<Record<string, readonly MeshIdentity[]>>;
  /** The sites with a WireGuard tunnel. */
  readonly tunnels: readonly string[];
}

/**
 * The tailnet, on its control plane: Headscale (its config and ACL policy), every node's pre-auth key and every
 * tunnel's WireGuard key pair. The keys were the stack's own children before the tree had a `Tailnet`: aliased.
 */
export class Tailnet extends pulumi.ComponentResource {
  /** Pre-auth keys by site, then by node: secret. */
  public readonly authKeys: pulumi.Output<Record<string, Record<string, string>>>;
  /** WireGuard private keys by site: secret. */
  public readonly wireguardPrivateKeys: pulumi.Output<Record<string, string>>;
  /** WireGuard public keys by site. */
  public readonly wireguardPublicKeys: pulumi.Output<Record<string, string>>;
  /** Its containers by name. */
  public readonly containers: Readonly<Record<string, docker.Container>>;

  constructor(name: string, args: TailnetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:mesh:Tailnet", name, {}, opts);
    const was = { parent: this, aliases: [WAS_ROOT] };
    const wireguard = new WireguardKeys(name, { sites: args.tunnels }, was);
    this.containers = deployServices(this, args.services, args.resources);
    const container = this.containers[args.headscale];
    if (!container) throw new pulumi.ResourceError(`no Headscale container \`${args.headscale}\``, this);
    const headscale = new Headscale(
      name,
      { connection: args.connection, identities: args.identities, container },
      was,
    );
    this.authKeys = headscale.authKeys;
    this.wireguardPrivateKeys = wireguard.privateKeys;
    this.wireguardPublicKeys = wireguard.publicKeys;
    this.registerOutputs({
      authKeys: this.authKeys,
      wireguardPrivateKeys: this.wireguardPrivateKeys,
      wireguardPublicKeys: this.wireguardPublicKeys,
    });
  }
}
