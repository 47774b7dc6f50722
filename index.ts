import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { preflight, writeSshClientFiles } from "./components";
import { SSH_KEY_KEY, SSH_KEY_NAME } from "./config/schema";
import { runtimeSource } from "./config/source";
import { loadProjectSite } from "./model/estate";
import { deploySite, projectSecret } from "./stacks/site";

/**
 * Where Pulumi.yaml and every site's stack file are: the program may live elsewhere (the sandbox's does). Pulumi
 * runs programs there; newer language hosts also say so (older ones pass a placeholder, hence the check).
 */
function projectDir(): string {
  const candidates = [pulumi.runtime.getRootDirectory(), process.cwd()];
  const dir = candidates.find((d) => d && fs.existsSync(path.join(d, "Pulumi.yaml")));
  if (!dir)
    throw new Error(`no Pulumi.yaml in ${candidates.join(" or ")}: run the program through \`pulumi\``);
  return dir;
}

// Config is parsed and the host probed before any resource is registered: bad input touches nothing.
export = async () => {
  const model = loadProjectSite(projectDir(), pulumi.getStack(), runtimeSource());
  await preflight(model.name, model.file, model.host);

  const privateKey = pulumi.runtime.getConfig(SSH_KEY_KEY);
  const site = deploySite(model, {
    ...(privateKey === undefined ? {} : { sshPrivateKey: projectSecret(SSH_KEY_NAME) }),
    sshFiles: writeSshClientFiles(`${pulumi.getProject()}-${model.name}`, model.host, privateKey),
    configSecret: projectSecret,
  });
  return { ...site.outputs };
};
