import * as fs from "node:fs";
import type * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { startHcloudApi, type FirewallRule, type Machines } from "../../scripts/sandbox/hcloud";
import { programStack } from "./jsProgram";

/**
 * The real engine and the real hcloud provider plugin (scripts/toolchain.sh) against the Hetzner Cloud API double
 * (scripts/sandbox/hcloud.ts): up, an idempotent preview, a rules change, destroy. The machines are a recorder: no
 * Docker, no sandbox servers. `npx jest -c jest.e2e.config.js test/e2e/hcloud.test.ts`; needs the toolchain.
 */

const TOKEN = "q".repeat(64);
const KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx9pVqP2j3cA2YkWm8dGmQz3Vw0xQ3fW6sLq1rB7d2K admin@example\n"; // as read from a file: kept as given
const USER_DATA = "#cloud-config\npackages: [docker.io]\n";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-hcloud-e2e-"));

/** A key, a firewall (SSH, and HTTPS or not per config `https`) and a server using both. */
const PROGRAM = `
const hcloud = require("@pulumi/hcloud");
const pulumi = require("@pulumi/pulumi");
const config = new pulumi.Config();
const provider = new hcloud.Provider("hetzner", { token: config.requireSecret("token"), endpoint: config.require("endpoint") });
const key = new hcloud.SshKey("admin", { name: "admin", publicKey: ${JSON.stringify(KEY)} }, { provider });
const rules = [{ direction: "in", protocol: "tcp", port: "22", sourceIps: ["0.0.0.0/0", "::/0"] }];
if (config.getBoolean("https")) rules.push({ direction: "in", protocol: "tcp", port: "443", sourceIps: ["0.0.0.0/0"] });
rules.push({ direction: "in", protocol: "icmp", sourceIps: ["10.0.0.0/8"] });
const firewall = new hcloud.Firewall("edge", { name: "edge", rules }, { provider });
const server = new hcloud.Server("lady", {
  name: "lady",
  serverType: "cx22",
  image: "debian-12",
  location: "fsn1",
  sshKeys: [key.id],
  firewallIds: [firewall.id.apply(Number)],
  userData: ${JSON.stringify(USER_DATA)},
  labels: { site: "lady" },
}, { provider });
exports.ipv4 = server.ipv4Address;
exports.status = server.status;
`;

const SSH: FirewallRule = { direction: "in", protocol: "tcp", port: "22", source_ips: ["0.0.0.0/0", "::/0"], destination_ips: [] }; // prettier-ignore
const HTTPS: FirewallRule = { direction: "in", protocol: "tcp", port: "443", source_ips: ["0.0.0.0/0"], destination_ips: [] }; // prettier-ignore
const PING: FirewallRule = {
  direction: "in",
  protocol: "icmp",
  source_ips: ["10.0.0.0/8"],
  destination_ips: [],
};
/** The provider sends rules as a set: compare them by content, not order. */
const sorted = (rules?: readonly FirewallRule[]) => [...(rules ?? [])].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)); // prettier-ignore

/** A recorder, not machines: it keeps every call and answers with a fixed address. */
const calls: [string, any][] = [];
const machines: Machines = {
  create: async (m) => (calls.push(["create", m]), { ipv4: "10.213.47.50" }),
  firewall: async (name, rules) => void calls.push(["firewall", { name, rules }]),
  remove: async (name) => void calls.push(["remove", { name }]),
};

let api: { server: http.Server; url: string };
let stack: Stack;
beforeAll(
  async () => {
    api = await startHcloudApi({ token: TOKEN, stateFile: path.join(tmp, "hcloud.json"), machines });
    stack = await programStack(tmp, "hcloud-test", PROGRAM, "sandbox");
    await stack.setAllConfig({
      token: { value: TOKEN, secret: true },
      endpoint: { value: api.url },
      https: { value: "false" },
    });
  },
  10 * 60 * 1000,
);
afterAll(async () => {
  await new Promise((resolve) => api?.server.close(resolve));
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("up creates the key, the firewall and the server: the machine gets the user data, the key and the rules", async () => {
  const r = await stack.up();
  expect(r.summary.resourceChanges).toEqual({ create: 5 });
  expect([r.outputs.ipv4.value, r.outputs.status.value]).toEqual(["10.213.47.50", "running"]);
  expect(calls.map(([kind]) => kind)).toEqual(["create"]);
  const created = calls[0][1];
  expect({ ...created, rules: sorted(created.rules) }).toEqual({
    id: expect.any(Number),
    name: "lady",
    userData: USER_DATA,
    sshKeys: [KEY],
    rules: sorted([SSH, PING]),
  });
}, 600_000);

test("a second preview, refreshing (every resource read back from the double), has no changes", async () => {
  const r = await stack.preview({ refresh: true, expectNoChanges: true });
  expect(r.changeSummary).toEqual({ same: 5 });
}, 600_000);

test("a rules change reaches the machine", async () => {
  calls.length = 0;
  await stack.setConfig("https", { value: "true" });
  const r = await stack.up();
  expect(r.summary.resourceChanges).toEqual({ same: 4, update: 1 });
  expect(calls.map(([kind, c]) => [kind, c.name, sorted(c.rules)])).toEqual([
    ["firewall", "lady", sorted([SSH, HTTPS, PING])],
  ]);
  expect((await stack.preview({ expectNoChanges: true })).changeSummary).toEqual({ same: 5 });
}, 600_000);

test("destroy removes the server's machine", async () => {
  calls.length = 0;
  const r = await stack.destroy();
  expect(r.summary.resourceChanges).toEqual({ delete: 5 });
  expect(calls).toEqual([["remove", { name: "lady" }]]);
}, 600_000);
