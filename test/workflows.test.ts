import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import YAML from "yaml";

/**
 * The GitHub workflows (.github/workflows) and the local action they share, checked by actionlint (with shellcheck on
 * every `run:` script) from scripts/ci-tools.sh, and held to this repository's own rules: every action pinned by
 * commit, every job with a timeout and its own permissions.
 */

const ROOT = path.resolve(__dirname, "..");
const TOOLS = "scripts/ci-tools.sh";
const WORKFLOWS = path.join(ROOT, ".github", "workflows");
const ACTIONS = path.join(ROOT, ".github", "actions");

/** The tools' bin dir; `npm test` builds them first (pretest). Missing tools fail every test, never skip. */
function toolsDir(): string {
  const r = spawnSync("bash", [path.join(ROOT, TOOLS), "--check"], { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(
      `actionlint/shellcheck are missing: run \`bash ${TOOLS}\` (npm test does). ${r.stderr.trim()}`,
    );
  }
  return r.stdout.trim();
}

/** actionlint on these files, with this shellcheck (so a missing one fails rather than being skipped). */
function actionlint(files: readonly string[], cwd: string) {
  const bin = toolsDir();
  // -pyflakes= : no `shell: python` step here, and pyflakes is not a tool of this project.
  return spawnSync(
    path.join(bin, "actionlint"),
    ["-no-color", "-shellcheck", path.join(bin, "shellcheck"), "-pyflakes=", ...files],
    { cwd, encoding: "utf8" },
  );
}

const workflowFiles = () =>
  fs
    .readdirSync(WORKFLOWS)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();

describe("actionlint", () => {
  test("the workflows are the three of the README", () => {
    expect(workflowFiles()).toEqual(["deploy.yml", "drift.yml", "pull-request.yml"]);
  });

  test("passes the repository's workflows (and the local action they use) cleanly", () => {
    const r = actionlint(
      workflowFiles().map((f) => path.join(WORKFLOWS, f)),
      ROOT,
    );
    expect({ status: r.status, out: r.stdout + r.stderr }).toEqual({ status: 0, out: "" });
  });

  test("fails a broken workflow with its messages, shellcheck's included", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-actionlint-"));
    try {
      fs.mkdirSync(path.join(dir, ".github", "workflows"), { recursive: true });
      const file = path.join(dir, ".github", "workflows", "broken.yml");
      fs.writeFileSync(
        file,
        [
          "name: broken",
          "on: push",
          "jobs:",
          "  build:",
          "    steps:",
          "      - run: echo ${{ github.repositry }}",
          "      - run: rm -rf $DIR/*",
          "",
        ].join("\n"),
      );
      const r = actionlint([file], dir);
      expect(r.status).toBe(1);
      expect(r.stdout).toContain(
        'broken.yml:4:3: "runs-on" section is missing in job "build" [syntax-check]',
      );
      expect(r.stdout).toMatch(/broken\.yml:6:\d+: property "repositry" is not defined in object type/);
      expect(r.stdout).toMatch(
        /broken\.yml:7:9: shellcheck reported issue in this script: SC2115:warning:1:8: Use "\$\{var:\?\}"/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Every `uses:` of a workflow or local action file, with the comment on its line. */
function usesOf(file: string): Array<{ uses: string; line: string }> {
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => /^\s*(-\s+)?uses:/.test(l))
    .map((line) => ({
      uses: line.replace(/^\s*(-\s+)?uses:\s*/, "").replace(/\s+#.*$/, ""),
      line: line.trim(),
    }));
}

const actionFiles = () =>
  fs
    .readdirSync(ACTIONS, { recursive: true, encoding: "utf8" })
    .filter((f) => /(^|\/)action\.ya?ml$/.test(f))
    .map((f) => path.join(ACTIONS, f));

describe("the repository's rules", () => {
  const files = () => [...workflowFiles().map((f) => path.join(WORKFLOWS, f)), ...actionFiles()];

  test("every action is pinned by full commit SHA, its release in a comment (Renovate keeps both fresh)", () => {
    const uses = files().flatMap(usesOf);
    expect(uses.length).toBeGreaterThan(10);
    const bad = uses.filter(
      (u) =>
        !u.uses.startsWith("./") &&
        !/^[\w.-]+\/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$/.test(u.line.split("uses: ")[1]!),
    );
    expect(bad.map((u) => u.line)).toEqual([]);
  });

  test("one SHA per action: the workflows agree on each action's version", () => {
    const byAction = new Map<string, Set<string>>();
    for (const u of files().flatMap(usesOf)) {
      if (u.uses.startsWith("./")) continue;
      const [name, ref] = u.uses.split("@") as [string, string];
      byAction.set(name, (byAction.get(name) ?? new Set()).add(ref));
    }
    expect([...byAction].filter(([, refs]) => refs.size > 1)).toEqual([]);
  });

  test.each(["deploy.yml", "drift.yml", "pull-request.yml"])(
    "%s: nothing by default, each job its own permissions and a timeout",
    (f) => {
      const wf = YAML.parse(fs.readFileSync(path.join(WORKFLOWS, f), "utf8"));
      expect(wf.permissions).toEqual({});
      for (const [name, job] of Object.entries<any>(wf.jobs)) {
        expect([name, typeof job.permissions]).toEqual([name, "object"]);
        expect([name, job["timeout-minutes"] > 0]).toEqual([name, true]);
        // No job may write the repository's contents.
        expect([name, job.permissions.contents]).toEqual([name, "read"]);
      }
    },
  );

  test("deploy: one group, never cancelled, in the production environment", () => {
    const wf = YAML.parse(fs.readFileSync(path.join(WORKFLOWS, "deploy.yml"), "utf8"));
    expect(wf.concurrency).toEqual({ group: "deploy-production", "cancel-in-progress": false });
    expect(wf.jobs.deploy.environment).toBe("production");
  });

  test("pull request: one group per PR, a new push cancels the old run", () => {
    const wf = YAML.parse(fs.readFileSync(path.join(WORKFLOWS, "pull-request.yml"), "utf8"));
    expect(wf.concurrency).toEqual({
      group: "pr-${{ github.event.pull_request.number }}",
      "cancel-in-progress": true,
    });
  });

  test("secrets reach only the steps that run estate or load the SSH key, never a whole job", () => {
    for (const f of workflowFiles()) {
      const wf = YAML.parse(fs.readFileSync(path.join(WORKFLOWS, f), "utf8"));
      expect([f, JSON.stringify(wf.env ?? {})]).toEqual([f, "{}"]);
      for (const [name, job] of Object.entries<any>(wf.jobs)) {
        expect([f, name, JSON.stringify(job.env ?? {})]).toEqual([f, name, "{}"]);
        for (const step of job.steps as any[]) {
          const text = JSON.stringify(step);
          if (!text.includes("secrets.")) continue;
          const runsEstate = typeof step.run === "string" && /npm run -s estate -- /.test(step.run);
          const loadsKey = step.uses === "./.github/actions/pulumi";
          expect([f, name, step.name, runsEstate || loadsKey]).toEqual([f, name, step.name, true]);
        }
      }
    }
  });
});
