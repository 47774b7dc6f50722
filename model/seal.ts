import { ConfigError, joinPath, type ConfigIssue } from "../config/errors";
import { SEAL_KEY_KEY, SITE_KEY, X25519_KEY_B64 } from "../config/schema";
import type { Estate } from "../render/estate";
import { sealPublicKeyOf } from "../render/seal";
import type { SiteModel } from "../render/siteModel";

/**
 * The checks of the sealing keys (render/seal.ts) that need more than one stack file's text: made before any
 * resource is registered, each naming the file, the field and the command that fixes it.
 */

const PUBLIC_FIELD = joinPath([SITE_KEY, "mesh", "sealPublicKey"]);
const sealKeyCommand = (site: string) => `npm run seal-key -- --stack ${site}`;

/** The sites a control plane seals for: its members but itself, each with its public key. */
export function sealRecipients(estate: Estate, controlPlane: string): Record<string, string> {
  const issues: ConfigIssue[] = [];
  const recipients: Record<string, string> = {};
  for (const s of estate.sites) {
    if (s.controlPlane !== controlPlane || s.name === controlPlane) continue;
    if (s.mesh.sealPublicKey === undefined) {
      issues.push({
        file: s.file,
        path: PUBLIC_FIELD,
        message: `expected the public half of site \`${s.name}\`'s sealing key, to which \`${controlPlane}\` seals its keys: run \`${sealKeyCommand(s.name)}\``,
      });
    } else {
      recipients[s.name] = s.mesh.sealPublicKey;
    }
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return recipients;
}

/**
 * A site's own sealing key (`qui3tly-cloud:sealKey`, the decrypted config value) against its stack file: present
 * and secret on every site but a control plane, and the private half of `mesh.sealPublicKey`. Throws ConfigError.
 */
export function checkSealKey(
  model: Pick<SiteModel, "file" | "name" | "controlPlane" | "mesh">,
  sealKey: string | undefined,
  isSecret: boolean,
): void {
  if (model.controlPlane === model.name) return;
  const command = sealKeyCommand(model.name);
  const issue = (path: string, message: string) => {
    throw new ConfigError([{ file: model.file, path, message }]);
  };
  if (sealKey === undefined) {
    issue(
      SEAL_KEY_KEY,
      `missing secret: the private key that opens what \`${model.controlPlane}\` seals for this site; run \`${command}\` (then \`pulumi up --stack ${model.controlPlane}\`)`,
    );
  }
  if (!isSecret) {
    issue(
      SEAL_KEY_KEY,
      `expected a secret, found plain text: make a new pair with \`${command}\` (this one is exposed)`,
    );
  }
  if (!X25519_KEY_B64.test(sealKey!)) {
    issue(
      SEAL_KEY_KEY,
      `expected an X25519 private key: 32 bytes of base64 (44 characters); run \`${command}\``,
    );
  }
  if (model.mesh.sealPublicKey === undefined) {
    issue(PUBLIC_FIELD, `expected the public half of \`${SEAL_KEY_KEY}\`: run \`${command}\``);
  }
  if (sealPublicKeyOf(sealKey!) !== model.mesh.sealPublicKey) {
    issue(
      SEAL_KEY_KEY,
      `expected the private half of \`${PUBLIC_FIELD}\` (${model.mesh.sealPublicKey}); it is another key's: set the matching one, or run \`${command}\` and then \`pulumi up --stack ${model.controlPlane}\``,
    );
  }
}
