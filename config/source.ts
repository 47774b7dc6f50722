import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as runtimeConfigModule from "@pulumi/pulumi/runtime/config";
import YAML from "yaml";
import { ConfigError } from "./errors";

/** A stack's config, read either from its file (no engine) or from the running Pulumi program. */
export interface ConfigSource {
  /** The file errors name, e.g. `Pulumi.lady.yaml`. */
  readonly file: string;
  readonly stack: string;
  /** The plain value of a key (objects parsed); secrets are not decrypted here. */
  get(key: string): unknown;
  has(key: string): boolean;
  /** True when the value is stored encrypted (`pulumi config set --secret`). */
  isSecret(key: string): boolean;
}

/** The stack name a `Pulumi.<stack>.yaml` file belongs to. */
export function stackOfFile(file: string): string {
  const m = /^Pulumi\.(.+)\.ya?ml$/.exec(path.basename(file));
  if (!m?.[1]) {
    throw new ConfigError([
      { file, path: "(file name)", message: "expected a stack file named `Pulumi.<site>.yaml`" },
    ]);
  }
  return m[1];
}

/** Reads a stack file as `pulumi config` would see it, without decrypting anything. */
export function fileSource(file: string): ConfigSource {
  return textSource(file, fs.readFileSync(file, "utf8"));
}

/** A stack file's text (as it is, or as it will be written) as `pulumi config` would see it. */
export function textSource(file: string, text: string): ConfigSource {
  const stack = stackOfFile(file);
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new ConfigError([
      { file, path: "(file)", message: `expected a readable YAML file: ${(e as Error).message}` },
    ]);
  }
  const config = (doc as { config?: unknown } | null)?.config ?? {};
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new ConfigError([{ file, path: "config", message: "expected a map of config keys" }]);
  }
  return mapSource(path.basename(file), stack, config as Record<string, unknown>);
}

/** A stack's `config:` map as Pulumi writes it: `{ secure: ... }` marks an (encrypted) secret. */
export function mapSource(file: string, stack: string, map: Readonly<Record<string, unknown>>): ConfigSource {
  const isSecure = (v: unknown) => typeof v === "object" && v !== null && "secure" in v;
  return {
    file,
    stack,
    get: (key) => (isSecure(map[key]) ? undefined : map[key]),
    has: (key) => key in map,
    isSecret: (key) => isSecure(map[key]),
  };
}

// The SDK exports isConfigSecret at run time but not in its typings.
const runtimeConfig = runtimeConfigModule as unknown as { isConfigSecret(key: string): boolean };

/** The config of the running Pulumi program. */
export function runtimeSource(): ConfigSource {
  const stack = pulumi.getStack();
  const raw = (key: string) => pulumi.runtime.getConfig(key);
  return {
    file: `Pulumi.${stack}.yaml`,
    stack,
    get: (key) => {
      const v = raw(key);
      if (v === undefined || runtimeConfig.isConfigSecret(key)) return undefined;
      try {
        return JSON.parse(v);
      } catch {
        return v;
      }
    },
    has: (key) => raw(key) !== undefined,
    isSecret: (key) => runtimeConfig.isConfigSecret(key),
  };
}
