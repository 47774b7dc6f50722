import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  DRIFT_GAUGES,
  driftReadCommand,
  driftWriteCommand,
  previousDrift,
  renderDriftTextfile,
} from "../render/drift";
import { TEXTFILE_DIR, renderTextfile, textfileWriteCommand } from "../render/textfile";

/** The drift check's gauges (render/drift.ts) and the textfile contract they follow (render/textfile.ts). */

const ROOT = path.resolve(__dirname, "..");

const HELP = {
  resources:
    "# HELP qcloud_drift_resources Resources whose servers differ from the code at the last completed check (non-same steps of a preview after a refresh).\n" +
    "# TYPE qcloud_drift_resources gauge\n",
  at:
    "# HELP qcloud_drift_last_check_timestamp_seconds Unix time of the last completed drift check, drift or not.\n" +
    "# TYPE qcloud_drift_last_check_timestamp_seconds gauge\n",
  success:
    "# HELP qcloud_drift_last_check_success Whether the latest drift check completed (1) or failed before its result (0).\n" +
    "# TYPE qcloud_drift_last_check_success gauge\n",
};
const COMPLETED = renderDriftTextfile({ completed: true, resources: 3, at: 1732600000 });

describe("drift.prom", () => {
  test("a completed check: its count, its time, success 1; no label (Prometheus adds `site`)", () => {
    expect(COMPLETED).toBe(
      `${HELP.resources}qcloud_drift_resources 3\n` +
        `${HELP.at}qcloud_drift_last_check_timestamp_seconds 1732600000\n` +
        `${HELP.success}qcloud_drift_last_check_success 1\n`,
    );
    expect(renderDriftTextfile({ completed: true, resources: 0, at: 1732600000 })).toContain(
      "\nqcloud_drift_resources 0\n",
    );
  });

  test("a failed check keeps the last completed check's count and time, read back from the file it replaces", () => {
    expect(renderDriftTextfile({ completed: false }, COMPLETED)).toBe(
      `${HELP.resources}qcloud_drift_resources 3\n` +
        `${HELP.at}qcloud_drift_last_check_timestamp_seconds 1732600000\n` +
        `${HELP.success}qcloud_drift_last_check_success 0\n`,
    );
    // Failing again changes nothing more.
    const failed = renderDriftTextfile({ completed: false }, COMPLETED);
    expect(renderDriftTextfile({ completed: false }, failed)).toBe(failed);
  });

  test("a site's first check failed: time 0 (stale, not absent), no count (no drift known)", () => {
    const first = `${HELP.at}qcloud_drift_last_check_timestamp_seconds 0\n${HELP.success}qcloud_drift_last_check_success 0\n`;
    expect(renderDriftTextfile({ completed: false })).toBe(first);
    expect(renderDriftTextfile({ completed: false }, "")).toBe(first);
  });

  test("numbers only: a value that is not a whole number, 0 or more, is refused", () => {
    const bad: number[] = [NaN, Infinity, -Infinity, -1, 1.5, 2 ** 53, "7; rm -rf /" as unknown as number];
    for (const v of bad) {
      expect(() => renderDriftTextfile({ completed: true, resources: v, at: 1 })).toThrow(
        /drift check: `resources` is .*; expected a whole number, 0 or more/,
      );
      expect(() => renderDriftTextfile({ completed: true, resources: 0, at: v })).toThrow(/`at` is/);
    }
  });

  test("what is read back is taken only as plain whole numbers of this file's own gauges", () => {
    expect(previousDrift(COMPLETED)).toEqual({ resources: 3, at: 1732600000 });
    expect(previousDrift(undefined)).toEqual({});
    const edited = [
      "qcloud_drift_resources 3; rm -rf /",
      "qcloud_drift_last_check_timestamp_seconds 1.7e9",
      'qcloud_drift_resources{x="1"} 4',
      "other_qcloud_drift_resources 5",
    ].join("\n");
    expect(previousDrift(edited)).toEqual({});
    expect(renderDriftTextfile({ completed: false }, edited)).toBe(renderDriftTextfile({ completed: false }));
  });

  test("every gauge is documented in docs/metrics.md with the same help, and its example is this file", () => {
    const doc = fs.readFileSync(path.join(ROOT, "docs/metrics.md"), "utf8");
    for (const [name, help] of Object.entries(DRIFT_GAUGES))
      expect(doc).toContain(`# HELP ${name} ${help}\n`);
    const example = /^### `drift\.prom`.*\n\n```\n([\s\S]*?)```$/m.exec(doc)?.[1];
    expect(example).toBe(COMPLETED);
  });
});

