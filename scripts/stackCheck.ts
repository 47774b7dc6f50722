import * as path from "node:path";
import { ConfigError } from "../config/errors";
import { fileSource } from "../config/source";
import { capacity, capacityWarning } from "../model/capacity";
import { estateFilesFor, loadEstate } from "../model/estate";
import { sealRecipients } from "../model/seal";
import { loadSite } from "../model/site";
import { hostKeyWarning } from "../render/host";
import { standbyCertWarning } from "../render/traefik";

/** What `npm run check` prints, in order, and its exit status: `ok ` lines go to stdout, `WARN`/`FAIL` to stderr. */
export interface CheckResult {
  readonly status: 0 | 1;
  readonly lines: readonly string[];
}

/**
 * Checks the named stack files, each within the estate of its directory (every stack file there, and the named
 * file itself if it is not among them yet: a new site being written). Only the named files get an `ok` line or a
 * warning; a problem is a `FAIL` line naming the file and field at fault, whichever file of the estate that is,
 * since a named file cannot be checked without the sites it refers to.
 */
export function checkStackFiles(files: readonly string[]): CheckResult {
  const lines: string[] = [];
  try {
    const all = new Map(estateFilesFor(files).map((f) => [f, fileSource(f)]));
    const estate = loadEstate([...all.values()]);
    // A control plane seals every site's keys to that site's public key: one missing fails its `up`, so fail here.
    for (const cp of estate.sites.filter((s) => s.controlPlane === s.name)) sealRecipients(estate, cp.name);
    for (const file of new Set(files.map((f) => path.resolve(f)))) {
      const m = loadSite(all.get(file)!, estate);
      const containers = m.services.reduce((n, s) => n + s.containers.length, 0);
      lines.push(`ok   ${m.file}: ${m.role}, ${m.services.length} services, ${containers} containers`);
      const warning = hostKeyWarning(m.file, m.host);
      if (warning) lines.push(`WARN ${warning}`);
      const tight = capacityWarning(m.file, capacity(m));
      if (tight) lines.push(`WARN ${tight}`);
      const cert = standbyCertWarning(m);
      if (cert) lines.push(`WARN ${cert}`);
    }
    return { status: 0, lines };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { status: 1, lines: [...lines, ...e.message.split("\n").map((l) => `FAIL ${l}`)] };
  }
}
