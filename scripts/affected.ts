import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { SITE_KEY } from "../config/schema";
import { ROOT } from "./cli";

/**
 * `npm run affected -- <base-ref>`: the sites a change since `<base-ref>` affects, comma-separated on stdout
 * (control planes first, then by name; an empty line for none), and why each, on stderr. What a PR previews:
 * `npm run estate -- preview --sites "$(npm run -s affected -- origin/main)"`.
 *
 * `npm run affected -- -` reads the changed file names from stdin instead (one a line, as `git diff --name-only`
 * prints them); the base's stack files are then unknown, so a deleted stack file affects every control plane.
 *
 * The rules, read from how the program builds a site (model/estate.ts: every site is loaded within the estate of all
 * stack files):
 * - program code, the catalog, the policy pack, the project and its dependencies (anything not listed below): every
 *   site. An unknown file counts as code: a preview too many costs minutes, one too few lets a change through
 *   unreviewed.
 * - `Pulumi.<site>.yaml` (added, changed or deleted): that site (unless deleted), and, in the file's old and new
 *   versions alike,
 *   - its control plane: its scrapes, probes, tailnet policy, pre-auth and WireGuard keys come from every stack file;
 *   - the site that keeps its backup repository (`backup.target`, default its control plane);
 *   - the primaries it runs secondaries of (`services.<name>.follows`: their shares, their Traefik's peers);
 *   - with `mesh.wireguard`, every other tunnel site of its control plane (a full mesh: render/wireguard.ts);
 *   - for a control plane, every site reporting to it (their tailnet names are on its domain, its flows decide their
 *     egress nodes, its first services site keeps its backups);
 *   - a file that cannot be read (broken YAML, no role): every control plane, and the preview says what is wrong.
 * - docs, tests, README and other Markdown, `.github/`, `.ci/`, the sandbox, benchmarks, linters' and test runners'
 *   configs, renovate.json: nothing.
 */

/** Files that change no site: what a PR preview can skip. */
const NO_SITE = [
  /^docs\//,
  /^test\//,
  /^\.github\//,
  /^\.ci\//,
  /\.md$/i,
  /^scripts\/sandbox\//,
  /^scripts\/bench[^/]*\.ts$/,
  /^scripts\/(docs|estateDoc|markdown|mermaid)\.ts$|^scripts\/mermaid-parse\.mjs$/,
  /^scripts\/(ci|mesh|monitoring)-tools\.sh$/,
  /^(eslint\.config\.mjs|jest(\.[a-z]+)?\.config\.js|\.prettierrc\.json|\.prettierignore|\.gitignore|renovate\.json|LICENSE)$/,
];

/** `Pulumi.<site>.yaml` at the project's root (not `Pulumi.yaml`, the project). */
const STACK_FILE = /^Pulumi\.([^./]+)\.ya?ml$/;

/** What one changed file is. */
export type FileKind = { kind: "stack"; site: string } | { kind: "code" } | { kind: "none" };