describe("writing it on the site's host", () => {
  test("the exact command: the directory, a .tmp beside the file, then mv; the text in a quoted here-document", () => {
    expect(driftWriteCommand(COMPLETED)).toBe(
      [
        "set -eu",
        "install -d -m 755 /var/lib/qcloud/metrics",
        "cat >/var/lib/qcloud/metrics/drift.prom.tmp <<'QCLOUD_TEXTFILE'",
        COMPLETED.trimEnd(),
        "QCLOUD_TEXTFILE",
        "chmod 644 /var/lib/qcloud/metrics/drift.prom.tmp",
        "mv /var/lib/qcloud/metrics/drift.prom.tmp /var/lib/qcloud/metrics/drift.prom",
        "",
      ].join("\n"),
    );
    expect(driftReadCommand()).toBe("cat /var/lib/qcloud/metrics/drift.prom 2>/dev/null || true");
    expect(TEXTFILE_DIR).toBe("/var/lib/qcloud/metrics");
  });

  test("run by a shell: the file as rendered, readable by node-exporter, no .tmp left; read back, a failure keeps it", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "drift-"));
    const dir = path.join(tmp, "metrics"); // made by the command
    const sh = (cmd: string) => execFileSync("sh", ["-c", cmd], { encoding: "utf8" });
    expect(sh(driftReadCommand(dir))).toBe("");
    sh(driftWriteCommand(COMPLETED, dir));
    expect(fs.readdirSync(dir)).toEqual(["drift.prom"]);
    expect(fs.statSync(path.join(dir, "drift.prom")).mode & 0o777).toBe(0o644);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o755);
    expect(sh(driftReadCommand(dir))).toBe(COMPLETED);
    // What the estate command does when a check fails: read back, render, write.
    sh(driftWriteCommand(renderDriftTextfile({ completed: false }, sh(driftReadCommand(dir))), dir));
    expect(fs.readFileSync(path.join(dir, "drift.prom"), "utf8")).toBe(
      COMPLETED.replace("qcloud_drift_last_check_success 1", "qcloud_drift_last_check_success 0"),
    );
    fs.rmSync(tmp, { recursive: true });
  });

  test("nothing in the text is expanded by the shell; a line that would end the here-document is refused", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "textfile-"));
    const text = "# HELP x $(touch pwned) `id` $HOME\nx 1\n";
    execFileSync("sh", ["-c", textfileWriteCommand("odd", text, tmp)], { cwd: tmp });
    expect(fs.readdirSync(tmp)).toEqual(["odd.prom"]);
    expect(fs.readFileSync(path.join(tmp, "odd.prom"), "utf8")).toBe(text);
    fs.rmSync(tmp, { recursive: true });
    expect(() => textfileWriteCommand("odd", "x 1\nQCLOUD_TEXTFILE\ntouch pwned\n")).toThrow(/a line reads/);
    expect(() => textfileWriteCommand("drift; rm -rf /", "")).toThrow(/textfile job/);
    expect(() => textfileWriteCommand("drift", "", "/tmp/$(id)")).toThrow(/textfile directory/);
    expect(() => driftWriteCommand(COMPLETED, "relative/dir")).toThrow(/expected an absolute path/);
  });
});

describe("renderTextfile: the contract's text format", () => {
  test("HELP and TYPE once per gauge, then its samples with their labels", () => {
    expect(
      renderTextfile([
        {
          name: "qcloud_backup_repository_up",
          help: "Whether the repository answered.",
          samples: [{ labels: { peer: "master" }, value: 1 }],
        },
        {
          name: "qcloud_x",
          help: "Two.",
          samples: [{ labels: { a: "1", b: "x-y" }, value: 0.5 }, { value: 2 }],
        },
      ]),
    ).toBe(
      "# HELP qcloud_backup_repository_up Whether the repository answered.\n" +
        "# TYPE qcloud_backup_repository_up gauge\n" +
        'qcloud_backup_repository_up{peer="master"} 1\n' +
        "# HELP qcloud_x Two.\n" +
        "# TYPE qcloud_x gauge\n" +
        'qcloud_x{a="1",b="x-y"} 0.5\n' +
        "qcloud_x 2\n",
    );
  });

  test.each([
    [{ name: "qcloud-x", help: "h", samples: [] }, /not a metric name/],
    [{ name: "qcloud_x", help: "two\nlines", samples: [] }, /line break/],
    [{ name: "qcloud_x", help: "h", samples: [{ value: NaN }] }, /`NaN` is not a finite number/],
    [{ name: "qcloud_x", help: "h", samples: [{ value: Infinity }] }, /`Infinity` is not a finite number/],
    [
      { name: "qcloud_x", help: "h", samples: [{ labels: { site: "lady" }, value: 1 }] },
      /label `site`: Prometheus sets it/,
    ],
    [{ name: "qcloud_x", help: "h", samples: [{ labels: { job: "x" }, value: 1 }] }, /label `job`/],
    [{ name: "qcloud_x", help: "h", samples: [{ labels: { instance: "x" }, value: 1 }] }, /label `instance`/],
    [{ name: "qcloud_x", help: "h", samples: [{ labels: { "a-b": "x" }, value: 1 }] }, /not a label name/],
    [
      { name: "qcloud_x", help: "h", samples: [{ labels: { a: 'x"} 1\nevil 2' }, value: 1 }] },
      /unexpected characters/,
    ],
  ])("refuses %j", (gauge, error) => {
    expect(() => renderTextfile([gauge])).toThrow(error);
  });
});
