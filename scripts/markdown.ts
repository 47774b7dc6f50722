/**
 * Markdown and Mermaid text for generated documents, written the way Prettier prints them (aligned tables, one
 * blank line between blocks), so that `prettier --check` passes on what a generator writes.
 */

/** A table cell's text: a pipe would end the cell, a line break the row. */
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** An aligned table, as Prettier prints one: every column as wide as its widest cell; `right` columns of numbers. */
export function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  right: readonly number[] = [],
) {
  const all = [header, ...rows].map((r) => r.map(cell));
  const widths = header.map((_, i) => Math.max(3, ...all.map((r) => [...(r[i] ?? "")].length)));
  const pad = (s: string, i: number) =>
    right.includes(i)
      ? s.padStart(widths[i]! + s.length - [...s].length)
      : s.padEnd(widths[i]! + s.length - [...s].length);
  const line = (r: readonly string[]) => `| ${widths.map((_, i) => pad(r[i] ?? "", i)).join(" | ")} |`;
  const rule = `| ${widths.map((w, i) => (right.includes(i) ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`;
  return [line(all[0]!), rule, ...all.slice(1).map(line)].join("\n");
}

/** Inline code. */
export const code = (s: string | number) => `\`${s}\``;

/** A list of items, `a, b and c`. */
export function list(items: readonly string[]): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}

/** The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as dashes. */
export const anchor = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");

/**
 * Mermaid node ids: letters and digits only (no keyword such as `end`, no `o`/`x` edge heads after an arrow), one per
 * key, stable for a given order of calls.
 */
export class MermaidIds {
  private readonly ids = new Map<string, string>();
  private readonly taken = new Set<string>();

  id(key: string): string {
    const known = this.ids.get(key);
    if (known !== undefined) return known;
    const base = `n${key.replace(/[^A-Za-z0-9]/g, "")}`;
    let id = base;
    for (let i = 2; this.taken.has(id); i++) id = `${base}${i}`;
    this.ids.set(key, id);
    this.taken.add(id);
    return id;
  }
}

/** A quoted Mermaid label: `"` and `#` are Mermaid's entity syntax; `\n` becomes a line break. */
export const label = (s: string) =>
  `"${s.replace(/#/g, "#35;").replace(/"/g, "#quot;").replace(/\n/g, "<br/>")}"`;

/** A ```mermaid block. */
export const mermaid = (lines: readonly string[]) => ["```mermaid", ...lines, "```"].join("\n");

/** The ```mermaid blocks of a Markdown text, in order, each with the line its source starts on (1-based). */
export function mermaidBlocks(markdown: string): { line: number; source: string }[] {
  const blocks: { line: number; source: string }[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== "```mermaid") continue;
    const end = lines.findIndex((l, j) => j > i && l.trim() === "```");
    if (end < 0) throw new Error(`line ${i + 1}: a \`\`\`mermaid block that is never closed`);
    blocks.push({ line: i + 2, source: lines.slice(i + 1, end).join("\n") });
    i = end;
  }
  return blocks;
}
