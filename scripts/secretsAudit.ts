import * as fs from "node:fs";
import * as path from "node:path";
import { createHash } from "node:crypto";

/**
 * What `npm run audit:secrets` checks: every secret a stack knows (the secret values of its state, its secret
 * config) must not appear in plain text anywhere it writes for people or other stacks to read.
 */

/** Pulumi's marker of a secret value in a state export (`pulumi stack export --show-secrets`). */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
/** Shorter strings are too likely to occur by chance (ports, names, `true`) to say anything. */
export const MIN_SECRET_LENGTH = 12;

/** A secret value and where it came from (a resource URN and property path, or a config key). */
export interface Secret {
  readonly value: string;
  readonly source: string;
}

/** Every string inside a JSON value, with its path (a secret nested in a secret: its value, not its marker). */
function strings(v: unknown, at: string, out: Secret[]): void {
  if (typeof v === "string") out.push({ value: v, source: at });
  else if (Array.isArray(v)) v.forEach((x, i) => strings(x, `${at}[${i}]`, out));
  else if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (o[SECRET_SIG] !== undefined) strings(unwrap(o), at, out);
    else for (const [k, x] of Object.entries(o)) strings(x, `${at}.${k}`, out);
  }
}

/** A secret's value: its `plaintext` (JSON) with --show-secrets, else its `value` (a nested secret). */
function unwrap(o: Record<string, unknown>): unknown {
  if (typeof o["plaintext"] === "string") return parseOr(o["plaintext"]);
  return o["plaintext"] ?? o["value"];
}

/**
 * The secret values of a deployment exported with `--show-secrets`: the strings inside every secret output of its
 * resources. Docker's resources are left out: they only echo values made elsewhere (passwords, keys, config
 * secrets, all collected where they are made), and they mark a whole list secret for one secret in it (every
 * `KEY=value` of a container's env), which would make `TZ=...` a secret.
 */
export function deploymentSecrets(exported: unknown): Secret[] {
  const out: Secret[] = [];
  const resources =
    (exported as { deployment?: { resources?: { urn: string; type: string; outputs?: unknown }[] } })
      .deployment?.resources ?? [];
  const walk = (v: unknown, at: string): void => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}[${i}]`));
    else if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (o[SECRET_SIG] !== undefined) strings(unwrap(o), at, out);
      else for (const [k, x] of Object.entries(o)) walk(x, `${at}.${k}`);
    }
  };
  for (const r of resources) if (!r.type.startsWith("docker:")) walk(r.outputs, `${r.urn}.outputs`);
  return significant(out);
}

/** An entry of `pulumi config --show-secrets --json`. */
export interface ConfigValue {
  readonly value?: unknown;
  readonly objectValue?: unknown;
  readonly secret?: boolean;
}

/** `pulumi config --show-secrets --json`: the values of its secret keys. */
export function configSecrets(config: Record<string, ConfigValue>): Secret[] {
  const out: Secret[] = [];
  for (const [key, v] of Object.entries(config)) {
    if (v.secret && v.value !== undefined) strings(v.value, `config ${key}`, out);
  }
  return significant(out);
}

/**
 * Leaves out what a stack's plain config declares: public by the operator's own word (a pinned host key travels in
 * the same secret connection as the private key).
 */
export function undeclared(secrets: readonly Secret[], plainConfig: Record<string, ConfigValue>): Secret[] {
  const plain: Secret[] = [];
  for (const [key, v] of Object.entries(plainConfig)) {
    // An object's `value` is its JSON; `objectValue`, the object.
    const value = v.objectValue ?? (typeof v.value === "string" ? parseOr(v.value) : v.value);
    if (!v.secret && value !== undefined) strings(value, key, plain);
  }
  const declared = new Set(plain.map((p) => p.value.trim()));
  return secrets.filter((s) => !declared.has(s.value));
}

function parseOr(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

/** Long enough to mean something; each value once (the first source kept). */
function significant(all: readonly Secret[]): Secret[] {
  const seen = new Map<string, Secret>();
  for (const s of all) {
    const value = s.value.trim();
    if (value.length >= MIN_SECRET_LENGTH && !seen.has(value)) seen.set(value, { value, source: s.source });
  }
  return [...seen.values()];
}

/** A secret found in plain text: never the value itself, only a fingerprint of it. */
export interface Leak {
  readonly where: string;
  readonly source: string;
  readonly fingerprint: string;
  readonly encoding: "plain" | "base64";
}

export const fingerprint = (value: string) =>
  `sha256:${createHash("sha256").update(value).digest("hex").slice(0, 12)}`;

/** Where each secret occurs in `texts` (name -> content), as is or base64-encoded (how files and user data travel). */
export function findLeaks(secrets: readonly Secret[], texts: ReadonlyMap<string, string>): Leak[] {
  const leaks: Leak[] = [];
  for (const [where, text] of texts) {
    for (const s of secrets) {
      for (const [needle, encoding] of [
        [s.value, "plain"],
        [Buffer.from(s.value).toString("base64"), "base64"],
      ] as const) {
        if (text.includes(needle)) {
          leaks.push({ where, source: s.source, fingerprint: fingerprint(s.value), encoding });
        }
      }
    }
  }
  return leaks;
}

/** Every regular file under `dir` (a render output, a file backend), by its path. */
export function readTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.set(p, fs.readFileSync(p, "utf8"));
    }
  };
  walk(dir);
  return out;
}
