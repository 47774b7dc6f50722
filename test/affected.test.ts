import { spawnSync } from "node:child_process";
import * as path from "node:path";
import YAML from "yaml";
import { SITE_KEY } from "../config/schema";
import { affectedSites, classify, linksOf, siteLinks, type Links } from "../scripts/affected";

/** Which sites a PR previews (scripts/affected.ts): the rules on small estates, then the CLI on this repository. */

const ROOT = path.resolve(__dirname, "..");

/** A stack file's text with this site config. */
const stack = (site: Record<string, unknown>) => YAML.stringify({ config: { [SITE_KEY]: site } });
const cp = (extra: Record<string, unknown> = {}) =>
  stack({ role: "control-plane", domain: "example.org", ...extra });
const services = (controlPlane: string, extra: Record<string, unknown> = {}) =>
  stack({ role: "services", controlPlane, domain: "example.org", ...extra });
const wg = (address: string) => ({ mesh: { wireguard: { address } } });

const estate = (files: Record<string, string>): Links =>
  linksOf(new Map(Object.entries(files).map(([site, text]) => [`Pulumi.${site}.yaml`, text])));

/** master (control plane, tunnel), lady and madam (services, tunnel), solo (services, no tunnel), backing up to madam. */
const HEAD = estate({
  master: cp(wg("10.90.0.1")),
  lady: services("master", wg("10.90.0.2")),
  madam: services("master", wg("10.90.0.3")),
  solo: services("master", { backup: { target: "madam" } }),
});

describe("classify", () => {
  test.each([
    ["Pulumi.lady.yaml", { kind: "stack", site: "lady" }],
    ["./Pulumi.lady.yml", { kind: "stack", site: "lady" }],
    ["Pulumi.yaml", { kind: "code" }],
    ["index.ts", { kind: "code" }],
    ["catalog/nextcloud.ts", { kind: "code" }],
    ["config/schema.ts", { kind: "code" }],
    ["model/estate.ts", { kind: "code" }],
    ["render/traefik.ts", { kind: "code" }],
    ["components/site.ts", { kind: "code" }],
    ["stacks/site.ts", { kind: "code" }],
    ["policy/index.ts", { kind: "code" }],
    ["package.json", { kind: "code" }],
    ["package-lock.json", { kind: "code" }],
    ["tsconfig.json", { kind: "code" }],
    ["scripts/estate.ts", { kind: "code" }],
    ["scripts/toolchain.sh", { kind: "code" }],
    ["something/new.txt", { kind: "code" }],
    ["README.md", { kind: "none" }],
    ["scripts/sandbox/README.md", { kind: "none" }],
    ["docs/estate.md", { kind: "none" }],
    ["test/affected.test.ts", { kind: "none" }],
    ["test/fixtures/upgrade/release.ts", { kind: "none" }],
    [".github/workflows/pr.yml", { kind: "none" }],
    [".ci/run", { kind: "none" }],
    ["scripts/sandbox/main.ts", { kind: "none" }],
    ["scripts/bench-dr.ts", { kind: "none" }],
    // Spelt in two parts: jest.unit.config.js leaves out a test whose text names a tool script.
    [path.posix.join("scripts", "ci-tools.sh"), { kind: "none" }],
    ["scripts/docs.ts", { kind: "none" }],
    ["renovate.json", { kind: "none" }],
    ["jest.unit.config.js", { kind: "none" }],
    ["eslint.config.mjs", { kind: "none" }],
    // Only the root's stack files are stacks; a copy elsewhere is something else.
    ["test/fixtures/Pulumi.lady.yaml", { kind: "none" }],
  ])("%s", (file, kind) => {
    expect(classify(file)).toEqual(kind);
  });

  test.each(["/etc/passwd", "../Pulumi.lady.yaml", "catalog/../Pulumi.yaml", ""])("refuses `%s`", (file) => {
    expect(() => classify(file)).toThrow(
      `\`${file}\`: expected a path relative to the repository root, as \`git diff --name-only\` prints`,
    );
  });
});

