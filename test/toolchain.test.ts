import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/**
 * scripts/toolchain.sh's choices (issue 9, hole 7): an official CLI and official plugins are used where present and
 * never replaced; stand-ins go only where no plugin of that version is installed, and only ours are ever replaced.
 *
 * Each test runs the real script on a machine of its own: a temporary HOME, QCLOUD_CACHE and PULUMI_HOME, and a PATH
 * without Go. Two test doubles stand in for what cannot be had here (said where they are made): an official `pulumi`
 * (get.pulumi.com is unreachable) and the cached stand-in builds (a real build takes tens of minutes).
 */

const ROOT = path.resolve(__dirname, "..");
const SCRIPT = path.join(ROOT, "scripts/toolchain.sh");
const VERSIONS: Readonly<Record<string, string>> = {
  command: "1.2.1",
  docker: "5.2.0",
  hcloud: "1.41.0",
  random: "4.21.2",
};
const PROVIDERS = Object.keys(VERSIONS);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-toolchain-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Machine {
  readonly env: NodeJS.ProcessEnv;
  readonly bin: string;
  readonly cache: string;
  readonly plugins: string;
  readonly log: string;
}

function machine(): Machine {
  const dir = fs.mkdtempSync(path.join(tmp, "m-"));
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  const env: NodeJS.ProcessEnv = {
    HOME: path.join(dir, "home"),
    QCLOUD_CACHE: path.join(dir, "cache"),
    PULUMI_HOME: path.join(dir, "pulumi"),
    // Node for the script's version reads; no /usr/local/go/bin: nothing here may need Go.
    PATH: [bin, path.dirname(process.execPath), "/usr/bin", "/bin"].join(":"),
    FAKE_PULUMI_LOG: path.join(dir, "pulumi.log"),
  };
  return {
    env,
    bin,
    cache: path.join(dir, "cache", "toolchain"),
    plugins: path.join(dir, "pulumi", "plugins"),
    log: path.join(dir, "pulumi.log"),
  };
}

/**
 * Test double of an official `pulumi` CLI. It logs its arguments and does to $PULUMI_HOME what the real
 * `pulumi plugin install resource NAME VER --file BIN [--reinstall]` does (checked against the real CLI on
 * 2026-11-30: without --reinstall it keeps an installed plugin, says nothing and exits 0).
 */
