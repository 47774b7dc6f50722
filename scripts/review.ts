import type { EngineEvent, OpType, StepEventMetadata } from "@pulumi/pulumi/automation";

/**
 * What a reviewer reads of an estate preview: per site the counts, every replaced or deleted resource in plain words
 * (what touches data first), policy refusals, then the engine's own diff folded under it. Pure: it takes what the
 * engine reported (`scripts/estateRun.ts` collects it) and never sees a secret's value, since the engine masks them
 * in its events and its diff; a changed secret is said to be changed.
 */

export type SiteResult = "ok" | "changes" | "drift" | "failed" | "skipped";

/** One change the engine plans (or made), as its step event says. */
export interface Change {
  readonly op: OpType;
  readonly urn: string;
  readonly type: string;
  readonly old?: StepEventMetadata["old"];
  readonly new?: StepEventMetadata["new"];
  /** The properties that differ (`replaces` first when it is a replacement). */
  readonly keys: readonly string[];
}

export interface PolicyViolation {
  readonly policy: string;
  readonly level: "warning" | "mandatory";
  readonly urn?: string;
  readonly message: string;
}

export interface Counts {
  create: number;
  update: number;
  replace: number;
  delete: number;
  same: number;
}

export interface SiteReport {
  readonly site: string;
  readonly result: SiteResult;
  readonly counts: Counts;
  readonly durationMs: number;
  readonly changes: readonly Change[];
  readonly policy: readonly PolicyViolation[];
  /** Why it failed, or why it was skipped. */
  readonly error?: string;
  /** The engine's text diff (`pulumi preview --diff`, no colour). */
  readonly diff?: string;
}

/** GitHub refuses a comment (and an issue body) over 65536 characters. */
export const GITHUB_COMMENT_LIMIT = 65536;

/** Ops that change nothing. */
const UNCHANGED = new Set<OpType>(["same", "read", "refresh", "discard"]);
/** A replacement shows as three steps; `replace` stands for them. */
const REPLACE_PARTS = new Set<OpType>(["create-replacement", "delete-replaced", "read-replacement"]);

export const emptyCounts = (): Counts => ({ create: 0, update: 0, replace: 0, delete: 0, same: 0 });

/** The changes worth naming among a run's step events (one per resource). */
export function changesOf(events: readonly EngineEvent[]): Change[] {
  const byUrn = new Map<string, Change>();
  for (const e of events) {
    const m = e.resourcePreEvent?.metadata;
    if (!m || UNCHANGED.has(m.op) || REPLACE_PARTS.has(m.op)) continue;
    const keys = [...new Set([...(m.diffs ?? []), ...(m.keys ?? [])])];
    byUrn.set(m.urn, {
      op: m.op,
      urn: m.urn,
      type: m.type,
      ...(m.old ? { old: m.old } : {}),
      ...(m.new ? { new: m.new } : {}),
      keys,
    });
  }
  return [...byUrn.values()];
}

/** Policy violations reported during a run. */
export function violationsOf(events: readonly EngineEvent[]): PolicyViolation[] {
  return events.flatMap((e) => {
    const p = e.policyEvent;
    if (!p) return [];
    return [
      {
        policy: p.policyName,
        level: p.enforcementLevel,
        ...(p.resourceUrn ? { urn: p.resourceUrn } : {}),
        // The engine's colour tags (`<{%fg 1%}>`) out, on one line.
        message: p.message
          .replace(/<\{%[^%]*%\}>/g, "")
          .trim()
          .replace(/\s*\n\s*/g, " "),
      },
    ];
  });
}

/** The resource's name in its URN (its last part). */
export const urnName = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);

/** The resource's name in its URN, without its site's prefix (`lady-nextcloud-db` -> `nextcloud-db`). */
export function shortName(site: string, urn: string): string {
  const name = urnName(urn);
  return name.startsWith(`${site}-`) ? name.slice(site.length + 1) : name;
}

const KINDS: Readonly<Record<string, string>> = {
  "docker:index/container:Container": "container",
  "docker:index/volume:Volume": "volume",
  "docker:index/network:Network": "network",
  "docker:index/remoteImage:RemoteImage": "image",
  "random:index/randomPassword:RandomPassword": "generated password",
  "command:remote:Command": "remote command",
  "command:remote:CopyToRemote": "copied file",
  "hcloud:index/server:Server": "server",
  "hcloud:index/firewall:Firewall": "firewall",
  "hcloud:index/sshKey:SshKey": "SSH key",
};

/** A resource type in plain words: `container`, `volume` ... or the component's own type name. */
export function kindOf(type: string): string {
  const known = KINDS[type];
  if (known) return known;
  if (type.startsWith("pulumi:providers:")) return `${type.slice("pulumi:providers:".length)} provider`;
  return type.slice(type.lastIndexOf(":") + 1).replace(/^./, (c) => c.toLowerCase());
}

const VOLUME = "docker:index/volume:Volume";
const CONTAINER = "docker:index/container:Container";
const IMAGE = "docker:index/remoteImage:RemoteImage";

const isSecret = (v: unknown): boolean =>
  v === "[secret]" || (typeof v === "object" && v !== null && "4dabf18193072939515e22adb298388d" in v);

