import { spawnSync } from "node:child_process";
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

/** The pulumi CLI on the project in `dir`, non-interactive, its output captured (up to `maxMiB`); `input` its stdin. */
export const pulumiIn =
  (dir: string, maxMiB = 256) =>
  (args: readonly string[], input?: string) =>
    spawnSync("pulumi", ["--non-interactive", "-C", dir, ...args], {
      encoding: "utf8",
      maxBuffer: maxMiB * 2 ** 20,
      ...(input === undefined ? {} : { input }),
    });
