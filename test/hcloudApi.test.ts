import * as crypto from "node:crypto";
import * as fs from "node:fs";
import type * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import {
  fingerprint,
  matchesSelector,
  startHcloudApi,
  type FirewallRule,
  type Machines,
} from "../scripts/sandbox/hcloud";
import { firewallLines } from "../scripts/sandbox/hcloudMachines";

/**
 * The Hetzner Cloud API double (scripts/sandbox/hcloud.ts) in-process, with requests as hcloud-go v2.36 sends them
 * (paths, query parameters and bodies from its schema package). The real provider against it: test/e2e/hcloud.test.ts.
 */

const TOKEN = "t".repeat(64);
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx9pVqP2j3cA2YkWm8dGmQz3Vw0xQ3fW6sLq1rB7d2K admin@example";
const SSH_RULE: FirewallRule = { direction: "in", protocol: "tcp", port: "22", source_ips: ["0.0.0.0/0", "::/0"], destination_ips: [] }; // prettier-ignore
const PING_RULE: FirewallRule = { direction: "in", protocol: "icmp", source_ips: ["10.0.0.0/8"], destination_ips: [] }; // prettier-ignore

/** A recorder, not machines: it keeps every call and answers with a fixed address (or fails when told to). */
class Recorder implements Machines {
  calls: [string, unknown][] = [];
  fail?: string;
  async create(m: Parameters<Machines["create"]>[0]) {
    this.calls.push(["create", m]);
    if (this.fail) throw new Error(this.fail);
    return { ipv4: "10.213.47.50" };
  }
  async firewall(name: string, rules?: readonly FirewallRule[]) {
    this.calls.push(["firewall", { name, rules }]);
    if (this.fail) throw new Error(this.fail);
  }
  async remove(name: string) {
    this.calls.push(["remove", { name }]);
    if (this.fail) throw new Error(this.fail);
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-hcloud-"));
const stateFile = path.join(tmp, "state.json");
let machines: Recorder;
let api: { server: http.Server; url: string };

async function start() {
  machines = new Recorder();
  api = await startHcloudApi({ token: TOKEN, stateFile, machines });
}
const stop = () => new Promise((resolve) => api.server.close(resolve));
beforeAll(start);
afterAll(async () => {
  await stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function call(method: string, route: string, body?: unknown, token = TOKEN) {
  const res = await fetch(api.url + route, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    body: text ? JSON.parse(text) : undefined,
  };
}

describe("errors, in Hetzner's shape", () => {
  test.each([
    ["a wrong token", "GET", "/ssh_keys", undefined, "x".repeat(64), 401, "unauthorized"],
    ["no token", "GET", "/servers", undefined, "", 401, "unauthorized"],
    ["an unknown ssh key", "GET", "/ssh_keys/999", undefined, TOKEN, 404, "not_found"],
    ["an unknown server", "DELETE", "/servers/999", undefined, TOKEN, 404, "not_found"],
    ["an unknown route", "GET", "/certificates/1", undefined, TOKEN, 404, "not_found"],
    [
      "a key that is not one",
      "POST",
      "/ssh_keys",
      { name: "k", public_key: "nope" },
      TOKEN,
      422,
      "invalid_input",
    ],
    ["a rule without a port", "POST", "/firewalls", { name: "f", rules: [{ direction: "in", protocol: "tcp", source_ips: ["0.0.0.0/0"] }] }, TOKEN, 422, "invalid_input"], // prettier-ignore
    ["an unknown server type", "POST", "/servers", { name: "s", server_type: "cx99", image: "debian-12" }, TOKEN, 422, "invalid_input"], // prettier-ignore
  ])("%s: %s %s", async (_, method, route, body, token, status, code) => {
    const r = await call(method, route, body, token);
    expect([r.status, r.type, r.body.error.code]).toEqual([status, "application/json", code]);
  });

  test("invalid input names the field", async () => {
    const r = await call("POST", "/firewalls", {
      name: "f",
      rules: [{ direction: "sideways", protocol: "tcp" }],
    });
    expect(r.body).toEqual({
      error: {
        code: "invalid_input",
        message: "invalid input in field 'rules[0].direction'",
        details: { fields: [{ name: "rules[0].direction", messages: ["must be `in` or `out`"] }] },
      },
    });
  });
});

describe("the catalogue the provider looks up", () => {
  test("server type by name (ServerTypeClient.GetByName)", async () => {
    const r = await call("GET", "/server_types?name=cx22");
    expect(
      r.body.server_types.map((t: any) => [t.id, t.name, t.architecture, t.cores, t.memory, t.disk]),
    ).toEqual([[104, "cx22", "x86", 2, 4, 40]]);
    expect(r.body.meta.pagination).toEqual({
      page: 1, per_page: 25, previous_page: null, next_page: null, last_page: 1, total_entries: 1,
    }); // prettier-ignore
  });

  test.each([
    ["x86", 114690387],
    ["arm", 114690389],
  ])("image debian-12 for %s (ImageClient.GetByNameAndArchitecture)", async (arch, id) => {
    const r = await call("GET", `/images?architecture=${arch}&include_deprecated=true&name=debian-12`);
    expect(r.body.images.map((i: any) => [i.id, i.name, i.architecture, i.os_flavor])).toEqual([
      [id, "debian-12", arch, "debian"],
    ]);
  });

  test("locations, datacenters and what is not modelled", async () => {
    expect((await call("GET", "/locations")).body.locations.map((l: any) => l.name)).toEqual([
      "fsn1", "nbg1", "hel1", "ash", "hil", "sin",
    ]); // prettier-ignore
    expect((await call("GET", "/datacenters?name=fsn1-dc14")).body.datacenters[0].location.name).toBe("fsn1");
    expect((await call("GET", "/primary_ips")).body.primary_ips).toEqual([]);
    expect((await call("GET", "/placement_groups/3")).status).toBe(404);
  });

  test("pagination as hcloud-go iterates it (per_page, page, next_page)", async () => {
    const first = await call("GET", "/server_types?per_page=4");
    const second = await call("GET", "/server_types?page=2&per_page=4");
    expect([first.body.server_types.length, first.body.meta.pagination.next_page]).toEqual([4, 2]);
    expect([second.body.server_types.length, second.body.meta.pagination]).toEqual([
      4,
      { page: 2, per_page: 4, previous_page: 1, next_page: null, last_page: 2, total_entries: 8 },
    ]);
  });
});

describe("ssh keys, firewalls, servers", () => {
  const expectedFingerprint = crypto
    .createHash("md5")
    .update(Buffer.from(KEY.split(" ")[1], "base64"))
    .digest("hex")
    .match(/../g)!
    .join(":");
  let keyId: number;
  let firewallId: number;
  let serverId: number;

  test("POST /ssh_keys creates a key with Hetzner's fingerprint; a second with its name is refused", async () => {
    const r = await call("POST", "/ssh_keys", { name: "admin", public_key: KEY, labels: { site: "lady" } });
    expect(r.status).toBe(201);
    keyId = r.body.ssh_key.id;
    expect(r.body.ssh_key).toEqual({
      id: keyId, name: "admin", public_key: KEY, fingerprint: expectedFingerprint, labels: { site: "lady" }, created: expect.any(String),
    }); // prettier-ignore
    expect(fingerprint(KEY)).toBe(expectedFingerprint);
    const again = await call("POST", "/ssh_keys", { name: "admin", public_key: KEY });
    expect([again.status, again.body.error.code]).toEqual([409, "uniqueness_error"]);
  });

  test.each([
    ["name=admin", 1],
    [`fingerprint=${"x"}`, 0],
    ["label_selector=site%3Dlady", 1],
    ["label_selector=site%21%3Dlady", 0],
    ["name=other", 0],
  ])("GET /ssh_keys?%s finds %d", async (query, n) => {
    const r = await call("GET", `/ssh_keys?${query}`);
    expect(r.body.ssh_keys.length).toBe(n);
  });

  test("GET /ssh_keys?fingerprint= finds it; PUT renames and relabels it", async () => {
    const r = await call("GET", `/ssh_keys?fingerprint=${encodeURIComponent(expectedFingerprint)}`);
    expect(r.body.ssh_keys.map((k: any) => k.id)).toEqual([keyId]);
    const put = await call("PUT", `/ssh_keys/${keyId}`, { name: "root", labels: {} });
    expect([put.status, put.body.ssh_key.name, put.body.ssh_key.labels]).toEqual([200, "root", {}]);
  });

  test("POST /firewalls with rules; the rules come back with port and description null when unset", async () => {
    const r = await call("POST", "/firewalls", { name: "web", labels: { role: "web" }, rules: [SSH_RULE] });
    expect(r.status).toBe(201);
    firewallId = r.body.firewall.id;
    expect(r.body).toEqual({
      firewall: {
        id: firewallId,
        name: "web",
        labels: { role: "web" },
        created: expect.any(String),
        rules: [{ ...SSH_RULE, description: null }],
        applied_to: [],
      },
      actions: [],
    });
  });

  test("POST /servers boots the machine with its keys, user data and the firewall's rules", async () => {
    const r = await call("POST", "/servers", {
      name: "lady",
      server_type: "cx22",
      image: 114690387,
      ssh_keys: [keyId],
      location: "fsn1",
      user_data: "#cloud-config\n",
      labels: { site: "lady" },
      firewalls: [{ firewall: firewallId }],
      public_net: { enable_ipv4: true, enable_ipv6: false },
    });
    expect(r.status).toBe(201);
    serverId = r.body.server.id;
    expect(machines.calls).toEqual([
      [
        "create",
        { id: serverId, name: "lady", userData: "#cloud-config\n", sshKeys: [KEY], rules: [SSH_RULE] },
      ],
    ]);
    expect(r.body.action).toMatchObject({
      command: "create_server",
      status: "success",
      progress: 100,
      error: null,
    });
    expect(r.body.next_actions).toEqual([]);
    const s = r.body.server;
    expect([s.status, s.server_type.name, s.image.name, s.location.name, s.datacenter]).toEqual([
      "running", "cx22", "debian-12", "fsn1", null,
    ]); // prettier-ignore
    expect(s.public_net).toEqual({
      ipv4: {
        id: 0,
        ip: "10.213.47.50",
        blocked: false,
        dns_ptr: "static.10.213.47.50.clients.your-server.de",
      },
      ipv6: null,
      floating_ips: [],
      firewalls: [{ id: firewallId, status: "applied" }],
    });
    const fw = await call("GET", `/firewalls/${firewallId}`);
    expect(fw.body.firewall.applied_to).toEqual([{ type: "server", server: { id: serverId } }]);
  });

  test("a server name is unique", async () => {
    const r = await call("POST", "/servers", { name: "lady", server_type: "cx22", image: "debian-12", ssh_keys: ["root"] }); // prettier-ignore
    expect([r.status, r.body.error.code]).toEqual([409, "uniqueness_error"]);
  });

  test("set_rules reaches the machine, and the action says so", async () => {
    machines.calls = [];
    const r = await call("POST", `/firewalls/${firewallId}/actions/set_rules`, {
      rules: [SSH_RULE, PING_RULE],
    });
    expect(r.status).toBe(201);
    expect(r.body.actions).toMatchObject([
      { command: "set_firewall_rules", status: "success", resources: [{ id: firewallId, type: "firewall" }, { id: serverId, type: "server" }] }, // prettier-ignore
    ]);
    expect(machines.calls).toEqual([["firewall", { name: "lady", rules: [SSH_RULE, PING_RULE] }]]);
    const action = await call("GET", `/actions?id=${r.body.actions[0].id}&sort=status&sort=id`);
    expect(action.body.actions.map((a: any) => [a.id, a.status])).toEqual([
      [r.body.actions[0].id, "success"],
    ]);
  });

  test("remove_from_resources opens the machine; a label selector applies the firewall again", async () => {
    machines.calls = [];
    const server = { type: "server", server: { id: serverId } };
    const removed = await call("POST", `/firewalls/${firewallId}/actions/remove_from_resources`, { remove_from: [server] }); // prettier-ignore
    expect(removed.body.actions[0].command).toBe("remove_firewall");
    const selector = { type: "label_selector", label_selector: { selector: "site=lady" } };
    await call("POST", `/firewalls/${firewallId}/actions/apply_to_resources`, { apply_to: [selector] });
    expect(machines.calls).toEqual([
      ["firewall", { name: "lady", rules: undefined }],
      ["firewall", { name: "lady", rules: [SSH_RULE, PING_RULE] }],
    ]);
    const fw = await call("GET", `/firewalls/${firewallId}`);
    expect(fw.body.firewall.applied_to).toEqual([{ ...selector, applied_to_resources: [server] }]);
    // As Hetzner: an applied firewall cannot be deleted.
    expect((await call("DELETE", `/firewalls/${firewallId}`)).body.error.code).toBe("resource_in_use");
  });

  test("PUT /servers relabels; a label no longer selected opens the machine", async () => {
    machines.calls = [];
    const r = await call("PUT", `/servers/${serverId}`, { labels: { site: "madam" } });
    expect([r.status, r.body.server.labels, r.body.server.public_net.firewalls]).toEqual([
      200,
      { site: "madam" },
      [],
    ]);
    expect(machines.calls).toEqual([["firewall", { name: "lady", rules: undefined }]]);
  });

  test.each([
    ["poweroff", "off"],
    ["poweron", "running"],
    ["shutdown", "off"],
    ["reset", "running"],
  ])("POST /servers/{id}/actions/%s leaves it %s", async (command, status) => {
    const r = await call("POST", `/servers/${serverId}/actions/${command}`, {});
    expect([r.status, r.body.action.command, r.body.action.status]).toEqual([
      201,
      `${command}_server`,
      "success",
    ]);
    expect((await call("GET", `/servers/${serverId}`)).body.server.status).toBe(status);
  });

  test("the state survives a restart, and ids keep counting up", async () => {
    await stop();
    await start();
    const s = await call("GET", `/servers?name=lady`);
    expect(s.body.servers.map((x: any) => [x.id, x.public_net.ipv4.ip, x.labels])).toEqual([
      [serverId, "10.213.47.50", { site: "madam" }],
    ]);
    const k = await call("POST", "/ssh_keys", { name: "other", public_key: KEY.replace("Bx9", "Cx9") });
    expect(k.body.ssh_key.id).toBeGreaterThan(serverId);
  });

  test("a failing machine makes a failed action", async () => {
    machines.fail = "no space left";
    const r = await call("POST", "/servers", { name: "madam", server_type: "cpx11", image: "debian-12", location: "ash" }); // prettier-ignore
    expect([r.status, r.body.action.status, r.body.action.error, r.body.server.status]).toEqual([
      201, "error", { code: "action_failed", message: "no space left" }, "off",
    ]); // prettier-ignore
    const d = await call("DELETE", `/servers/${serverId}`);
    expect([d.body.action.status, (await call("GET", `/servers/${serverId}`)).status]).toEqual([
      "error",
      200,
    ]);
    machines.fail = undefined;
  });

  test("DELETE /servers reaches machines.remove and frees the name", async () => {
    machines.calls = [];
    const r = await call("DELETE", `/servers/${serverId}`);
    expect([r.status, r.body.action.command, r.body.action.status]).toEqual([
      200,
      "delete_server",
      "success",
    ]);
    expect(machines.calls).toEqual([["remove", { name: "lady" }]]);
    expect((await call("GET", `/servers/${serverId}`)).status).toBe(404);
    expect((await call("DELETE", `/ssh_keys/${keyId}`)).status).toBe(204);
  });
});

test.each([
  [{ site: "lady" }, "site=lady", true],
  [{ site: "lady" }, "site==lady,site", true],
  [{ site: "lady" }, "site!=lady", false],
  [{ site: "lady" }, "!site", false],
  [{}, "!site", true],
  [{ a: "1", b: "2" }, "a=1, b=3", false],
])("labels %j match %s: %s", (labels, selector, expected) => {
  expect(matchesSelector(labels, selector)).toBe(expected);
});

test("the sandbox server's firewall lines: one per inbound rule and IPv4 source (no IPv6 in the sandbox)", () => {
  const rule = (r: Partial<FirewallRule>): FirewallRule => ({
    direction: "in",
    protocol: "tcp",
    source_ips: [],
    destination_ips: [],
    ...r,
  });
  expect(
    firewallLines([
      rule({ port: "22", source_ips: ["10.213.47.128/32", "2001:db8::/32"] }),
      rule({ protocol: "udp", port: "51820-51821", source_ips: ["0.0.0.0/0", "::/0"] }),
      rule({ protocol: "icmp", source_ips: ["0.0.0.0/0"] }),
      rule({ port: "any", source_ips: ["10.0.0.0/8"] }),
      rule({ direction: "out", port: "443", destination_ips: ["0.0.0.0/0"] }),
      rule({ protocol: "gre", source_ips: ["0.0.0.0/0"] }),
    ]),
  ).toBe("tcp 22 10.213.47.128/32\nudp 51820-51821 0.0.0.0/0\nicmp - 0.0.0.0/0\ntcp 1-65535 10.0.0.0/8\n");
});