/** The named volumes a container mounts (its inputs' `volumes`). */
function mountedVolumes(c: Change): string[] {
  const inputs = (c.old?.inputs ?? c.new?.inputs ?? {}) as { volumes?: unknown };
  const list = Array.isArray(inputs.volumes) ? (inputs.volumes as { volumeName?: unknown }[]) : [];
  return list.map((v) => v.volumeName).filter((n): n is string => typeof n === "string");
}

/** `postgres:16.4@sha256:...` -> `postgres:16.4`; the repository alone for matching. */
const shortRef = (ref: string) => ref.replace(/@sha256:[0-9a-f]+$/, "");
const repository = (ref: string) => shortRef(ref).replace(/:[^:/]+$/, "");

/** "image postgres:16.4 -> postgres:16.6", from the image steps of the same run, when the container's image changed. */
function imageChange(c: Change, all: readonly Change[]): string | undefined {
  if (!c.keys.includes("image")) return undefined;
  const oldId = (c.old?.inputs as { image?: unknown } | undefined)?.image;
  const oldImage = all.find(
    (x) => x.type === IMAGE && (x.old?.outputs as { imageId?: unknown } | undefined)?.imageId === oldId,
  );
  const oldRef = (oldImage?.old?.inputs as { name?: unknown } | undefined)?.name;
  if (typeof oldRef !== "string") return "image";
  const newImage = all.find(
    (x) =>
      x.type === IMAGE &&
      x.op === "create" &&
      typeof (x.new?.inputs as { name?: unknown } | undefined)?.name === "string" &&
      repository((x.new!.inputs as { name: string }).name) === repository(oldRef),
  );
  const newRef = (newImage?.new?.inputs as { name?: string } | undefined)?.name;
  return newRef ? `image ${shortRef(oldRef)} -> ${shortRef(newRef)}` : `image ${shortRef(oldRef)} changed`;
}

