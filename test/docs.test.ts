import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { controlPlaneSite, servicesSite } from "./fixtures";
import { CATALOG, SERVICE_NAMES } from "../catalog";
import { mapSource } from "../config/source";
import { loadEstate } from "../model/estate";
import { loadSite } from "../model/site";
import { RUNBOOKS_PATH, renderAlertRules, ruleFiles } from "../render/rules";
import {
  ALERT_SCOPES,
  ESTATE_DOC,
  estateAlerts,
  estateModels,
  imageParts,
  renderEstateDoc,
} from "../scripts/estateDoc";
import { MermaidIds, anchor, mermaidBlocks, table } from "../scripts/markdown";
import { parseMermaid } from "../scripts/mermaid";

/** docs/estate.md: fresh, every diagram parses, every service and alert documented. */

const ROOT = path.resolve(__dirname, "..");
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), "utf8");
const models = estateModels(ROOT);
const rendered = renderEstateDoc(models);

/** Each diagram of a document that Mermaid's parser refuses, with the line it starts on and the parser's message. */
function diagramErrors(doc: string, file: string): string[] {
  const blocks = mermaidBlocks(doc);
  const errors = parseMermaid(blocks.map((b) => b.source));
  return blocks.flatMap((b, i) => (errors[i] === null ? [] : [`${file}:${b.line}: ${errors[i]}`]));
}

/** The anchors GitHub gives a Markdown file's headings (a repeated one gets `-1`, `-2` ...). Not in code blocks. */
function headingAnchors(doc: string): Set<string> {
  const seen = new Map<string, number>();
  return new Set(
    [...prose(doc).matchAll(/^#{1,6} (.+)$/gm)].map((m) => {
      const a = anchor(m[1]!);
      const n = seen.get(a) ?? 0;
      seen.set(a, n + 1);
      return n === 0 ? a : `${a}-${n}`;
    }),
  );
}

/** A Markdown text without its fenced code blocks. */
const prose = (doc: string) => doc.replace(/^```[\s\S]*?^```$/gm, "");

describe(ESTATE_DOC, () => {
  test("is what `npm run docs` writes from the committed stack files", () => {
    const file = path.join(ROOT, ESTATE_DOC);
    const committed = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    if (committed !== rendered) {
      const a = committed.split("\n");
      const b = rendered.split("\n");
      let i = 0;
      while (i < Math.max(a.length, b.length) && a[i] === b[i]) i++;
      throw new Error(
        `docs/estate.md is stale: run \`npm run docs\`\n(first difference, line ${i + 1}: ` +
          `committed ${JSON.stringify(a[i] ?? "")}, generated ${JSON.stringify(b[i] ?? "")})`,
      );
    }
  });

  test("every diagram parses with Mermaid's own parser", () => {
    const blocks = mermaidBlocks(rendered);
    expect(blocks.map((b) => b.source.split("\n")[0])).toEqual([
      "flowchart LR",
      "flowchart LR",
      "flowchart LR",
      "flowchart LR",
    ]);
    expect(diagramErrors(rendered, ESTATE_DOC)).toEqual([]);
  });

  test("the parse check bites: a broken diagram fails with the parser's message", () => {
    // One break in each diagram: no diagram type, an unclosed label, an edge to nowhere, an unclosed subgraph.
    const [a, b, c, d] = mermaidBlocks(rendered).map((x) => x.source) as [string, string, string, string];
    const broken = [
      a.replace("flowchart LR", "flowchat LR"),
      b.replace('["lady"]', '["lady]'),
      c.replace(/^( {2}n\w+ -->)\|/m, "$1 -->|"),
      d.replace(/\n {2}end$/m, ""),
    ];
    expect(broken.map((x, i) => x !== [a, b, c, d][i])).toEqual([true, true, true, true]);
    const errors = parseMermaid(broken);
    expect(errors[0]).toMatch(/^No diagram type detected matching given configuration for text: flowchat LR/);
    for (const e of errors.slice(1)) expect(e).toMatch(/^Parse error on line \d+:\n/);
    expect(parseMermaid([a, b, c, d])).toEqual([null, null, null, null]);
  });

  test("counts what `npm run check` counts", () => {
    const rows = models.map((m) => {
      const containers = m.services.reduce((n, s) => n + s.containers.length, 0);
      return new RegExp(
        `^\\| ${m.name} +\\| ${m.role} +\\| +${m.services.length} \\| +${containers} \\|$`,
        "m",
      );
    });
    for (const row of rows) expect(rendered).toMatch(row);
    expect(rendered).toMatch(/^\| \*\*total\*\* +\| +\| +\*\*37\*\* \| +\*\*71\*\* \|$/m);
  });

  test("gives each site's cost (master's and lady's are not declared), and shows no secret", () => {
    expect(rendered.match(/^- \*\*cost:\*\* .*$/gm)).toEqual([
      "- **cost:** not declared ([Cost](#cost))",
      "- **cost:** not declared ([Cost](#cost))",
      "- **cost:** 6.49 EUR a month without VAT ([Cost](#cost))",
    ]);
    // The committed lady carries her public sealing key; no key of any kind belongs in the document.
    expect(rendered).not.toMatch(/sealPublicKey|[A-Za-z0-9+/]{40,}={0,2}/);
  });
});

