import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError } from "../config/errors";
import { loadProjectSite } from "../model/estate";
import { renderSiteFiles } from "../render/site";
import { ROOT, flag } from "./cli";

/** `npm run render -- --stack <site> [--out <dir>]`: writes every generated file of a site for review. */
const argv = process.argv.slice(2);
const stack = flag(argv, "stack");
if (!stack) {
  console.error("usage: npm run render -- --stack <site> [--out <dir>]");
  process.exit(2);
}
const out = path.resolve(flag(argv, "out") ?? path.join(ROOT, "out", stack));
try {
  const files = renderSiteFiles(loadProjectSite(ROOT, stack));
  // Clear only a directory this command wrote before (or an empty one): `--out .` must not wipe a checkout.
  const marker = path.join(out, ".qcloud-render");
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0 && !fs.existsSync(marker)) {
    console.error(
      `${out}: not empty and not written by \`npm run render\`; expected a new or earlier --out directory`,
    );
    process.exit(2);
  }
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(marker, "written by npm run render; this directory is replaced on the next render\n");
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(out, rel)), { recursive: true });
    fs.writeFileSync(path.join(out, rel), content);
  }
  console.log(`${Object.keys(files).length} files in ${path.relative(process.cwd(), out) || "."}`);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  console.error(e.message);
  process.exit(1);
}
