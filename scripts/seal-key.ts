import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError } from "../config/errors";
import { SEAL_KEY_KEY } from "../config/schema";
import { fileSource } from "../config/source";
import { loadProjectSite } from "../model/estate";
import { sealKeyPair } from "../render/seal";
import { ROOT, flag } from "./cli";
import { withSealPublicKey } from "./stackFile";

/**
 * `npm run seal-key -- --stack <site> [--rotate]`: makes the site's sealing key pair (X25519, node:crypto), sets
 * the private half as the stack's secret config `qui3tly-cloud:sealKey` through the pulumi CLI (on its stdin: never
 * in a command line or a file) and writes the public half into `Pulumi.<site>.yaml` (`mesh.sealPublicKey`). The
 * private half is printed nowhere. The project is this checkout, or QCLOUD_PROJECT_DIR.
 */
const argv = process.argv.slice(2);
const stack = flag(argv, "stack");
const rotate = argv.includes("--rotate");
const dir = process.env.QCLOUD_PROJECT_DIR ?? ROOT;

function fail(message: string, code = 1): never {
  console.error(`seal-key: ${message}`);
  process.exit(code);
}

if (!stack) fail("usage: npm run seal-key -- --stack <site> [--rotate]", 2);
const file = path.join(dir, `Pulumi.${stack}.yaml`);
let controlPlane: string;
try {
  const model = loadProjectSite(dir, stack);
  if (model.controlPlane === model.name)
    fail(`\`${stack}\` is a control plane: it makes the keys, it needs none`);
  controlPlane = model.controlPlane;
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  fail(e.message);
}
if (fileSource(file).has(SEAL_KEY_KEY) && !rotate) {
  fail(
    `${path.basename(file)} already has \`${SEAL_KEY_KEY}\`: \`--rotate\` replaces the pair (then \`pulumi up --stack ${controlPlane}\` before \`${stack}\`'s next up)`,
  );
}

const pair = sealKeyPair();
const set = spawnSync("pulumi", ["-C", dir, "config", "set", "--secret", SEAL_KEY_KEY, "--stack", stack], {
  input: pair.privateKey,
  stdio: ["pipe", "inherit", "inherit"],
});
if (set.error || set.status !== 0) {
  fail(
    `\`pulumi config set --secret ${SEAL_KEY_KEY} --stack ${stack}\` failed (${set.error?.message ?? `exit ${set.status}`}): is the stack selected and logged in? Nothing was changed.`,
  );
}
// After the CLI, which rewrites the file: only the public key changes here.
fs.writeFileSync(file, withSealPublicKey(fs.readFileSync(file, "utf8"), pair.publicKey));
console.log(
  [
    `seal-key: ${stack}'s sealing key set (${SEAL_KEY_KEY}, secret); its public half is in ${path.basename(file)}:`,
    `  mesh.sealPublicKey: ${pair.publicKey}`,
    `next: commit ${path.basename(file)}, run \`pulumi up --stack ${controlPlane}\` (it seals ${stack}'s keys to it), then \`pulumi up --stack ${stack}\`.`,
  ].join("\n"),
);
