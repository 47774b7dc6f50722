import { ConfigError } from "../config/errors";
import { fileSource } from "../config/source";
import { loadEstate } from "../model/estate";
import { sealRecipients } from "../model/seal";
import { loadSite } from "../model/site";
import { hostKeyWarning } from "../render/host";
import { stackFiles } from "./cli";

/**
 * `npm run check [-- files...]`: validates stack files without the Pulumi CLI, each on its own and together as
 * an estate (references between sites, tunnel addresses, flows); exit 1 on any problem.
 */
const files = process.argv.slice(2);
try {
  const sources = (files.length ? files : stackFiles()).map(fileSource);
  const estate = loadEstate(sources);
  // A control plane seals every site's keys to that site's public key: one missing fails its `up`, so fail here.
  for (const cp of estate.sites.filter((s) => s.controlPlane === s.name)) sealRecipients(estate, cp.name);
  for (const source of sources) {
    const m = loadSite(source, estate);
    const containers = m.services.reduce((n, s) => n + s.containers.length, 0);
    console.log(`ok   ${m.file}: ${m.role}, ${m.services.length} services, ${containers} containers`);
    const warning = hostKeyWarning(m.file, m.host);
    if (warning) console.error(`WARN ${warning}`);
  }
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  console.error(`FAIL ${e.message.split("\n").join("\nFAIL ")}`);
  process.exit(1);
}