/** What changed, in a few words: the image, else the properties (secret ones said to be secret, never shown). */
function what(c: Change, all: readonly Change[]): string {
  const image = imageChange(c, all);
  const others = c.keys.filter((k) => k !== "image");
  const props = others.map((k) => {
    const root = k.split(/[.[]/)[0]!;
    const before = (c.old?.inputs as Record<string, unknown> | undefined)?.[root];
    const after = (c.new?.inputs as Record<string, unknown> | undefined)?.[root];
    return isSecret(before) || isSecret(after) ? `${root} (secret)` : root;
  });
  const parts = [...(image ? [image] : []), ...new Set(props)];
  return parts.length ? ` (${parts.join(", ")})` : "";
}

export interface Line {
  readonly dataTouching: boolean;
  readonly text: string;
}

const VERBS: Partial<Record<OpType, string>> = {
  create: "is created",
  update: "is updated",
  replace: "is replaced",
  delete: "is deleted",
  import: "is imported",
};

/** A change in plain words, and whether it touches data. */
export function describe(site: string, c: Change, all: readonly Change[]): Line {
  const name = `${kindOf(c.type)} \`${shortName(site, c.urn)}\``;
  const gone = c.op === "replace" || c.op === "delete";
  const protectedNote =
    gone && c.old?.protect ? "; it is protected: `up` refuses until it is unprotected" : "";
  if (c.type === VOLUME && gone) {
    const volume = `${site}: volume \`${shortName(site, c.urn)}\``;
    const text =
      c.op === "replace"
        ? `${volume} is replaced: a new, empty volume takes its place`
        : c.old?.retainOnDelete
          ? `${volume} leaves the stack; its data stays on the server (retained on delete) until it is pruned by hand`
          : `${volume} is deleted, with its data`;
    return { dataTouching: true, text: `${text}${protectedNote}` };
  }
  const base = `${site}: ${name} ${VERBS[c.op] ?? c.op}${c.op === "update" || c.op === "replace" ? what(c, all) : ""}`;
  if (c.type === CONTAINER && gone) {
    const volumes = mountedVolumes(c);
    if (volumes.length) {
      const lost = new Set(
        all
          .filter((x) => x.type === VOLUME && (x.op === "delete" || x.op === "replace"))
          .map((x) => x.old?.inputs?.name),
      );
      const kept = volumes.filter((v) => !lost.has(v));
      const keptText = kept.length
        ? `; ${kept.length === 1 ? "its volume" : "its volumes"} ${kept.map((v) => `\`${v}\``).join(", ")} ${kept.length === 1 ? "is" : "are"} kept`
        : "";
      return { dataTouching: true, text: `${base}${keptText}${protectedNote}` };
    }
  }
  return { dataTouching: !!protectedNote, text: `${base}${protectedNote}` };
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function countsText(c: Counts): string {
  const parts = [
    c.create && `${c.create} to create`,
    c.update && `${c.update} to update`,
    c.replace && `${c.replace} to replace`,
    c.delete && `${c.delete} to delete`,
  ].filter(Boolean);
  return parts.length ? parts.join(", ") : "no changes";
}

const RESULT_WORDS: Readonly<Record<SiteResult, string>> = {
  ok: "no changes",
  changes: "changes",
  drift: "drift",
  failed: "**failed**",
  skipped: "skipped",
};

/** The summary table, shared by the terminal (plain) and the markdown. */
export function table(reports: readonly SiteReport[]): string[][] {
  return [
    ["site", "create", "update", "replace", "delete", "same", "duration", "result"],
    ...reports.map((r) => [
      r.site,
      String(r.counts.create),
      String(r.counts.update),
      String(r.counts.replace),
      String(r.counts.delete),
      String(r.counts.same),
      `${(r.durationMs / 1000).toFixed(1)} s`,
      r.result,
    ]),
  ];
}

const cell = (s: string) => s.replace(/\|/g, "\\|");

/**
 * The review in GitHub markdown: data-touching changes and policy refusals first, every replaced or deleted
 * resource named, the rest counted, then each site's diff folded; cut to `limit` with the summary kept.
 */
export function reviewMarkdown(
  title: string,
  reports: readonly SiteReport[],
  limit: number = GITHUB_COMMENT_LIMIT,
): string {
  const head: string[] = [`### ${title}`, ""];
  const rows = table(reports);
  head.push(`| ${rows[0]!.join(" | ")} |`, `|${rows[0]!.map(() => " --- ").join("|")}|`);
  for (const [i, r] of rows.slice(1).entries()) {
    head.push(`| ${r.slice(0, -1).map(cell).join(" | ")} | ${RESULT_WORDS[reports[i]!.result]} |`);
  }
  head.push("");

  const lines = reports.map((r) => ({ r, lines: r.changes.map((c) => describe(r.site, c, r.changes)) }));
  // Volumes first: what happens to the data, then to what holds it.
  const data = lines
    .flatMap(({ r, lines: l }) => l.map((x, i) => ({ x, volume: r.changes[i]!.type === VOLUME })))
    .filter(({ x }) => x.dataTouching)
    .sort((a, b) => Number(b.volume) - Number(a.volume))
    .map(({ x }) => x);
  if (data.length) {
    head.push("#### :warning: Touches data", "", ...data.map((l) => `- ${l.text}`), "");
  }
  const refused = reports.flatMap((r) =>
    r.policy.map((p) => ({ site: r.site, p })).filter(({ p }) => p.level === "mandatory"),
  );
  if (refused.length) {
    head.push(
      "#### :no_entry: Refused by policy",
      "",
      ...refused.map(
        ({ site, p }) =>
          `- ${site}: \`${p.policy}\`${p.urn ? ` on ${kindOf(typeOfUrn(p.urn))} \`${shortName(site, p.urn)}\`` : ""}: ${p.message}`,
      ),
      "",
    );
  }
  for (const { r, lines: l } of lines) {
    head.push(
      `#### ${r.site}: ${r.result === "failed" || r.result === "skipped" ? r.result : countsText(r.counts)}`,
    );
    head.push("");
    if (r.error) head.push("```", r.error.trim(), "```", "");
    const named = l.filter((_, i) => ["replace", "delete"].includes(r.changes[i]!.op));
    if (named.length) head.push(...named.map((x) => `- ${x.text}`));
    const rest = r.changes.filter((c) => !["replace", "delete"].includes(c.op));
    const byOp = new Map<OpType, string[]>();
    for (const c of rest) {
      byOp.set(c.op, [...(byOp.get(c.op) ?? []), `${kindOf(c.type)} \`${shortName(r.site, c.urn)}\``]);
    }
    for (const [op, names] of byOp) {
      const verb = (VERBS[op] ?? op).replace(/^is /, names.length === 1 ? "is " : "are ");
      head.push(`- ${plural(names.length, "resource")} ${verb}: ${names.join(", ")}`);
    }
    const warnings = r.policy.filter((p) => p.level !== "mandatory");
    for (const p of warnings) head.push(`- policy warning \`${p.policy}\`: ${p.message}`);
    head.push("");
  }
  const summary = head.join("\n");
  if (summary.length > limit) {
    const note = "\n\n_(cut: the summary alone is over GitHub's limit; run the preview for the rest)_\n";
    return summary.slice(0, limit - note.length) + note;
  }

  // The diffs, folded, in the room left; a cut diff says so.
  let out = summary;
  for (const r of reports) {
    if (!r.diff?.trim()) continue;
    const open = `\n<details><summary>${r.site}: full diff</summary>\n\n\`\`\`diff\n`;
    const close = "\n```\n</details>\n";
    const cutNote = "\n... (cut to GitHub's comment limit: run the preview for the rest)";
    const room = limit - out.length - open.length - close.length;
    if (room <= cutNote.length + 100) break;
    const diff = r.diff.trim();
    out += open + (diff.length <= room ? diff : diff.slice(0, room - cutNote.length) + cutNote) + close;
  }
  return out;
}

/** `urn:pulumi:stack::project::qcloud:site:Site$docker:index/container:Container::name` -> its type. */
export function typeOfUrn(urn: string): string {
  const parts = urn.split("::");
  const chain = parts[2] ?? "";
  return chain.slice(chain.lastIndexOf("$") + 1);
}
