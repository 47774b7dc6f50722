import type { EngineEvent, OpType } from "@pulumi/pulumi/automation";
import { EXIT, exitCode, order } from "../scripts/estateRun";
import { changesOf, emptyCounts, reviewMarkdown, violationsOf, type SiteReport } from "../scripts/review";
import { EMPTY_ESTATE } from "../model/estate";

/** The review (scripts/review.ts) from step events shaped as the engine sends them (`pulumi preview` on the sandbox). */

const CONTAINER = "docker:index/container:Container";
const VOLUME = "docker:index/volume:Volume";
const IMAGE = "docker:index/remoteImage:RemoteImage";
const urn = (type: string, name: string) =>
  `urn:pulumi:lady::qui3tly-cloud::qcloud:site:Site$qcloud:service:Service$${type}::${name}`;

let seq = 0;
function step(
  op: OpType,
  type: string,
  name: string,
  more: { old?: object; new?: object; diffs?: string[] } = {},
): EngineEvent {
  const state = (s?: object) =>
    s && { type, urn: urn(type, name), id: "", parent: "", provider: "", inputs: {}, outputs: {}, ...s };
  return {
    sequence: seq++,
    timestamp: 0,
    resourcePreEvent: {
      metadata: {
        op,
        urn: urn(type, name),
        type,
        provider: "",
        ...(more.diffs ? { diffs: more.diffs } : {}),
        ...(more.old ? { old: state(more.old) } : {}),
        ...(more.new ? { new: state(more.new) } : {}),
      } as never,
    },
  };
}

const SECRET_VALUE = "hunter2-the-password";
const dbReplaced = [
  step("same", CONTAINER, "lady-unifi"),
  step("read", "pulumi:pulumi:StackReference", "lady-control-plane"),
  step("create", IMAGE, "lady-postgres-16-6", {
    new: { inputs: { name: "postgres:16.6-alpine@sha256:bb" } },
  }),
  step("delete", IMAGE, "lady-postgres-16-4", {
    old: { inputs: { name: "postgres:16.4-alpine@sha256:aa" }, outputs: { imageId: "sha256:old" } },
  }),
  ...(["create-replacement", "replace", "delete-replaced"] as const).map((op) =>
    step(op, CONTAINER, "lady-nextcloud-db", {
      diffs: ["image", "envs"],
      old: {
        inputs: { image: "sha256:old", envs: "[secret]", volumes: [{ volumeName: "nextcloud-db-data" }] },
      },
      new: { inputs: { image: "04da6b54-80e4-46f7-96ec-b56ff0331ba9", envs: "[secret]" } },
    }),
  ),
];

const report = (events: EngineEvent[], more: Partial<SiteReport> = {}): SiteReport => ({
  site: "lady",
  result: "changes",
  counts: { ...emptyCounts(), replace: 1 },
  durationMs: 8000,
  changes: changesOf(events),
  policy: violationsOf(events),
  ...more,
});

