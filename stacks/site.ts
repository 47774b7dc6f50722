import * as pulumi from "@pulumi/pulumi";
import { Site, type SiteSecrets } from "../components";
import { PROJECT } from "../config/schema";
import type { SiteModel } from "../render/siteModel";

/**
 * Builds one site's stack: its `Site`, which reads what its control plane exports through a `StackReference` to
 * `<organization>/<project>/<control plane>` (made on first read, so a control plane makes none), unless the
 * caller reads it otherwise (`secrets.controlPlaneOutput`).
 */
export function deploySite(
  model: SiteModel,
  secrets: SiteSecrets,
  opts?: pulumi.ComponentResourceOptions,
): Site {
  let ref: pulumi.StackReference | undefined;
  const read =
    secrets.controlPlaneOutput ??
    ((key: string) => {
      ref ??= new pulumi.StackReference(`${model.name}-control-plane`, {
        name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${model.controlPlane}`,
      });
      // The control plane exports them under `controlPlane` (see index.ts).
      return ref.requireOutput("controlPlane").apply((cp) => (cp as Record<string, unknown>)[key]);
    });
  return new Site(model.name, { ...secrets, model, controlPlaneOutput: read }, opts);
}

/** Secret config keys of this project, read as secrets. */
export function projectSecret(key: string): pulumi.Output<string> {
  return new pulumi.Config(PROJECT).requireSecret(key);
}