/** What a changed file (a path relative to the repository root, `/`-separated) touches. */
export function classify(file: string): FileKind {
  const f = file.replace(/^\.\//, "");
  if (f === "" || path.isAbsolute(f) || f.split("/").includes("..")) {
    throw new Error(
      `\`${file}\`: expected a path relative to the repository root, as \`git diff --name-only\` prints`,
    );
  }
  const stack = STACK_FILE.exec(f);
  if (stack) return { kind: "stack", site: stack[1]! };
  return NO_SITE.some((re) => re.test(f)) ? { kind: "none" } : { kind: "code" };
}

/** A site as far as its neighbours go: what its stack file says of its role, control plane, backups and tunnel. */
export interface SiteLinks {
  readonly name: string;
  /** Undefined when the file cannot be read: then its neighbours are unknown. */
  readonly role?: string;
  /** Its control plane: itself for a control plane. */
  readonly controlPlane?: string;
  /** `backup.target`, when the file names one. */
  readonly backupTarget?: string;
  /** It has `mesh.wireguard`: a tunnel site. */
  readonly tunnel: boolean;
  /** The sites it runs services as a secondary of (`services.<name>.follows`), sorted. */
  readonly follows?: readonly string[];
}

/**
 * Reads a stack file's text loosely: a broken file still names its site (its neighbours unknown), so the preview
 * runs and shows the file's real error instead of this script failing first.
 */
export function siteLinks(site: string, text: string): SiteLinks {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch {
    return { name: site, tunnel: false };
  }
  const s = (doc as { config?: Record<string, unknown> } | null)?.config?.[SITE_KEY] as
    | {
        role?: unknown;
        controlPlane?: unknown;
        backup?: { target?: unknown };
        mesh?: { wireguard?: unknown };
        services?: Record<string, unknown>;
      }
    | undefined;
  if (typeof s !== "object" || s === null || typeof s.role !== "string") return { name: site, tunnel: false };
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const controlPlane = s.role === "control-plane" ? site : str(s.controlPlane);
  const backupTarget = str(s.backup?.target);
  const follows = [
    ...new Set(
      Object.values(s.services ?? {}).flatMap((v) => {
        const primary = str((v as { follows?: unknown } | null)?.follows);
        return primary === undefined ? [] : [primary];
      }),
    ),
  ].sort();
  return {
    name: site,
    role: s.role,
    ...(controlPlane === undefined ? {} : { controlPlane }),
    ...(backupTarget === undefined ? {} : { backupTarget }),
    ...(follows.length > 0 ? { follows } : {}),
    tunnel: s.mesh?.wireguard !== undefined && s.mesh?.wireguard !== null,
  };
}

/** Every site of an estate by name: the stack files of one side of the change. */
export type Links = ReadonlyMap<string, SiteLinks>;

/** The sites a change to `site`'s stack file reaches in one side's estate (not the site itself), with why. */
function neighbours(site: SiteLinks, estate: Links, unknown = "cannot be read"): Array<[string, string]> {
  const file = `Pulumi.${site.name}.yaml`;
  if (site.role === undefined) {
    return [...estate.values()]
      .filter((s) => s.role === "control-plane")
      .map((s) => [s.name, `a control plane, and which is ${site.name}'s is unknown: ${file} ${unknown}`]);
  }
  const out: Array<[string, string]> = [];
  const cp = site.controlPlane;
  if (cp !== undefined && cp !== site.name) out.push([cp, `the control plane of ${site.name} (${file})`]);
  const target = site.backupTarget ?? (site.role === "control-plane" ? undefined : cp);
  if (target !== undefined && target !== cp) out.push([target, `keeps ${site.name}'s backups (${file})`]);
  // Its primaries: their shares, their Traefik's peers, their forwarded ports come from their secondaries.
  for (const p of site.follows ?? [])
    if (p !== cp && p !== site.name) out.push([p, `the primary of a secondary on ${site.name} (${file})`]);
  for (const s of estate.values()) {
    if (s.name === site.name) continue;
    if (site.role === "control-plane" && s.controlPlane === site.name) {
      out.push([s.name, `reports to ${site.name} (${file})`]);
    } else if (site.tunnel && s.tunnel && cp !== undefined && s.controlPlane === cp && s.name !== cp) {
      out.push([s.name, `a WireGuard peer of ${site.name} (${file})`]);
    }
  }
  return out;
}

/** The result: the sites to preview, in order, each with its reasons. */
export interface Affected {
  /** Control planes first, then by name; only sites whose stack file exists after the change. */
  readonly sites: readonly string[];
  readonly reasons: ReadonlyMap<string, readonly string[]>;
  /** Stack files the change deletes: their stacks stay in the backend until removed by hand. */
  readonly deleted: readonly string[];
}

/**
 * The sites a change affects. `head` is the estate after the change (every stack file in the work tree), `base`
 * before it (undefined when unknown: a deleted stack file then reaches every control plane of `head`).
 */
export function affectedSites(changed: readonly string[], head: Links, base?: Links): Affected {
  const reasons = new Map<string, string[]>();
  const add = (site: string, why: string) => {
    if (!head.has(site)) return; // no stack file after the change: nothing to preview
    const list = reasons.get(site) ?? [];
    if (!list.includes(why)) list.push(why);
    reasons.set(site, list);
  };
  const deleted: string[] = [];
  const code: string[] = [];
  for (const file of changed) {
    const k = classify(file);
    if (k.kind === "code") code.push(file);
    if (k.kind !== "stack") continue;
    const now = head.get(k.site);
    const before = base?.get(k.site);
    if (now) add(k.site, `${file} changed`);
    else deleted.push(k.site);
    if (now) for (const [s, why] of neighbours(now, head)) add(s, why);
    if (before) for (const [s, why] of neighbours(before, base!)) add(s, why);
    if (!now && !before) {
      // Deleted, and its old version unknown: its control plane is one of these.
      for (const [s, why] of neighbours(
        { name: k.site, tunnel: false },
        head,
        "is deleted, its old version not read",
      )) {
        add(s, why);
      }
    }
  }
  if (code.length > 0) {
    const shown = code.slice(0, 3).join(", ") + (code.length > 3 ? ` and ${code.length - 3} more` : "");
    for (const s of head.keys()) add(s, `program code changed (${shown})`);
  }
  const cpFirst = (a: string, b: string) =>
    Number(head.get(b)?.role === "control-plane") - Number(head.get(a)?.role === "control-plane") ||
    a.localeCompare(b);
  return { sites: [...reasons.keys()].sort(cpFirst), reasons, deleted: deleted.sort() };
}

/** The estate of stack files given as `file name -> text`. */
export function linksOf(files: ReadonlyMap<string, string>): Links {
  const out = new Map<string, SiteLinks>();
  for (const [file, text] of files) {
    const m = STACK_FILE.exec(file);
    if (m) out.set(m[1]!, siteLinks(m[1]!, text));
  }
  return out;
}

function git(args: readonly string[]): string {
  try {
    return execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`git ${args.join(" ")} failed: ${(err.stderr || err.message).trim()}`);
  }
}

