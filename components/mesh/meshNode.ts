import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceModel } from "../../render/siteModel";
import { renderTailnetAddressScript } from "../../render/headscale";
import { WAS_ROOT } from "../aliases";
import { deployServices, type SiteResources } from "../service";

export interface MeshNodeArgs {
  /** What the site's services share; its inputs hold each node's pre-auth key and the tunnel's config. */
  readonly resources: SiteResources;
  /** The site's mesh services: its tailnet node with its egress nodes, and its WireGuard tunnel. */
  readonly services: readonly ServiceModel[];
  /** The site's tailnet node among them (the model's `tailnet.node`); none when the stack file removes it. */
  readonly node?: string;
  /** The host, over SSH: the node's tailnet address is read there. */
  readonly connection: command.types.input.remote.ConnectionArgs;
}

/** A site's place on the mesh: its tailnet node, the egress nodes of its flows, its WireGuard tunnel, its address. */
export class MeshNode extends pulumi.ComponentResource {
  /** Its tailnet IPv4 address, once joined; empty without a node. */
  public readonly address: pulumi.Output<string>;
  /** Its containers by name. */
  public readonly containers: Readonly<Record<string, docker.Container>>;

  constructor(name: string, args: MeshNodeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:mesh:MeshNode", name, {}, opts);
    this.containers = deployServices(this, args.services, args.resources);
    const node = args.node === undefined ? undefined : this.containers[args.node];
    if (args.node !== undefined && !node) {
      throw new pulumi.ResourceError(
        `no tailnet node container \`${args.node}\` among the site's mesh services`,
        this,
      );
    }
    this.address = node
      ? new command.remote.Command(
          `${name}-tailnet-address`,
          {
            connection: args.connection,
            create: renderTailnetAddressScript(),
            // A new node container may have a new address.
            triggers: [node.id],
          },
          // The stack's own child before the tree had a `MeshNode`.
          { parent: this, dependsOn: [node], aliases: [WAS_ROOT] },
        ).stdout.apply((s) => s.trim())
      : pulumi.output("");
    this.registerOutputs({ address: this.address });
  }
}