describe("links", () => {
  // docs/estate.md as generated (its freshness is the test above).
  const docs: Record<string, string> = Object.fromEntries(
    ["README.md", "docs/runbooks.md", "docs/metrics.md"].map((f) => [f, read(f)]),
  );
  docs[ESTATE_DOC] = rendered;

  test.each(Object.keys(docs).map((f) => [f]))("%s links only to files and sections that exist", (file) => {
    const links = [...prose(docs[file]!).matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
    const broken = links
      .filter((link) => !/^[a-z]+:/.test(link))
      .filter((link) => {
        const [target, section] = link.split("#") as [string, string | undefined];
        const rel = target === "" ? file : path.posix.join(path.posix.dirname(file), target);
        const text = docs[rel] ?? (fs.existsSync(path.join(ROOT, rel)) ? read(rel) : undefined);
        return text === undefined || (section !== undefined && !headingAnchors(text).has(section));
      });
    expect(broken).toEqual([]);
  });

  test(`${ESTATE_DOC} links each alert it lists to that alert's runbook section`, () => {
    const links = [...rendered.matchAll(/\[(\w+)\]\(runbooks\.md#([^)]+)\)/g)];
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((m) => m[2] !== m[1]!.toLowerCase()).map((m) => m[0])).toEqual([]);
  });
});

describe("every service and alert is documented", () => {
  test.each(SERVICE_NAMES.map((n) => [n]))("catalog service `%s` has a one-line description", (name) => {
    const d = CATALOG[name].description;
    expect([d.trim().length > 0, d.includes("\n")]).toEqual([true, false]);
  });

  test(`every alert rule's runbook_url anchors a section of ${RUNBOOKS_PATH}`, () => {
    const runbooks = headingAnchors(read(RUNBOOKS_PATH));
    const defs = Object.values(ruleFiles(models[0]!.estate)).flat();
    const rules: { alert: string; annotations: Record<string, string> }[] = YAML.parse(
      renderAlertRules(defs, RUNBOOKS_PATH),
    ).groups[0].rules;
    expect(rules.length).toBeGreaterThanOrEqual(defs.length);
    const missing = rules.filter((r) => {
      const [file, section] = r.annotations.runbook_url!.split("#");
      return file !== RUNBOOKS_PATH || !runbooks.has(section!);
    });
    expect(missing.map((r) => r.alert)).toEqual([]);
  });

  test("every alert says for which sites it can fire (ALERT_SCOPES), and no other", () => {
    expect(Object.keys(ALERT_SCOPES).sort()).toEqual(
      estateAlerts(models[0]!.estate)
        .map((a) => a.alert)
        .sort(),
    );
  });
});

describe("renderEstateDoc on another estate", () => {
  // Three sites: a control plane with admins, a services site as committed, one on a new Hetzner server, no tunnel.
  const stacks: Record<string, Record<string, unknown>> = {
    master: controlPlaneSite({
      mesh: { admins: ["ops@qui3tly.cloud"], wireguard: { address: "10.90.0.1" } },
    }),
    lady: servicesSite({ mesh: { wireguard: { address: "10.90.0.2" } }, services: { unifi: true } }),
    madam: servicesSite(
      {
        host: {
          kind: "hcloud",
          // 8 GB: Nextcloud's limits overcommit a cx22's 4 GB past the capacity check's factor.
          serverType: "cx33",
          location: "fsn1",
          sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO9 ops@laptop"],
          sshSources: ["0.0.0.0/0", "::/0"],
        },
        services: { nextcloud: true },
      },
      { "hcloud:token": { secure: "v1:x" } },
    ),
  };
  const sources = Object.entries(stacks).map(([name, config]) =>
    mapSource(`Pulumi.${name}.yaml`, name, config),
  );
  const estate = loadEstate(sources);
  const doc = renderEstateDoc(sources.map((s) => loadSite(s, estate)));

  test("shows every site, control plane first, each host as declared", () => {
    expect([...doc.matchAll(/^## (\w+) \(/gm)].map((m) => m[1])).toEqual(["master", "lady", "madam"]);
    expect(doc).toContain(
      "- **host:** a Hetzner Cloud server made by the stack: `cx33` in `fsn1`, `debian-12`, SSH from `0.0.0.0/0`, `::/0`",
    );
    expect(doc).toContain("| madam     | services      |");
    expect(doc).toContain("| `group:admins` "); // the admins' flows, one per site
  });

  test("its diagrams parse", () => {
    expect(diagramErrors(doc, "doc")).toEqual([]);
  });

  test("is the same text each time", () => {
    expect(renderEstateDoc(sources.map((s) => loadSite(s, estate)))).toBe(doc);
  });
});

describe("helpers", () => {
  test.each([
    ["docker.io/library/redis:7.4.1-alpine", "docker.io/library/redis", "7.4.1-alpine"],
    [
      "registry:5000/docker.io/library/redis:7.4.1@sha256:0123456789abcdef0123456789abcdef",
      "registry:5000/docker.io/library/redis",
      "7.4.1@sha256:0123456789ab",
    ],
    ["registry:5000/redis", "registry:5000/redis", "latest"],
  ])("imageParts(%s)", (image, repository, version) => {
    expect(imageParts(image)).toEqual({ repository, version });
  });

  test("a table is aligned as Prettier aligns it", () => {
    expect(
      table(
        ["a", "n"],
        [
          ["x|y", "7"],
          ["long cell", "12"],
        ],
        [1],
      ),
    ).toBe(
      ["| a         |   n |", "| --------- | --: |", "| x\\|y      |   7 |", "| long cell |  12 |"].join(
        "\n",
      ),
    );
  });

  test("Mermaid ids are letters and digits, one per key, distinct where keys differ only in punctuation", () => {
    const ids = new MermaidIds();
    expect([
      ids.id("lady uptime-kuma"),
      ids.id("lady uptime kuma"),
      ids.id("end"),
      ids.id("lady uptime-kuma"),
    ]).toEqual(["nladyuptimekuma", "nladyuptimekuma2", "nend", "nladyuptimekuma"]);
  });

  test("heading anchors as GitHub makes them", () => {
    expect(
      ["master (control-plane)", "The tailnet and the WireGuard tunnels", "SiteDown"].map(anchor),
    ).toEqual(["master-control-plane", "the-tailnet-and-the-wireguard-tunnels", "sitedown"]);
  });
});
