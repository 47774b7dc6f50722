import * as pulumi from "@pulumi/pulumi";
import { Host, ServiceSet, type SshClientFiles } from "../components";
import { PROJECT } from "../config/schema";
import type { SiteModel } from "../model/site";

export interface SiteSecrets {
  /** The SSH private key, when set in config; otherwise the SSH agent is used. */
  readonly sshPrivateKey?: pulumi.Output<string>;
  /** The files Docker's ssh client reads (key, pinned host key). */
  readonly sshFiles?: SshClientFiles;
  /** Reads `<project>:<key>` as a secret. */
  readonly configSecret: (key: string) => pulumi.Output<string>;
}

export interface SiteOutputs {
  readonly site: string;
  readonly role: string;
  readonly hostAddress: pulumi.Output<string>;
  /** Container names by service. */
  readonly containers: pulumi.Output<Record<string, string[]>>;
  /** `https://...` by `<service>-<route>`. */
  readonly urls: Record<string, string>;
  readonly counts: { readonly services: number; readonly containers: number };
}

export interface Site {
  readonly host: Host;
  readonly services: ServiceSet;
  /** What the stack exports. */
  readonly outputs: SiteOutputs;
}

/** Builds one site: its host, then the services its role and stack file place there. */
export function deploySite(
  model: SiteModel,
  secrets: SiteSecrets,
  opts?: pulumi.ComponentResourceOptions,
): Site {
  const host = new Host(
    model.name,
    {
      host: model.host,
      protect: model.protect,
      ports: model.services.flatMap((s) => s.containers.flatMap((c) => c.ports)),
      ...(secrets.sshPrivateKey ? { privateKey: secrets.sshPrivateKey } : {}),
      ...(secrets.sshFiles ? { sshFiles: secrets.sshFiles } : {}),
    },
    opts,
  );
  const services = new ServiceSet(
    model.name,
    { site: model, provider: host.provider, configSecret: secrets.configSecret },
    // The caller's dependsOn applies to the host; the services wait for the host.
    { ...opts, dependsOn: [host.ready] },
  );
  const outputs: SiteOutputs = {
    site: model.name,
    role: model.role,
    hostAddress: host.address,
    containers: services.containerNames,
    urls: Object.fromEntries(
      model.routes.map((r) => [`${r.service}-${r.name}`, `https://${r.host}${r.pathPrefix ?? "/"}`]),
    ),
    counts: {
      services: model.services.length,
      containers: model.services.reduce((n, s) => n + s.containers.length, 0),
    },
  };
  return { host, services, outputs };
}

/** Secret config keys of this project, read as secrets. */
export function projectSecret(key: string): pulumi.Output<string> {
  return new pulumi.Config(PROJECT).requireSecret(key);
}