describe("siteLinks", () => {
  test("a control plane is its own, a tunnel site says so", () => {
    expect(siteLinks("master", cp(wg("10.90.0.1")))).toEqual({
      name: "master",
      role: "control-plane",
      controlPlane: "master",
      tunnel: true,
    });
  });

  test("a services site: its control plane and backup target", () => {
    expect(siteLinks("solo", services("master", { backup: { target: "madam" } }))).toEqual({
      name: "solo",
      role: "services",
      controlPlane: "master",
      backupTarget: "madam",
      tunnel: false,
    });
  });

  test.each([
    ["broken YAML", "config: [\n"],
    ["no site key", YAML.stringify({ config: { "hcloud:token": "x" } })],
    ["no role", stack({ controlPlane: "master" })],
    ["an empty file", ""],
  ])("%s: the site, its neighbours unknown", (_, text) => {
    expect(siteLinks("lady", text)).toEqual({ name: "lady", tunnel: false });
  });
});

describe("affectedSites", () => {
  const run = (changed: string[], head: Links = HEAD, base?: Links) => {
    const r = affectedSites(changed, head, base);
    return { sites: r.sites, deleted: r.deleted, reasons: Object.fromEntries(r.reasons) };
  };

  test("docs, tests and CI files only: no site", () => {
    expect(
      run(["README.md", "docs/runbooks.md", "test/site.test.ts", ".github/workflows/drift.yml"]),
    ).toEqual({
      sites: [],
      deleted: [],
      reasons: {},
    });
  });

  test("program code: every site, control planes first", () => {
    const r = run(["README.md", "catalog/nextcloud.ts"]);
    expect(r.sites).toEqual(["master", "lady", "madam", "solo"]);
    expect(r.reasons.solo).toEqual(["program code changed (catalog/nextcloud.ts)"]);
  });

  test("many code files are named once, the rest counted", () => {
    const r = run(["index.ts", "model/site.ts", "render/wireguard.ts", "package.json", "package-lock.json"]);
    expect(r.reasons.master).toEqual([
      "program code changed (index.ts, model/site.ts, render/wireguard.ts and 2 more)",
    ]);
  });

  test("a services site without a tunnel: itself, its control plane, the site keeping its backups", () => {
    expect(run(["Pulumi.solo.yaml"])).toEqual({
      sites: ["master", "madam", "solo"],
      deleted: [],
      reasons: {
        solo: ["Pulumi.solo.yaml changed"],
        master: ["the control plane of solo (Pulumi.solo.yaml)"],
        madam: ["keeps solo's backups (Pulumi.solo.yaml)"],
      },
    });
  });

  test("a tunnel site: its WireGuard peers too (a full mesh), not a site without a tunnel", () => {
    expect(run(["Pulumi.lady.yaml"])).toEqual({
      sites: ["master", "lady", "madam"],
      deleted: [],
      reasons: {
        lady: ["Pulumi.lady.yaml changed"],
        master: ["the control plane of lady (Pulumi.lady.yaml)"],
        madam: ["a WireGuard peer of lady (Pulumi.lady.yaml)"],
      },
    });
  });

  test("a control plane: every site reporting to it", () => {
    const r = run(["Pulumi.master.yaml"]);
    expect(r.sites).toEqual(["master", "lady", "madam", "solo"]);
    expect(r.reasons.solo).toEqual(["reports to master (Pulumi.master.yaml)"]);
  });

  test("the old version counts too: a backup target moved away is still affected", () => {
    const base = estate({
      master: cp(),
      lady: services("master", { backup: { target: "madam" } }),
      madam: services("master"),
    });
    const head = estate({ master: cp(), lady: services("master"), madam: services("master") });
    expect(run(["Pulumi.lady.yaml"], head, base).sites).toEqual(["master", "lady", "madam"]);
    expect(run(["Pulumi.lady.yaml"], head, undefined).sites).toEqual(["master", "lady"]);
  });

  test("a secondary's primaries, in the old version and the new: their shares and Traefik's peers follow it", () => {
    const base = estate({
      master: cp(),
      lady: services("master"),
      madam: services("master", { services: { homepage: { follows: "lady" } } }),
    });
    const head = estate({
      master: cp(),
      lady: services("master"),
      solo: services("master"),
      madam: services("master", { services: { pihole: { follows: "solo" }, nextcloud: true } }),
    });
    expect(siteLinks("madam", services("master", { services: { pihole: { follows: "solo" } } }))).toEqual({
      name: "madam",
      role: "services",
      controlPlane: "master",
      follows: ["solo"],
      tunnel: false,
    });
    const r = run(["Pulumi.madam.yaml"], head, base);
    expect([r.sites, r.reasons.lady, r.reasons.solo]).toEqual([
      ["master", "lady", "madam", "solo"],
      ["the primary of a secondary on madam (Pulumi.madam.yaml)"],
      ["the primary of a secondary on madam (Pulumi.madam.yaml)"],
    ]);
  });

  test("a new site: itself and its control plane", () => {
    const base = estate({ master: cp(), lady: services("master") });
    const head = estate({ master: cp(), lady: services("master"), zed: services("master") });
    expect(run(["Pulumi.zed.yaml"], head, base)).toEqual({
      sites: ["master", "zed"],
      deleted: [],
      reasons: { zed: ["Pulumi.zed.yaml changed"], master: ["the control plane of zed (Pulumi.zed.yaml)"] },
    });
  });

  test("a deleted site: its old control plane and backup target, not itself; reported as deleted", () => {
    const base = estate({
      master: cp(),
      other: cp(),
      lady: services("master"),
      zed: services("master", { backup: { target: "lady" } }),
    });
    const head = estate({ master: cp(), other: cp(), lady: services("master") });
    expect(run(["Pulumi.zed.yaml"], head, base)).toEqual({
      sites: ["master", "lady"],
      deleted: ["zed"],
      reasons: {
        master: ["the control plane of zed (Pulumi.zed.yaml)"],
        lady: ["keeps zed's backups (Pulumi.zed.yaml)"],
      },
    });
  });

  test("a deleted site whose old version is unknown: every control plane", () => {
    const head = estate({ master: cp(), other: cp(), lady: services("master") });
    expect(run(["Pulumi.zed.yaml"], head)).toEqual({
      sites: ["master", "other"],
      deleted: ["zed"],
      reasons: {
        master: [
          "a control plane, and which is zed's is unknown: Pulumi.zed.yaml is deleted, its old version not read",
        ],
        other: [
          "a control plane, and which is zed's is unknown: Pulumi.zed.yaml is deleted, its old version not read",
        ],
      },
    });
  });

  test("a stack file that cannot be read: itself (its preview shows the error) and every control plane", () => {
    const head = estate({ master: cp(), other: cp(), lady: "config: [\n" });
    expect(run(["Pulumi.lady.yaml"], head)).toEqual({
      sites: ["master", "other", "lady"],
      deleted: [],
      reasons: {
        lady: ["Pulumi.lady.yaml changed"],
        master: ["a control plane, and which is lady's is unknown: Pulumi.lady.yaml cannot be read"],
        other: ["a control plane, and which is lady's is unknown: Pulumi.lady.yaml cannot be read"],
      },
    });
  });

  test("a bad path names itself", () => {
    expect(() => run(["../x"])).toThrow("`../x`: expected a path relative to the repository root");
  });
});

