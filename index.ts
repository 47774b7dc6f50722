import * as pulumi from "@pulumi/pulumi";
import { preflight, writeSshClientFiles } from "./components";
import { SSH_KEY_KEY, SSH_KEY_NAME } from "./config/schema";
import { runtimeSource } from "./config/source";
import { loadProjectSite } from "./model/estate";
import { deploySite, projectSecret } from "./stacks/site";

// Config is parsed and the host probed before any resource is registered: bad input touches nothing.
export = async () => {
  // Every site's stack file sits next to Pulumi.yaml (the program itself may live elsewhere: the sandbox's does).
  const root = pulumi.runtime.getRootDirectory() || process.cwd();
  const model = loadProjectSite(root, pulumi.getStack(), runtimeSource());
  await preflight(model.name, model.file, model.host);

  const privateKey = pulumi.runtime.getConfig(SSH_KEY_KEY);
  const site = deploySite(model, {
    ...(privateKey === undefined ? {} : { sshPrivateKey: projectSecret(SSH_KEY_NAME) }),
    sshFiles: writeSshClientFiles(`${pulumi.getProject()}-${model.name}`, model.host, privateKey),
    configSecret: projectSecret,
  });
  return { ...site.outputs };
};
