import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { preflight, writeSshClientFiles } from "./components";
import { SEAL_KEY_KEY, SSH_KEY_KEY, SSH_KEY_NAME } from "./config/schema";
import { runtimeSource } from "./config/source";
import { loadProjectSite } from "./model/estate";
import { checkSealKey } from "./model/seal";
import { deploySite, projectSecret } from "./stacks/site";

/**
 * Where Pulumi.yaml and every site's stack file are. Normally the program's own directory, where Pulumi runs it; a
 * project whose `main` is elsewhere (the sandbox's) says so in QCLOUD_PROJECT_DIR, since the language host this
 * toolchain builds passes no usable root directory.
 */
function projectDir(): string {
  const candidates = [process.env.QCLOUD_PROJECT_DIR, pulumi.runtime.getRootDirectory(), process.cwd()];
  const dir = candidates.find((d): d is string => !!d && fs.existsSync(path.join(d, "Pulumi.yaml")));
  if (!dir)
    throw new Error(`no Pulumi.yaml in ${candidates.join(" or ")}: run the program through \`pulumi\``);
  return dir;
}

// Config is parsed and the host probed before any resource is registered: bad input touches nothing.
export = async () => {
  const source = runtimeSource();
  const model = loadProjectSite(projectDir(), pulumi.getStack(), source);
  // Decrypted by the engine; it stays out of every output but the secret ones that need it.
  const sealKey = pulumi.runtime.getConfig(SEAL_KEY_KEY);
  checkSealKey(model, sealKey, source.isSecret(SEAL_KEY_KEY));
  await preflight(model.name, model.file, model.host);

  const privateKey = pulumi.runtime.getConfig(SSH_KEY_KEY);
  const site = deploySite(model, {
    ...(privateKey === undefined ? {} : { sshPrivateKey: projectSecret(SSH_KEY_NAME) }),
    sshFiles: writeSshClientFiles(`${pulumi.getProject()}-${model.name}`, model.host, privateKey),
    configSecret: projectSecret,
    ...(sealKey === undefined ? {} : { sealKey }),
  });
  // The host key SSH checks (made here for an hcloud server): what `npm run restore --host-key` pins.
  return { ...site.outputs, hostKey: site.host.hostKey };
};
