import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { mapSource } from "../config/source";
import { loadProjectSite } from "../model/estate";
import { loadSite } from "../model/site";
import { forgetHost, formatReport, notBlank, recoveryPlan, type StateExport } from "../scripts/drPlan";
import { snapshot } from "./fixtures";
import { withHost } from "../scripts/stackFile";

/** `npm run dr`'s decisions that need no server: which snapshots, what is blank, the moved stack file, the report. */

const ROOT = path.resolve(__dirname, "..");
const lady = loadProjectSite(ROOT, "lady");

describe("the recovery plan: every service's newest snapshot, databases first", () => {
  const services = ["nextcloud", "tailscale", "traefik", "uisp", "unifi"];
  const all = services.flatMap((s, i) => [
    snapshot(`${i}a${"0".repeat(6)}`, s, "2026-11-28T03:00:00Z"),
    snapshot(`${i}b${"0".repeat(6)}`, s, "2026-11-29T03:00:00Z"),
  ]);

  test("lady: the two services with a PostgreSQL dump come first, each from its newest snapshot of lady's", () => {
    const plan = recoveryPlan(lady, [
      ...all,
      snapshot("ffffffff", "nextcloud", "2026-11-30T03:00:00Z", "master"),
    ]);
    expect(plan.services).toEqual(["nextcloud", "uisp", "tailscale", "traefik", "unifi"]);
    expect(plan.databases).toEqual(["nextcloud", "uisp"]);
    expect(plan.services.map((s) => plan.snapshots[s]!.short_id)).toEqual(
      plan.services.map((s) => `${services.indexOf(s)}b000000`),
    );
  });

  test("refuses, naming every service without a snapshot, rather than bring them back empty", () => {
    const partial = all.filter((s) => !["uisp", "tailscale"].some((x) => s.tags!.includes(`service=${x}`)));
    expect(() => recoveryPlan(lady, partial)).toThrow(
      "no snapshot of `tailscale`, `uisp` of site `lady` in its repository on `master`: nothing to bring them back from (a site recovered without them would start empty)",
    );
    expect(() => recoveryPlan(lady, [])).toThrow(
      /^no snapshot of `nextcloud`, `tailscale`, `traefik`, `uisp`, `unifi`/,
    );
  });
});

describe("a blank server holds no container and no volume", () => {
  test.each([
    [{ containers: [], volumes: [] }, undefined],
    [{ containers: ["traefik"], volumes: [] }, "1 container (traefik)"],
    [
      { containers: ["a", "b", "c", "d", "e", "f"], volumes: ["nextcloud-data", "x"] },
      "6 containers (a, b, c, d, e, ...) and 2 volumes (nextcloud-data, x)",
    ],
  ])("%j", (contents, why) => {
    expect(notBlank(contents)).toBe(why);
  });
});

describe("--to: the stack file moves to the new server, nothing else changes", () => {
  const text = fs.readFileSync(path.join(ROOT, "Pulumi.lady.yaml"), "utf8");
  const site = (t: string) => loadSite(mapSource("Pulumi.lady.yaml", "lady", YAML.parse(t).config));

  test("address, port and host key; the tunnel's endpoint follows the host unless given", () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx2HhWZ5WZcQm3Qy6ZC2ZJ6k1bQk4m0Ckq0b9cQm0QX";
    const moved = withHost(text, { address: "203.0.113.7", port: 2222, hostKey: key });
    const s = site(moved);
    expect(s.host).toMatchObject({ kind: "existing", address: "203.0.113.7", port: 2222, hostKey: key });
    // The committed file sets no endpoint: it defaults to the host's address, which moved.
    expect(s.mesh.wireguard?.endpoint ?? (s.host as { address: string }).address).toBe("203.0.113.7");
    // Only the host changed; the comments stay.
    const parsed = (t: string) => YAML.parse(t).config["qui3tly-cloud:site"];
    expect({ ...parsed(moved), host: parsed(text).host }).toEqual(parsed(text));
    expect(moved.split("\n").filter((l) => l.trim().startsWith("#"))).toEqual(
      text.split("\n").filter((l) => l.trim().startsWith("#")),
    );
    expect(
      site(withHost(text, { address: "203.0.113.7", endpoint: "198.51.100.1" })).mesh.wireguard?.endpoint,
    ).toBe("198.51.100.1");
  });

  test("an endpoint that was the old address follows it", () => {
    const pinned = YAML.parseDocument(text);
    pinned.setIn(["config", "qui3tly-cloud:site", "mesh", "wireguard", "endpoint"], "lady.qui3tly.cloud");
    const s = site(withHost(pinned.toString(), { address: "203.0.113.7" }));
    expect(s.mesh.wireguard?.endpoint).toBe("203.0.113.7");
  });

  test("an hcloud host has no address to move", () => {
    const doc = YAML.parseDocument(text);
    doc.setIn(["config", "qui3tly-cloud:site", "host"], {
      kind: "hcloud",
      serverType: "cx22",
      location: "fsn1",
    });
    expect(() => withHost(doc.toString(), { address: "203.0.113.7" })).toThrow(/with `kind: existing`/);
  });
});

