import * as path from "node:path";

/**
 * The estate's CrossGuard policy pack (issue 12): what scripts/estate.ts and CI pass to a preview or an update.
 *
 *   stack.preview({ policyPacks: [POLICY_PACK], policyPackConfigs: [file] })   // Automation API
 *   pulumi preview --policy-pack <POLICY_PACK> --policy-pack-config <file>      // CLI
 *
 * where `file` holds `JSON.stringify(policyConfig(model))` for the stack's site. A violation fails the run before
 * anything changes (the CLI exits 1 and prints the rule's name and message under "Policies:").
 *
 * POLICY_PACK is an executable file, not the pack's directory: see policy/analyzer for why.
 */
export const POLICY_PACK = path.join(__dirname, "analyzer");
export { policyConfig, type PolicyConfig } from "./config";
export { ALLOWED, POLICIES } from "./rules";
