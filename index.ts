import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { preflight } from "./components";
import { SSH_KEY_KEY, SSH_KEY_NAME } from "./config/schema";
import { runtimeSource } from "./config/source";
import { loadSite } from "./model/site";
import { deploySite, projectSecret } from "./stacks/site";

// Config is parsed and the host probed before any resource is registered: bad input touches nothing.
export = async () => {
  const model = loadSite(runtimeSource());
  await preflight(model.name, model.file, model.host);

  const keyFile = writeSshKey(model.name);
  const site = deploySite(model, {
    ...(keyFile ? { sshPrivateKey: projectSecret(SSH_KEY_NAME), sshPrivateKeyFile: keyFile } : {}),
    configSecret: projectSecret,
  });
  return { ...site };
};

/**
 * Docker's ssh client reads keys from files, not from Pulumi: the secret key goes to a 0600 file in a 0700
 * directory, at a path stable across runs (the provider's inputs must not change from run to run).
 */
function writeSshKey(site: string): string | undefined {
  const key = pulumi.runtime.getConfig(SSH_KEY_KEY);
  if (key === undefined) return undefined;
  const dir = path.join(os.tmpdir(), `qcloud-ssh-${os.userInfo().uid}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `${pulumi.getProject()}-${site}.key`);
  fs.writeFileSync(file, key.endsWith("\n") ? key : `${key}\n`, { mode: 0o600 });
  return file;
}