test("the report: every phase, its parts indented, the total", () => {
  expect(
    formatReport(
      "lady",
      [
        { name: "check", seconds: 2.04 },
        { name: "place", seconds: 3.5, parts: { nextcloud: 3, traefik: 0.5 } },
      ],
      5.54,
    ),
  ).toBe(
    [
      "dr: site lady recovered",
      "  check                                            2.0 s",
      "  place                                            3.5 s",
      "    nextcloud                                      3.0 s",
      "    traefik                                        0.5 s",
      "  total                                            5.5 s",
    ].join("\n"),
  );
});

describe("reconcile: the state forgets what the lost server held, and nothing else", () => {
  const r = (type: string, name: string, more: Record<string, unknown> = {}) => ({
    urn: `urn:pulumi:lady::qui3tly-cloud::${type}::${name}`,
    type: type.split("$").pop()!,
    ...more,
  });
  const urn = (type: string, name: string) => r(type, name).urn;
  const state = (): StateExport => ({
    version: 3,
    deployment: {
      manifest: { time: "t" },
      secrets_providers: { type: "passphrase", state: { salt: "v1:x" } },
      resources: [
        r("pulumi:providers:docker", "lady"),
        r("command:remote:Command", "lady-docker"),
        r("qcloud:site:Site$qcloud:service:Service$docker:index/volume:Volume", "lady-nextcloud-html"),
        r("qcloud:site:Site$docker:index/network:Network", "lady-edge"),
        r("qcloud:site:Site$qcloud:service:Service$docker:index/container:Container", "lady-nextcloud", {
          dependencies: [
            urn("qcloud:site:Site$qcloud:service:Service$docker:index/volume:Volume", "lady-nextcloud-html"),
            urn("qcloud:site:Site$docker:index/network:Network", "lady-edge"),
            urn("pulumi:providers:docker", "lady"),
          ],
        }),
        r(
          "qcloud:site:Site$qcloud:service:Service$random:index/randomPassword:RandomPassword",
          "lady-nextcloud-db",
          {
            outputs: {
              result: {
                "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
                ciphertext: "v1:abc",
              },
            },
          },
        ),
        r("qcloud:site:Site$qcloud:backup:Backups$command:remote:Command", "lady-backup", {
          dependencies: [
            urn("qcloud:site:Site$qcloud:service:Service$docker:index/container:Container", "lady-nextcloud"),
          ],
        }),
        r("qcloud:site:Site$qcloud:mesh:MeshNode$command:remote:Command", "lady-tailnet-address", {
          dependencies: [
            urn("qcloud:site:Site$qcloud:service:Service$docker:index/container:Container", "lady-nextcloud"),
          ],
          propertyDependencies: {
            triggers: [
              urn(
                "qcloud:site:Site$qcloud:service:Service$docker:index/container:Container",
                "lady-nextcloud",
              ),
            ],
            connection: [urn("command:remote:Command", "lady-docker")],
          },
        }),
      ],
      pending_operations: [
        {
          resource: r(
            "qcloud:site:Site$qcloud:service:Service$docker:index/container:Container",
            "lady-nextcloud",
          ),
          type: "creating",
        },
      ],
    },
  });

  test("Docker's resources and the backup job's install go, with every reference to them; keys and secrets stay as they were", () => {
    const s = state();
    expect(forgetHost(s, "lady")).toBe(4);
    expect(s.deployment.resources!.map((x) => x.urn.split("::").pop())).toEqual([
      "lady",
      "lady-docker",
      "lady-nextcloud-db",
      "lady-tailnet-address",
    ]);
    const address = s.deployment.resources!.at(-1)!;
    expect([address.dependencies, address.propertyDependencies]).toEqual([
      [],
      { triggers: [], connection: [urn("command:remote:Command", "lady-docker")] },
    ]);
    // The password as exported: encrypted, untouched.
    expect(s.deployment.resources![2]).toEqual(state().deployment.resources![5]);
    expect(s.deployment.pending_operations).toEqual([]);
    expect(s.deployment.secrets_providers).toEqual(state().deployment.secrets_providers);
  });

  test("another site's backup job is not this site's", () => {
    const s = state();
    s.deployment.resources!.push(r("qcloud:backup:Backups$command:remote:Command", "madam-backup"));
    forgetHost(s, "lady");
    expect(s.deployment.resources!.map((x) => x.urn.split("::").pop())).toContain("madam-backup");
  });
});