function main(argv: readonly string[]): void {
  if (argv.length !== 1 || argv[0]!.startsWith("--")) {
    throw new Error(
      "usage: npm run affected -- <base-ref>   (or `-` to read the changed file names from stdin); got " +
        (argv.length ? argv.map((a) => `\`${a}\``).join(" ") : "no argument"),
    );
  }
  const headFiles = new Map(
    fs
      .readdirSync(ROOT)
      .filter((f) => STACK_FILE.test(f))
      .map((f) => [f, fs.readFileSync(path.join(ROOT, f), "utf8")] as const),
  );
  let changed: string[];
  let base: Links | undefined;
  if (argv[0] === "-") {
    changed = fs.readFileSync(0, "utf8").split("\n");
  } else {
    const ref = argv[0]!;
    try {
      git(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]);
    } catch {
      throw new Error(
        `base ref \`${ref}\` is not a commit here (fetched? in CI: actions/checkout with fetch-depth: 0)`,
      );
    }
    // Since the merge base: what the branch changed, not what the base moved on to since.
    const mergeBase = git(["merge-base", ref, "HEAD"]).trim();
    changed = git(["diff", "--name-only", "--no-renames", mergeBase, "HEAD"]).split("\n");
    const baseFiles = new Map(
      git(["ls-tree", "--name-only", mergeBase])
        .split("\n")
        .filter((f) => STACK_FILE.test(f))
        .map((f) => [f, git(["show", `${mergeBase}:${f}`])] as const),
    );
    base = linksOf(baseFiles);
  }
  const result = affectedSites(
    changed.map((f) => f.trim()).filter((f) => f !== ""),
    linksOf(headFiles),
    base,
  );
  for (const s of result.sites) console.error(`affected: ${s}: ${result.reasons.get(s)!.join("; ")}`);
  for (const s of result.deleted) {
    console.error(
      `affected: Pulumi.${s}.yaml is deleted: its stack and resources stay until pulumi destroy --stack ${s} and pulumi stack rm ${s}`,
    );
  }
  if (result.sites.length === 0) console.error("affected: no site (docs, tests or CI files only)");
  console.log(result.sites.join(","));
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error(`affected: ${(e as Error).message}`);
    process.exit(1);
  }
}
