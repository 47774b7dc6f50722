import { stackFiles } from "./cli";
import { checkStackFiles } from "./stackCheck";

/**
 * `npm run check [-- files...]`: validates stack files without the Pulumi CLI, each on its own and together as
 * an estate (references between sites, tunnel addresses, flows); exit 1 on any problem. Without files, every
 * committed stack file; a named file is checked within the estate of its directory (scripts/stackCheck.ts).
 */
const files = process.argv.slice(2);
const r = checkStackFiles(files.length ? files : stackFiles());
for (const line of r.lines) {
  if (line.startsWith("ok ")) console.log(line);
  else console.error(line);
}
process.exit(r.status);
