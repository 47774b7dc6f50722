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

/** Every string inside a JSON value, with its path. */
function strings(v: unknown, at: string, out: Secret[]): void {
  if (typeof v === "string") out.push({ value: v, source: at });
  else if (Array.isArray(v)) v.forEach((x, i) => strings(x, `${at}[${i}]`, out));
  else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) strings(x, `${at}.${k}`, out);
}

/**
 * The secret values of a deployment exported with `--show-secrets`: the strings inside every value Pulumi marks
 * secret (a secret object's every string: a secret record of keys holds secrets in each entry).
 */
export function deploymentSecrets(exported: unknown): Secret[] {
  const out: Secret[] = [];
  const walk = (v: unknown, at: string): void => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}[${i}]`));
    else if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (o[SECRET_SIG] !== undefined && "plaintext" in o) {
        const plain = o["plaintext"];
        strings(typeof plain === "string" ? parseOr(plain) : plain, at, out);
        return;
      }
      // Name each value by its resource, not by its index in the resource list.
      const here = typeof o["urn"] === "string" ? (o["urn"] as string) : at;
      for (const [k, x] of Object.entries(o)) walk(x, `${here}.${k}`);
    }
  };
  walk(exported, "");
  return significant(out);
}

/** `pulumi config --show-secrets --json`: the values of its secret keys. */
export function configSecrets(config: Record<string, { value?: unknown; secret?: boolean }>): Secret[] {
  const out: Secret[] = [];
  for (const [key, v] of Object.entries(config)) {
    if (v.secret && v.value !== undefined) strings(v.value, `config ${key}`, out);
  }
  return significant(out);
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
