import * as fs from "node:fs";
import * as path from "node:path";
import { LocalWorkspace, type Stack } from "@pulumi/pulumi/automation";
import { toolchainEnv } from "../../scripts/sandbox/sandbox";

const ROOT = path.resolve(__dirname, "../..");

/**
 * A throwaway JavaScript Pulumi project `name` in `tmp` running `program` (this repository's node_modules), on a
 * local file backend with the offline toolchain (scripts/pulumi-env.sh; without it, the toolchain's message): its
 * stack `stackName`.
 */
export async function programStack(
  tmp: string,
  name: string,
  program: string,
  stackName: string,
): Promise<Stack> {
  Object.assign(process.env, toolchainEnv(), {
    PULUMI_BACKEND_URL: `file://${path.join(tmp, "state")}`,
    PULUMI_CONFIG_PASSPHRASE: "test",
  });
  const dir = path.join(tmp, "project");
  fs.mkdirSync(path.join(tmp, "state"), { recursive: true });
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "Pulumi.yaml"), `name: ${name}\nruntime: nodejs\n`);
  fs.writeFileSync(path.join(dir, "package.json"), `{ "name": "${name}", "main": "index.js" }\n`);
  fs.writeFileSync(path.join(dir, "index.js"), program);
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  return LocalWorkspace.createOrSelectStack({ stackName, workDir: dir });
}
