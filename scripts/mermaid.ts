import { spawnSync } from "node:child_process";
import * as path from "node:path";

/**
 * Parses Mermaid diagrams with the pinned `mermaid` package's own parser (scripts/mermaid-parse.mjs, in a node
 * process of its own: the package is ES modules only). Returns, for each source, null if it parses, else the
 * parser's message.
 */
export function parseMermaid(sources: readonly string[]): (string | null)[] {
  const r = spawnSync(process.execPath, [path.join(__dirname, "mermaid-parse.mjs")], {
    input: JSON.stringify(sources),
    encoding: "utf8",
    timeout: 60_000,
  });
  if (r.status !== 0) {
    throw new Error(
      `scripts/mermaid-parse.mjs failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}`,
    );
  }
  return JSON.parse(r.stdout) as (string | null)[];
}