function officialCli(m: Machine, version: string, dir = m.bin): string {
  const file = path.join(dir, "pulumi");
  fs.writeFileSync(
    file,
    [
      "#!/usr/bin/env bash",
      'echo "$*" >>"$FAKE_PULUMI_LOG"',
      'case "$1" in',
      `  version) echo ${version} ;;`,
      "  plugin)",
      '    d="$PULUMI_HOME/plugins/$3-$4-v$5"',
      '    if [ -e "$d" ] && [ "${8:-}" != --reinstall ]; then exit 0; fi',
      '    rm -rf "$d" && mkdir -p "$d" && cp "$7" "$d/pulumi-resource-$4" ;;',
      "  *) exit 3 ;;",
      "esac",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  return file;
}

const pluginDir = (m: Machine, p: string) => path.join(m.plugins, `resource-${p}-v${VERSIONS[p]}`);
const pluginBin = (m: Machine, p: string) => path.join(pluginDir(m, p), `pulumi-resource-${p}`);

/** A plugin installed by someone else (the official one, as `pulumi plugin install` leaves it). */
function officialPlugin(m: Machine, p: string): void {
  fs.rmSync(pluginDir(m, p), { recursive: true, force: true });
  fs.mkdirSync(pluginDir(m, p), { recursive: true });
  fs.writeFileSync(pluginBin(m, p), `#!/bin/sh\necho official ${p}\n`, { mode: 0o755 });
}

/** Runs the script; `args` e.g. ["--plan"]. */
function toolchain(m: Machine, ...args: string[]) {
  const r = spawnSync("bash", [SCRIPT, ...args], { cwd: ROOT, env: m.env, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface PlanLine {
  readonly decision: string;
  readonly dir: string;
  readonly key: string;
}

/** `--plan`'s plugin lines by provider (the CLI line is checked as text). */
function plan(m: Machine): { cli: string; plugins: Record<string, PlanLine> } {
  const r = toolchain(m, "--plan");
  expect([r.code, r.stderr]).toEqual([0, ""]);
  const lines = r.stdout.trim().split("\n");
  const plugins: Record<string, PlanLine> = {};
  for (const l of lines.slice(1)) {
    const [kind, name, version, decision, dir, key] = l.split(" ");
    expect([kind, name, version]).toEqual(["plugin", name, VERSIONS[name!]]);
    plugins[name!] = { decision: decision!, dir: dir!, key: key! };
  }
  expect(Object.keys(plugins)).toEqual(PROVIDERS);
  return { cli: lines[0]!, plugins };
}

const decisions = (m: Machine) =>
  Object.fromEntries(Object.entries(plan(m).plugins).map(([p, l]) => [p, l.decision]));

/**
 * Test double of the cached stand-in builds (what `build_provider` leaves: the binary and its cache key), so that no
 * Go build runs. The keys are the ones the script computes (`--plan`).
 */
function cachedStandIns(m: Machine): Record<string, string> {
  const keys = Object.fromEntries(Object.entries(plan(m).plugins).map(([p, l]) => [p, l.key]));
  const bins: Record<string, string> = {};
  for (const p of PROVIDERS) {
    const dir = path.join(m.cache, "plugins", `${p}-${VERSIONS[p]}`);
    fs.mkdirSync(dir, { recursive: true });
    bins[p] = path.join(dir, `pulumi-resource-${p}`);
    fs.writeFileSync(bins[p]!, `#!/bin/sh\necho stand-in ${p}\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(dir, "KEY"), `${keys[p]}\n`);
  }
  return bins;
}

/** Every file under the plugin dir: path -> mode and sha256 (what "left untouched" means). */
function snapshot(m: Machine): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else
        out[path.relative(m.plugins, f)] =
          `${(fs.statSync(f).mode & 0o777).toString(8)} ` +
          crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex");
    }
  };
  if (fs.existsSync(m.plugins)) walk(m.plugins);
  return out;
}

const calls = (m: Machine) => (fs.existsSync(m.log) ? fs.readFileSync(m.log, "utf8").trim().split("\n") : []);

test("the machine has no Go: nothing below may build", () => {
  const m = machine();
  expect(spawnSync("bash", ["-c", "command -v go"], { env: m.env }).status).toBe(1);
});

describe("an official CLI and official plugins", () => {
  const m = machine();
  let cli: string;
  let before: Record<string, string>;
  beforeAll(() => {
    cli = officialCli(m, "v3.250.0");
    for (const p of PROVIDERS) officialPlugin(m, p);
    before = snapshot(m);
  });

  test("--plan: every one is used as it is", () => {
    const r = plan(m);
    expect(r.cli).toBe(`cli official ${cli} v3.250.0`);
    expect(decisions(m)).toEqual({
      command: "official",
      docker: "official",
      hcloud: "official",
      random: "official",
    });
  });

  test("a run builds nothing, installs nothing, writes nothing into PULUMI_HOME, and needs no Go", () => {
    fs.rmSync(m.log, { force: true });
    const r = toolchain(m, "--quiet");
    expect([r.code, r.stdout, r.stderr]).toEqual([0, "", ""]);
    expect(calls(m)).toEqual(["version"]);
    expect(snapshot(m)).toEqual(before);
    expect(fs.readdirSync(m.cache)).toEqual([".lock"]);
  });

  test("--print-env: no PATH change, and it says which CLI and plugins the shell gets", () => {
    const r = toolchain(m, "--print-env");
    expect([r.code, r.stdout]).toEqual([
      0,
      "export PULUMI_SKIP_UPDATE_CHECK=true\nexport PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true\nexport PULUMI_NODEJS_TRANSPILE_ONLY=true\n",
    ]);
    expect(r.stderr).toBe(
      [
        `toolchain: pulumi CLI: official ${cli} (v3.250.0)`,
        "toolchain:   (the program's @pulumi/pulumi is 3.276.0)",
        `toolchain: plugins in ${m.plugins}: command 1.2.1 official, docker 5.2.0 official, ` +
          "hcloud 1.41.0 official, random 4.21.2 official",
        "",
      ].join("\n"),
    );
  });

  test("source scripts/pulumi-env.sh: the official CLI is the shell's pulumi", () => {
    const r = spawnSync("bash", ["-c", "source scripts/pulumi-env.sh 2>/dev/null && command -v pulumi"], {
      cwd: ROOT,
      env: m.env,
      encoding: "utf8",
    });
    expect([r.status, r.stdout.trim()]).toEqual([0, cli]);
    expect(snapshot(m)).toEqual(before);
  });
});

describe("stand-ins go only where no plugin of the version is installed", () => {
  const m = machine();
  let bins: Record<string, string>;
  let officialDocker: Record<string, string>;
  beforeAll(() => {
    officialCli(m, "v3.276.0");
    officialPlugin(m, "docker");
    bins = cachedStandIns(m); // docker's stand-in too: built, yet never installed over the official one
    officialDocker = snapshot(m);
  });

  test("--plan: docker's official plugin is used, the others get stand-ins", () => {
    expect(decisions(m)).toEqual({
      command: "install",
      docker: "official",
      hcloud: "install",
      random: "install",
    });
  });

  test("a run installs the three, never with --reinstall, and leaves docker's alone", () => {
    fs.rmSync(m.log, { force: true });
    const r = toolchain(m, "--quiet");
    expect(r.code).toBe(0);
    expect(calls(m)).toEqual([
      "version",
      ...["command", "hcloud", "random"].map(
        (p) => `plugin install resource ${p} ${VERSIONS[p]} --file ${bins[p]}`,
      ),
    ]);
    const after = snapshot(m);
    expect(
      Object.fromEntries(Object.entries(after).filter(([f]) => f.startsWith("resource-docker-"))),
    ).toEqual(officialDocker);
    for (const p of ["command", "hcloud", "random"]) {
      const marker = fs
        .readFileSync(path.join(pluginDir(m, p), ".qcloud-source"), "utf8")
        .trim()
        .split(" ");
      const sum = crypto.createHash("sha256").update(fs.readFileSync(bins[p]!)).digest("hex");
      expect([p, ...marker.slice(0, 4)]).toEqual([
        p,
        bins[p],
        String(fs.statSync(bins[p]!).size),
        plan(m).plugins[p]!.key,
        `sha256:${sum}`,
      ]);
      expect(fs.readFileSync(pluginBin(m, p), "utf8")).toBe(`#!/bin/sh\necho stand-in ${p}\n`);
    }
    expect(decisions(m)).toEqual({
      command: "stand-in",
      docker: "official",
      hcloud: "stand-in",
      random: "stand-in",
    });
    expect(toolchain(m, "--print-env").stderr).toContain(
      `plugins in ${m.plugins}: command 1.2.1 STAND-IN, docker 5.2.0 official, hcloud 1.41.0 STAND-IN, random 4.21.2 STAND-IN`,
    );
  });

  test("an official plugin put over a stand-in later, or another binary next to our marker, is not ours: left alone", () => {
    // What `pulumi plugin install resource random 4.21.2 --reinstall` of the official plugin leaves: a new dir.
    officialPlugin(m, "random");
    // Our marker, but the binary rewritten in place by someone else.
    fs.writeFileSync(pluginBin(m, "hcloud"), "#!/bin/sh\necho official hcloud, a longer binary\n");
    const before = snapshot(m);
    expect(decisions(m)).toEqual({
      command: "stand-in",
      docker: "official",
      hcloud: "official",
      random: "official",
    });
    fs.rmSync(m.log, { force: true });
    expect(toolchain(m, "--quiet").code).toBe(0);
    expect(calls(m)).toEqual(["version"]);
    expect(snapshot(m)).toEqual(before);
  });

  test("our own stand-in built from other sources is replaced, and only it (--reinstall over ours)", () => {
    const marker = path.join(pluginDir(m, "command"), ".qcloud-source");
    const fields = fs.readFileSync(marker, "utf8").trim().split(" ");
    fs.writeFileSync(
      marker,
      [...fields.slice(0, 2), "0000000000000000", ...fields.slice(3)].join(" ") + "\n",
    );
    expect(decisions(m)).toEqual({
      command: "reinstall",
      docker: "official",
      hcloud: "official",
      random: "official",
    });
    const others = Object.fromEntries(Object.entries(snapshot(m)).filter(([f]) => !f.includes("-command-")));
    fs.rmSync(m.log, { force: true });
    expect(toolchain(m, "--quiet").code).toBe(0);
    expect(calls(m)).toEqual([
      "version",
      `plugin install resource command 1.2.1 --file ${bins.command} --reinstall`,
    ]);
    expect(fs.readFileSync(marker, "utf8").split(" ")[2]).toBe(plan(m).plugins.command!.key);
    expect(Object.fromEntries(Object.entries(snapshot(m)).filter(([f]) => !f.includes("-command-")))).toEqual(
      others,
    );
  });

  test("a stand-in installed before markers named a sha256 (source, size, key) is still ours", () => {
    const p = "random";
    officialPlugin(m, p);
    fs.copyFileSync(bins[p]!, pluginBin(m, p));
    const key = plan(m).plugins[p]!.key;
    fs.writeFileSync(
      path.join(pluginDir(m, p), ".qcloud-source"),
      `${bins[p]} ${fs.statSync(bins[p]!).size} ${key}\n`,
    );
    expect(decisions(m)[p]).toBe("stand-in");
    // A run rewrites that marker in the sha256 format (same key), so a rebuild of the source binary later does not
    // make the stand-in look official.
    const before = snapshot(m);
    fs.rmSync(m.log, { force: true });
    expect(toolchain(m, "--quiet").code).toBe(0);
    expect(calls(m)).toEqual(["version"]);
    const sum = crypto.createHash("sha256").update(fs.readFileSync(bins[p]!)).digest("hex");
    const marker = fs
      .readFileSync(path.join(pluginDir(m, p), ".qcloud-source"), "utf8")
      .trim()
      .split(" ");
    expect(marker.slice(0, 4)).toEqual([bins[p], String(fs.statSync(bins[p]!).size), key, `sha256:${sum}`]);
    const others = (snap: Record<string, string>) =>
      Object.fromEntries(Object.entries(snap).filter(([f]) => f !== `resource-${p}-v4.21.2/.qcloud-source`));
    expect(others(snapshot(m))).toEqual(others(before));
    fs.appendFileSync(bins[p]!, "# rebuilt\n");
    expect(decisions(m)[p]).toBe("stand-in");
    // Our binary rewritten by someone else is no longer ours.
    fs.appendFileSync(pluginBin(m, p), "# changed\n");
    expect(decisions(m)[p]).toBe("official");
  });
});

describe("without an official CLI", () => {
  test("a pulumi built by this script (from any cache) is not taken for an official one", () => {
    const m = machine();
    const ours = path.join(m.bin, "..", "other-cache", "pulumi-3.276.0");
    fs.mkdirSync(path.join(ours, "bin"), { recursive: true });
    officialCli(m, "v3.276.0", path.join(ours, "bin"));
    fs.writeFileSync(path.join(ours, "RECIPE_REV"), "1\n");
    fs.writeFileSync(
      path.join(ours, "BUILT_FROM"),
      "pulumi CLI built from github.com/pulumi/pulumi/pkg/v3@v3.276.0\n",
    );
    m.env.PATH = `${path.join(ours, "bin")}:${m.env.PATH}`;
    for (const p of PROVIDERS) officialPlugin(m, p);
    expect(plan(m).cli).toBe(`cli build ${m.cache}/pulumi-3.276.0/bin/pulumi v3.276.0`);
    // Building needs Go, which this machine lacks: the run says so and touches no plugin.
    const before = snapshot(m);
    const r = toolchain(m, "--quiet");
    expect([r.code, r.stderr]).toEqual([
      1,
      expect.stringContaining(
        "toolchain: ERROR in step 'check the Go toolchain': 'go' is required but not on PATH",
      ),
    ]);
    expect(snapshot(m)).toEqual(before);
  });

  test("nothing installed: the CLI and all four plugins are to be built", () => {
    const m = machine();
    const r = plan(m);
    expect(r.cli).toBe(`cli build ${m.cache}/pulumi-3.276.0/bin/pulumi v3.276.0`);
    expect(decisions(m)).toEqual({
      command: "build+install",
      docker: "build+install",
      hcloud: "build+install",
      random: "build+install",
    });
    expect(Object.values(r.plugins).map((l) => l.dir)).toEqual(PROVIDERS.map((p) => pluginDir(m, p)));
  });
});

describe("what the README promises", () => {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");

  test("the Go it names is the toolchain's minimum (the newest `go` line of the modules it builds)", () => {
    const min = /^GO_MIN=(\S+)$/m.exec(fs.readFileSync(SCRIPT, "utf8"))![1];
    expect(min).toBe("1.26.6");
    expect(readme).toContain(`Go ${min} or newer`);
  });

  test("npm run test:unit is the unit tier alone: every test file but those that run the tool scripts", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
    expect(pkg.scripts["test:unit"]).toBe(
      "tsc --noEmit && eslint . && prettier --check . && npm run -s check && jest -c jest.unit.config.js",
    );
    expect(pkg.scripts["pretest:unit"]).toBeUndefined();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const config = require("../jest.unit.config.js");
    const ignored = (f: string) =>
      config.testPathIgnorePatterns.some((p: string) => new RegExp(p.replace("<rootDir>", ROOT)).test(f));
    const files = fs.readdirSync(path.join(ROOT, "test")).filter((f) => f.endsWith(".test.ts"));
    expect(files.filter((f) => ignored(path.join(ROOT, "test", f)))).toEqual([
      "mesh.test.ts",
      "monitoring.test.ts",
      "workflows.test.ts",
    ]);
    expect(ignored(path.join(ROOT, "test/e2e/sandbox.test.ts"))).toBe(true);
    expect(readme).toContain("npm run test:unit");
  });

  test("no script or document cites a file outside the repository", () => {
    // Walked, not `git ls-files`: git refuses a checkout owned by another user, and the unit tier runs as anyone.
    const walk = (d: string): string[] =>
      fs
        .readdirSync(path.join(ROOT, d), { withFileTypes: true })
        .flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
    const files = [...walk("scripts"), ...walk("docs"), "README.md"];
    expect(files).toContain("scripts/toolchain.sh");
    const cites = files.flatMap((f) =>
      fs
        .readFileSync(path.join(ROOT, f), "utf8")
        .split("\n")
        .map((line, i) => [f, i + 1, line] as const)
        .filter(([, , line]) => /(^|[^\w.~-])\/work\/|\.library\//.test(line))
        .map(([file, n]) => `${file}:${n}`),
    );
    expect(cites).toEqual([]);
  });
});
