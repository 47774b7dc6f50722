import * as command from "@pulumi/command";
import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { renderFailoverRecordsInstall, renderFailoverRecordsUninstall } from "../render/dns";

export interface FailoverRecordsArgs {
  /** The site's Pi-hole container, and its name. */
  readonly pihole: docker.Container;
  readonly piholeName: string;
  /** The site node's tailnet address (MeshNode.address). */
  readonly address: pulumi.Input<string>;
  /** The names of the routes the site serves with other sites (render/dns.ts failoverHosts). */
  readonly hosts: readonly string[];
  /** The host, over SSH. */
  readonly connection: command.types.input.remote.ConnectionArgs;
}

/**
 * The site's answers for the routes it serves with other sites (render/dns.ts): its Pi-hole sends tailnet clients to
 * its own node. Written again when the node's address, the names or the Pi-hole container change.
 */
export class FailoverRecords extends pulumi.ComponentResource {
  constructor(name: string, args: FailoverRecordsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:dns:FailoverRecords", name, {}, opts);
    new command.remote.Command(
      `${name}-failover-records`,
      {
        connection: args.connection,
        create: pulumi
          .output(args.address)
          .apply((a) => renderFailoverRecordsInstall(args.piholeName, a, args.hosts)),
        delete: renderFailoverRecordsUninstall(args.piholeName),
        triggers: [args.pihole.id],
        logging: "stderr",
      },
      { parent: this, dependsOn: [args.pihole] },
    );
    this.registerOutputs({});
  }
}
