// Parses Mermaid diagrams with the `mermaid` package's own parser (the grammar GitHub renders with), under Node:
// reads a JSON array of diagram sources on stdin, prints a JSON array of the same length, each null (it parses)
// or the parser's message. An ES module run as its own process: mermaid ships ES modules only, which Jest's
// CommonJS runtime cannot load (scripts/mermaid.ts runs it).
import DOMPurify from "dompurify";

// Without a DOM, DOMPurify is a stub without `addHook`/`sanitize`, which mermaid calls while parsing labels;
// sanitizing changes nothing a parser can reject, so identity stands in. (mermaid imports this same instance.)
DOMPurify.addHook ??= () => {};
DOMPurify.sanitize ??= (s) => s;
const { default: mermaid } = await import("mermaid");

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const source of JSON.parse(input)) {
  try {
    await mermaid.parse(source);
    results.push(null);
  } catch (e) {
    results.push(String(e?.message ?? e));
  }
}
process.stdout.write(JSON.stringify(results));
