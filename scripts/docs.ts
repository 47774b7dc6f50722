import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError } from "../config/errors";
import { ROOT } from "./cli";
import { ESTATE_DOC, estateModels, renderEstateDoc } from "./estateDoc";
import { mermaidBlocks } from "./markdown";
import { parseMermaid } from "./mermaid";

/** `npm run docs`: writes docs/estate.md from the project's stack files; refuses a diagram Mermaid cannot parse. */
try {
  const doc = renderEstateDoc(estateModels(ROOT));
  const blocks = mermaidBlocks(doc);
  const errors = parseMermaid(blocks.map((b) => b.source));
  const bad = blocks.flatMap((b, i) => (errors[i] ? [`${ESTATE_DOC}:${b.line}: ${errors[i]}`] : []));
  if (bad.length > 0) {
    console.error(`not written: a diagram does not parse\n${bad.join("\n")}`);
    process.exit(1);
  }
  fs.writeFileSync(path.join(ROOT, ESTATE_DOC), doc);
  console.log(`${ESTATE_DOC}: ${doc.split("\n").length} lines, ${blocks.length} diagrams`);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  console.error(e.message);
  process.exit(1);
}
