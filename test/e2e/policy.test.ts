import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { POLICY_PACK } from "../../policy";
import { programStack } from "./jsProgram";

/**
 * The pack on the real engine, as scripts/estate.ts runs it (Automation API, `policyPacks` and `policyPackConfigs`):
 * a throwaway project whose Docker resources the rules check. No sandbox and no Docker daemon: a preview of these
 * needs none, so `npx jest -c jest.e2e.config.js test/e2e/policy.test.ts` runs alone in seconds. The Pulumi toolchain
 * (scripts/pulumi-env.sh) is required, as for every e2e test; without it this fails with the toolchain's message.
 */

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-policy-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Redis as the program would deploy it; with config `broken: true`, published on all addresses from `redis:latest`. */
const PROGRAM = `
const docker = require("@pulumi/docker");
const pulumi = require("@pulumi/pulumi");
const broken = new pulumi.Config().getBoolean("broken") === true;
const provider = new docker.Provider("site", { host: "unix:///nonexistent.sock" });
const image = new docker.RemoteImage("site-redis", { name: "docker.io/library/redis:7.4.1-alpine" }, { provider });
new docker.Volume("site-redis-data", { name: "redis-data" }, { provider, protect: true, retainOnDelete: true });
new docker.Container("site-redis", {
  name: "redis",
  image: broken ? "redis:latest" : image.imageId,
  memory: 64,
  restart: "unless-stopped",
  ports: [{ internal: 6379, external: 6379, ip: broken ? "0.0.0.0" : "127.0.0.1" }],
  labels: [{ label: "cloud.qui3tly.service", value: "redis" }],
}, { provider });
`;

let stack: Stack;
let config: string;
beforeAll(
  async () => {
    stack = await programStack(tmp, "policy-test", PROGRAM, "site");
    config = path.join(tmp, "policy.json");
    // What policyConfig() writes for a site; this one declares no public port.
    fs.writeFileSync(config, JSON.stringify({ "host-ports-not-public": { publicPorts: {} } }));
  },
  10 * 60 * 1000,
);

async function preview(broken: boolean) {
  await stack.setConfig("broken", { value: String(broken) });
  return stack.preview({ policyPacks: [POLICY_PACK], policyPackConfigs: [config] });
}

test("a clean program previews with the pack passing", async () => {
  const r = await preview(false);
  expect(r.stdout).toContain("✅ qcloud@v0.1.0");
  expect(r.changeSummary).toEqual({ create: 5 });
}, 120_000);

test("a program that breaks rules is refused, with each rule's name and message", async () => {
  const error = await preview(true).then(
    () => undefined,
    (e: Error) => e,
  );
  expect(error?.message).toContain("❌ qcloud@v0.1.0");
  expect(error?.message).toContain(
    "[mandatory]  image-pinned  (docker:index:Container: site-redis)" +
      "\n          Every image is pinned: an exact tag (never `latest`) or a digest." +
      "\n          container `site-redis` (`redis`) runs `redis:latest`: its tag is `latest`; expected an exact version tag or a digest",
  );
  expect(error?.message).toContain(
    "container `site-redis` (`redis`) publishes host port 6379/tcp on all addresses, which the catalog does not declare public",
  );
}, 120_000);
