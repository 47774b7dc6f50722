import YAML from "yaml";
import { SITE_KEY } from "../config/schema";

/**
 * A stack file's text with `mesh.sealPublicKey` set: only that value changes; comments, order and what Pulumi wrote
 * (salt, secure values) are kept.
 */
export function withSealPublicKey(text: string, publicKey: string): string {
  const doc = YAML.parseDocument(text);
  if (!doc.hasIn(["config", SITE_KEY])) throw new Error(`expected a \`config.${SITE_KEY}\` object`);
  doc.setIn(["config", SITE_KEY, "mesh", "sealPublicKey"], publicKey);
  return doc.toString();
}