describe("the review of a preview", () => {
  test("a replacement is one change; unchanged and read steps are none", () => {
    expect(changesOf(dbReplaced).map((c) => `${c.op} ${c.urn.split("::").pop()}`)).toEqual([
      "create lady-postgres-16-6",
      "delete lady-postgres-16-4",
      "replace lady-nextcloud-db",
    ]);
  });

  test("a replaced database container is named with its image change and its kept volume, data first; a secret is said to change, never shown", () => {
    const md = reviewMarkdown("Estate preview", [report(dbReplaced)]);
    const line =
      "- lady: container `nextcloud-db` is replaced (image postgres:16.4-alpine -> postgres:16.6-alpine, envs (secret)); its volume `nextcloud-db-data` is kept";
    expect(md.split("#### ")[1]).toBe(`:warning: Touches data\n\n${line}\n\n`);
    expect(md).toContain(`#### lady: 1 to replace\n\n- lady: image \`postgres-16-4\` is deleted\n${line}\n`);
    expect(md).toContain("- 1 resource is created: image `postgres-16-6`");
    expect(md).not.toContain("sha256:");
    expect(md).not.toContain(SECRET_VALUE);
  });

  test("a volume-bearing service removed: its volumes first, retained or not", () => {
    const events = [
      step("delete", CONTAINER, "lady-nextcloud-redis", {
        old: { inputs: { volumes: [{ volumeName: "nextcloud-redis-data" }] } },
      }),
      step("delete", VOLUME, "lady-nextcloud-redis-data", {
        old: { inputs: { name: "nextcloud-redis-data" }, retainOnDelete: true },
      }),
      step("delete", VOLUME, "lady-scratch", { old: { inputs: { name: "scratch" }, protect: true } }),
    ];
    const data = reviewMarkdown("Estate preview", [report(events)])
      .split("#### ")[1]!
      .split("\n");
    expect(data.filter((l) => l.startsWith("- "))).toEqual([
      "- lady: volume `nextcloud-redis-data` leaves the stack; its data stays on the server (retained on delete) until it is pruned by hand",
      "- lady: volume `scratch` is deleted, with its data; it is protected: `up` refuses until it is unprotected",
      "- lady: container `nextcloud-redis` is deleted",
    ]);
  });

  test("a mandatory policy refusal is listed at the top with its resource", () => {
    const events: EngineEvent[] = [
      {
        sequence: 1,
        timestamp: 0,
        policyEvent: {
          resourceUrn: urn(CONTAINER, "lady-nextcloud-redis"),
          message: "passes `REDIS_PASSWORD` in plain text",
          color: "never",
          policyName: "secret-env-not-plain",
          policyPackName: "qcloud",
          policyPackVersion: "0.1.0",
          policyPackVersionTag: "0.1.0",
          enforcementLevel: "mandatory",
        },
      },
    ];
    const md = reviewMarkdown("Estate preview", [
      report(events, { result: "failed", error: "preview failed" }),
    ]);
    expect(md).toContain(
      "#### :no_entry: Refused by policy\n\n- lady: `secret-env-not-plain` on container `nextcloud-redis`: passes `REDIS_PASSWORD` in plain text\n",
    );
    expect(md).toContain("| lady | 0 | 0 | 1 | 0 | 0 | 8.0 s | **failed** |");
  });

  test("cut to GitHub's limit: the summary whole, the diff cut and said so", () => {
    const diff = "  ~ line of a long diff\n".repeat(10_000);
    const md = reviewMarkdown("Estate preview", [report(dbReplaced, { diff })], 20_000);
    expect(md.length).toBeLessThanOrEqual(20_000);
    expect(md).toContain("its volume `nextcloud-db-data` is kept");
    expect(md).toContain(
      "... (cut to GitHub's comment limit: run the preview for the rest)\n```\n</details>",
    );
  });
});

describe("the estate run", () => {
  const site = (name: string, controlPlane: string) =>
    ({ ...({} as object), name, controlPlane }) as (typeof EMPTY_ESTATE.sites)[number];
  const estate = { sites: [site("lady", "master"), site("madam", "master"), site("master", "master")] };

  test("control planes first; unknown sites refused by name", () => {
    expect(order(estate, [])).toEqual({ first: ["master"], then: ["lady", "madam"] });
    expect(order(estate, ["lady"])).toEqual({ first: [], then: ["lady"] });
    expect(() => order(estate, ["lady", "nobody"])).toThrow(
      "--sites: expected sites of the estate (lady, madam, master); unknown: nobody",
    );
  });

  test("exit codes: failure over drift over changes", () => {
    const r = (result: SiteReport["result"]) => report([], { result });
    expect(exitCode("preview", [r("ok"), r("ok")])).toBe(EXIT.ok);
    expect(exitCode("preview", [r("ok"), r("changes")])).toBe(EXIT.changes);
    expect(exitCode("up", [r("ok"), r("skipped")])).toBe(EXIT.failed);
    expect(exitCode("drift", [r("drift"), r("ok")])).toBe(EXIT.drift);
    expect(exitCode("drift", [r("drift"), r("failed")])).toBe(EXIT.failed);
  });
});
