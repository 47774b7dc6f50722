/**
 * node-exporter's textfile collector: where gauges of jobs without a server to scrape land, and how they are written
 * there. The contract is docs/metrics.md; the backup job (render/backup.ts) keeps it in shell on the host, the
 * commands run from the operator's side (`npm run estate -- drift`) keep it here.
 */

/** The host directory node-exporter's textfile collector reads (mounted read-only into it: catalog/agents.ts). */
export const TEXTFILE_DIR = "/var/lib/qcloud/metrics";

/** Labels Prometheus sets from the scrape target: a file that set them would have them renamed `exported_<name>`. */
const RESERVED_LABELS = ["site", "job", "instance"];

/** One sample of a gauge. */
export interface Sample {
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A gauge: its help text (docs/metrics.md says the same) and its samples, in the order given. */
export interface Gauge {
  readonly name: string;
  readonly help: string;
  readonly samples: readonly Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
// Label values are names (a service, a site): nothing that needs escaping.
const LABEL_VALUE = /^[a-zA-Z0-9_.:-]*$/;

/**
 * Gauges in Prometheus' text format, HELP and TYPE once each. Refuses what the format or the contract would not
 * hold: a bad name, a reserved or odd label, a value that is not a finite number (NaN, Infinity).
 */
export function renderTextfile(gauges: readonly Gauge[]): string {
  return gauges
    .flatMap((g) => {
      if (!NAME.test(g.name)) throw new Error(`gauge \`${g.name}\`: not a metric name`);
      if (/[\n\\]/.test(g.help))
        throw new Error(`gauge \`${g.name}\`: its help has a line break or a backslash`);
      return [
        `# HELP ${g.name} ${g.help}`,
        `# TYPE ${g.name} gauge`,
        ...g.samples.map((s) => `${g.name}${labels(g.name, s.labels ?? {})} ${value(g.name, s.value)}`),
      ];
    })
    .map((l) => `${l}\n`)
    .join("");
}

function labels(gauge: string, l: Readonly<Record<string, string>>): string {
  const entries = Object.entries(l);
  for (const [k, v] of entries) {
    if (!LABEL.test(k) || k.startsWith("__"))
      throw new Error(`gauge \`${gauge}\`: label \`${k}\`: not a label name`);
    if (RESERVED_LABELS.includes(k))
      throw new Error(
        `gauge \`${gauge}\`: label \`${k}\`: Prometheus sets it from the scrape target (docs/metrics.md)`,
      );
    if (!LABEL_VALUE.test(v))
      throw new Error(`gauge \`${gauge}\`: label \`${k}\`: unexpected characters in its value`);
  }
  return entries.length === 0 ? "" : `{${entries.map(([k, v]) => `${k}="${v}"`).join(",")}}`;
}

function value(gauge: string, v: number): string {
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new Error(`gauge \`${gauge}\`: \`${String(v)}\` is not a finite number`);
  return String(v);
}

/** Ends the here-document that carries a file's text in a write command. */
const EOF_MARK = "QCLOUD_TEXTFILE";

/**
 * The shell command (run over SSH, as root, like the backup job's install) that writes `content` as `<job>.prom`
 * the way the contract says: the directory made if missing and readable by node-exporter's uid, the text written
 * to `<job>.prom.tmp` in the same directory, then moved over `<job>.prom`, so the collector never reads half a file.
 * The text travels in a quoted here-document: nothing in it is expanded.
 */
export function textfileWriteCommand(job: string, content: string, dir: string = TEXTFILE_DIR): string {
  const file = textfilePath(job, dir);
  if (content.split("\n").includes(EOF_MARK))
    throw new Error(`textfile \`${job}\`: a line reads ${EOF_MARK}`);
  return [
    "set -eu",
    // node-exporter reads as its own uid (catalog/agents.ts), an "other".
    `install -d -m 755 ${dir}`,
    `cat >${file}.tmp <<'${EOF_MARK}'`,
    `${content.replace(/\n$/, "")}`,
    EOF_MARK,
    `chmod 644 ${file}.tmp`,
    `mv ${file}.tmp ${file}`,
    "",
  ].join("\n");
}

/** The shell command that prints `<job>.prom` as it is on the host, or nothing where there is none yet. */
export function textfileReadCommand(job: string, dir: string = TEXTFILE_DIR): string {
  return `cat ${textfilePath(job, dir)} 2>/dev/null || true`;
}

/** `<dir>/<job>.prom`, both plain enough for a shell command line as they are. */
function textfilePath(job: string, dir: string): string {
  if (!/^[a-z][a-z0-9-]*$/.test(job))
    throw new Error(`textfile job \`${job}\`: expected lowercase letters, digits, -`);
  if (!/^\/[A-Za-z0-9_./-]*$/.test(dir))
    throw new Error(`textfile directory \`${dir}\`: expected an absolute path`);
  return `${dir}/${job}.prom`;
}

/** Gauges' `name help` lines, one a gauge: what a host job's script reads to write HELP and TYPE. */
export const gaugeHelpLines = (gauges: Readonly<Record<string, string>>): string =>
  Object.entries(gauges)
    .map(([k, v]) => `${k} ${v}`)
    .join("\n");