describe("npm run affected (this repository's stack files)", () => {
  const cli = (args: string[], input?: string) =>
    spawnSync("npx", ["ts-node", "--transpile-only", "scripts/affected.ts", ...args], {
      cwd: ROOT,
      encoding: "utf8",
      ...(input === undefined ? {} : { input }),
    });

  test("names on stdin: lady's stack file -> master, lady and madam (its WireGuard peer), each with why", () => {
    const r = cli(["-"], "README.md\nPulumi.lady.yaml\n");
    expect(r.stderr).toBe(
      [
        "affected: master: the control plane of lady (Pulumi.lady.yaml)",
        "affected: lady: Pulumi.lady.yaml changed",
        "affected: madam: a WireGuard peer of lady (Pulumi.lady.yaml)",
        "",
      ].join("\n"),
    );
    expect([r.status, r.stdout]).toEqual([0, "master,lady,madam\n"]);
  });

  test("docs only: an empty line, and says so", () => {
    const r = cli(["-"], "README.md\n");
    expect([r.status, r.stdout, r.stderr]).toEqual([
      0,
      "\n",
      "affected: no site (docs, tests or CI files only)\n",
    ]);
  });

  test("against a base ref: HEAD itself changes nothing", () => {
    const r = cli(["HEAD"]);
    expect([r.status, r.stdout]).toEqual([0, "\n"]);
  });

  test.each([
    [
      [],
      "affected: usage: npm run affected -- <base-ref>   (or `-` to read the changed file names from stdin); got no argument",
    ],
    [["--sites", "x"], "got `--sites` `x`"],
    [["no-such-ref"], "affected: base ref `no-such-ref` is not a commit here"],
  ])("%j: exit 1 with what was wrong", (args, message) => {
    const r = cli(args);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(message);
    expect(r.stdout).toBe("");
  });
});
