import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";

/**
 * The layers, bottom to top: imports run one way, from the bottom up. A file imports its own layer or a lower one,
 * types included, and no two files import each other, even through others. A layer is a top-level folder, or the
 * entry point; scripts/, policy/ and test/ sit above them all, free to import anything (no layer imports them).
 * Checked here in a few lines rather than with madge or dependency-cruiser: either would add a large dependency tree
 * for what the TypeScript compiler, already a dependency, reads for us.
 */
const LAYERS = ["config", "render", "catalog", "model", "components", "stacks", "index.ts"];

const ROOT = path.resolve(__dirname, "..");

/** One import of a file: the specifier as written, and the file it resolves to (relative to the root). */
interface Import {
  readonly specifier: string;
  readonly file: string;
}

/** Each file (relative to the root, `/`-separated) and its relative imports. */
type Graph = ReadonlyMap<string, readonly Import[]>;

/** The relative specifiers of a file's text: `import`, `import type`, `export ... from`, `require()`, `import()`. */
function relativeImports(text: string): string[] {
  return ts
    .preProcessFile(text, true, true)
    .importedFiles.map((f) => f.fileName)
    .filter((f) => f.startsWith("."));
}

/** The top folder of a file, or `index.ts` for the entry point. */
const layerOf = (file: string) => file.split("/")[0]!;
/** Anything outside the layers (scripts/, test/) ranks above them all. */
const rank = (layer: string) => (LAYERS.includes(layer) ? LAYERS.indexOf(layer) : LAYERS.length);

/** Each import that goes up a layer: the file, the import, both layers. */
function layerViolations(graph: Graph): string[] {
  return [...graph].flatMap(([file, imports]) =>
    imports
      .filter((i) => rank(layerOf(i.file)) > rank(layerOf(file)))
      .map(
        (i) =>
          `${file} imports "${i.specifier}" (${i.file}): layer \`${layerOf(file)}\` may not import layer ` +
          `\`${layerOf(i.file)}\`, which is above it (${LAYERS.join(" -> ")})`,
      ),
  );
}

/** One cycle per strongly connected component (Tarjan), as a path that ends where it starts. */
function cycles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  const next = (v: string) => (graph.get(v) ?? []).map((i) => i.file).filter((w) => graph.has(w));
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of next(v)) {
      if (!index.has(w)) visit(w);
      if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, low.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component = new Set(stack.splice(stack.indexOf(v)));
    if (component.size > 1 || next(v).includes(v)) found.push(cycleThrough(v, component, next));
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

/** The shortest path from `start` back to itself within its component (breadth first). */
function cycleThrough(
  start: string,
  component: ReadonlySet<string>,
  next: (v: string) => string[],
): string[] {
  const prev = new Map<string, string>();
  const queue = [start];
  for (const v of queue) {
    for (const w of next(v)) {
      if (w === start) {
        const p = [v];
        while (p[0] !== start) p.unshift(prev.get(p[0]!)!);
        return [...p, start];
      }
      if (component.has(w) && !prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  throw new Error(`${start} is on no cycle`);
}

/** Every .ts file of the layers, with its relative imports resolved the way Node and tsc resolve them. */
function projectGraph(): Graph {
  const files = LAYERS.flatMap((l) =>
    l.endsWith(".ts")
      ? [l]
      : (fs.readdirSync(path.join(ROOT, l), { recursive: true }) as string[])
          .filter((f) => f.endsWith(".ts"))
          .map((f) => `${l}/${f.split(path.sep).join("/")}`),
  );
  const resolve = (file: string, specifier: string): string => {
    const base = path.posix.join(path.posix.dirname(file), specifier);
    const found = [`${base}.ts`, `${base}/index.ts`, base].find((f) =>
      fs.statSync(path.join(ROOT, f), { throwIfNoEntry: false })?.isFile(),
    );
    if (found === undefined) throw new Error(`${file}: "${specifier}" resolves to no file`);
    return found;
  };
  return new Map(
    files.sort().map((file) => [
      file,
      relativeImports(fs.readFileSync(path.join(ROOT, file), "utf8")).map((specifier) => ({
        specifier,
        file: resolve(file, specifier),
      })),
    ]),
  );
}

describe("the project's imports", () => {
  const graph = projectGraph();

  test("are read from every layer", () => {
    for (const layer of LAYERS) expect([...graph.keys()].some((f) => layerOf(f) === layer)).toBe(true);
    expect(graph.get("components/index.ts")?.length).toBeGreaterThan(0);
  });

  test("go to the same or a lower layer", () => {
    expect(layerViolations(graph)).toEqual([]);
  });

  test("have no cycle", () => {
    expect(cycles(graph).map((c) => c.join(" -> "))).toEqual([]);
  });
});

describe("the checker", () => {
  const graph = (edges: Record<string, readonly string[]>): Graph =>
    new Map(Object.entries(edges).map(([f, to]) => [f, to.map((t) => ({ specifier: `./${t}`, file: t }))]));

  test("reads type-only imports, re-exports, require() and import(), and only relative ones", () => {
    const text = [
      'import type { Estate } from "../render/estate";',
      'import { x } from "./a";',
      'export * from "./b";',
      'const c = require("./c");',
      'const d = import("../d");',
      'import * as fs from "node:fs";',
    ].join("\n");
    expect(relativeImports(text)).toEqual(["../render/estate", "./a", "./b", "./c", "../d"]);
  });

  test("names the file, the import and both layers of an import that goes up", () => {
    const g = graph({
      "render/a.ts": ["config/b.ts", "model/c.ts"],
      "model/c.ts": ["render/a.ts"],
      "stacks/d.ts": ["scripts/e.ts"],
      "index.ts": ["stacks/d.ts"],
    });
    expect(layerViolations(g)).toEqual([
      'render/a.ts imports "./model/c.ts" (model/c.ts): layer `render` may not import layer `model`, which is above it (config -> render -> catalog -> model -> components -> stacks -> index.ts)',
      'stacks/d.ts imports "./scripts/e.ts" (scripts/e.ts): layer `stacks` may not import layer `scripts`, which is above it (config -> render -> catalog -> model -> components -> stacks -> index.ts)',
    ]);
  });

  test("finds every cycle, within a layer too, and prints its path", () => {
    const g = graph({
      "model/a.ts": ["model/b.ts", "render/x.ts"],
      "model/b.ts": ["model/c.ts"],
      "model/c.ts": ["model/a.ts"],
      "render/x.ts": ["render/x.ts"],
      "render/y.ts": ["render/x.ts", "config/z.ts"],
    });
    expect(cycles(g)).toEqual([
      ["render/x.ts", "render/x.ts"],
      ["model/a.ts", "model/b.ts", "model/c.ts", "model/a.ts"],
    ]);
  });

  test("passes a graph that only goes down, without cycles", () => {
    const g = graph({
      "index.ts": ["stacks/s.ts", "config/c.ts"],
      "stacks/s.ts": ["model/m.ts", "render/r.ts"],
      "model/m.ts": ["catalog/k.ts", "render/r.ts"],
      "catalog/k.ts": ["render/r.ts"],
      "render/r.ts": ["config/c.ts"],
    });
    expect(layerViolations(g)).toEqual([]);
    expect(cycles(g)).toEqual([]);
  });
});
