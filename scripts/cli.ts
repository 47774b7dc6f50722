import * as fs from "node:fs";
import * as path from "node:path";

/** The repository root: stack files live here. */
export const ROOT = path.resolve(__dirname, "..");

/** Every committed stack file, sorted. */
export function stackFiles(): string[] {
  return fs
    .readdirSync(ROOT)
    .filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f))
    .sort()
    .map((f) => path.join(ROOT, f));
}

/** `--name value` from argv. */
export function flag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}
