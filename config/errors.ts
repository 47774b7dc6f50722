/** One problem in a stack file: where, and what was expected. */
export interface ConfigIssue {
  readonly file: string;
  /** Dotted path from the top of the file's `config:` map, e.g. `qui3tly-cloud:site.host.address`. */
  readonly path: string;
  readonly message: string;
}

export function formatIssue(issue: ConfigIssue): string {
  return `${issue.file}: \`${issue.path}\`: ${issue.message}`;
}

/** Thrown before any resource is registered; its message lists every problem, one a line. */
export class ConfigError extends Error {
  constructor(public readonly issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join("\n"));
    this.name = "ConfigError";
  }
}

/** Joins a path of keys and indexes as `a.b[0].c`. */
export function joinPath(parts: readonly PropertyKey[]): string {
  return parts
    .map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join("");
}
