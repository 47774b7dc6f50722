import { ConfigError } from "../config/errors";
import { fileSource } from "../config/source";
import { loadSite } from "../model/site";
import { stackFiles } from "./cli";

/** `npm run check [-- files...]`: validates stack files without the Pulumi CLI; exit 1 on any problem. */
const files = process.argv.slice(2);
let failed = 0;
for (const file of files.length ? files : stackFiles()) {
  try {
    const m = loadSite(fileSource(file));
    const containers = m.services.reduce((n, s) => n + s.containers.length, 0);
    console.log(`ok   ${m.file}: ${m.role}, ${m.services.length} services, ${containers} containers`);
  } catch (e) {
    failed++;
    if (!(e instanceof ConfigError)) throw e;
    console.error(`FAIL ${e.message.split("\n").join("\nFAIL ")}`);
  }
}
process.exit(failed ? 1 : 0);
