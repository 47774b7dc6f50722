import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { SiteModel } from "../render/siteModel";
import { renderSyncInstall, renderSyncUninstall } from "../render/sync";

export interface SyncArgs {
  readonly site: SiteModel;
  /** The host, over SSH. */
  readonly connection: command.types.input.remote.ConnectionArgs;
}

/**
 * The site's secondaries' sync job on its host (render/sync.ts): `qcloud-sync` and its cron file, installed over
 * SSH. Removing it leaves the secondaries with what they last pulled.
 */
export class Sync extends pulumi.ComponentResource {
  constructor(name: string, args: SyncArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:sync:Sync", name, {}, opts);
    new command.remote.Command(
      `${name}-sync`,
      {
        connection: args.connection,
        // A changed script (a task added, a primary moved) re-runs the install.
        create: renderSyncInstall(args.site),
        delete: renderSyncUninstall(),
        logging: "stderr",
      },
      { parent: this },
    );
    this.registerOutputs({});
  }
}
