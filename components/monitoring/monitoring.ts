import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ServiceModel } from "../../render/siteModel";
import { WAS_ROOT } from "../aliases";
import { deployServices, type SiteResources } from "../service";
import { LogKeys } from "./logKeys";

export interface MonitoringArgs {
  /** What the site's services share. */
  readonly resources: SiteResources;
  /**
   * The site's monitoring services: on the control plane Prometheus, Alertmanager, Grafana, Loki and blackbox, with
   * their generated configs and rules; on every site its agents (node-exporter, cAdvisor, Promtail).
   */
  readonly services: readonly ServiceModel[];
  /**
   * On the control plane: the sites that push logs to its Loki, each with a password made here (`LogKeys`). Defaults
   * to none: a site that is not the control plane makes no keys.
   */
  readonly logShippers?: readonly string[];
}

/** A site's monitoring: the control plane's stack and its agents, or a site's agents. */
export class Monitoring extends pulumi.ComponentResource {
  /** Its containers by name. */
  public readonly containers: Readonly<Record<string, docker.Container>>;
  /** The control plane's log push keys. */
  public readonly logKeys?: LogKeys;

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("qcloud:monitoring:Monitoring", name, {}, opts);
    if (args.logShippers) {
      this.logKeys = new LogKeys(
        name,
        { sites: args.logShippers, protect: args.resources.site.protect },
        // The stack's own child before the tree had a `Monitoring`.
        { parent: this, aliases: [WAS_ROOT] },
      );
    }
    this.containers = deployServices(this, args.services, args.resources);
    this.registerOutputs({});
  }
}
