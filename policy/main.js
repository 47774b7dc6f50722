// The policy pack's entry, run by @pulumi/pulumi's run-policy-pack (policy/analyzer).
//
// run-policy-pack registers ts-node with type checking (`typeCheck: true`), which would type-check the rules and
// every module they import on each preview: seconds per site. Type checking is CI's job (`tsc --noEmit`), so that
// registration is switched off (ts-node's own `enabled(false)`) and a transpile-only one with the project's
// tsconfig takes its place.
const path = require("node:path");
const tsnode = require("ts-node");

process[tsnode.REGISTER_INSTANCE]?.enabled(false);
tsnode.register({ transpileOnly: true, project: path.join(__dirname, "..", "tsconfig.json") });
require("./pack.ts");
