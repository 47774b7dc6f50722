import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { renderBackupInstall, renderBackupUninstall } from "../../render/backup";
import { imageKey, type SiteModel } from "../../render/siteModel";

export interface BackupsArgs {
  readonly site: SiteModel;
  /** The host, over SSH. */
  readonly connection: command.types.input.remote.ConnectionArgs;
  /** Docker on the host: the job's images are pulled ahead, as the containers' are. */
  readonly provider: docker.Provider;
  /** The job's secrets, `name value` lines (render/backup.ts renderBackupSecrets): secret. */
  readonly secrets: pulumi.Input<string>;
}

/** The install's command: its work is on the host's disk, where no refresh sees it (npm run dr drops it). */
export const backupCommandName = (site: string) => `${site}-backup`;

/**
 * The site's backup job on its host (render/backup.ts): the `qcloud-backup` script, its cron schedule and its
 * secrets, installed over SSH; restic's and sqlite3's images pulled. Removing it leaves the repositories alone.
 */
export class Backups extends pulumi.ComponentResource {
  /** The install's output (the gauges it initialised). */
  public readonly installed: pulumi.Output<string>;

  constructor(name: string, args: BackupsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:backup:Backups", name, {}, opts);
    const images = Object.values(args.site.backup.images).map(
      (ref) =>
        new docker.RemoteImage(
          `${name}-backup-${imageKey(ref)}`,
          { name: ref, keepLocally: true },
          { parent: this, provider: args.provider },
        ),
    );
    const install = renderBackupInstall(args.site);
    const cmd = new command.remote.Command(
      backupCommandName(name),
      {
        connection: args.connection,
        create: install,
        delete: renderBackupUninstall(),
        stdin: pulumi.secret(args.secrets),
        // A changed script, schedule or secret re-runs the install (an update runs `create` again).
        logging: "stderr",
      },
      { parent: this, dependsOn: images, additionalSecretOutputs: ["stdin"] },
    );
    this.installed = cmd.stdout;
    this.registerOutputs({ installed: this.installed });
  }
}
