/**
 * A test double of the Hetzner Cloud API (https://docs.hetzner.cloud) for the sandbox: it answers what the hcloud
 * Pulumi provider (terraform-provider-hcloud v1.60 on hcloud-go v2.36) asks for `hcloud.SshKey`, `hcloud.Firewall`
 * and `hcloud.Server`, in Hetzner's shapes, under `<url>` = `http://<host>:<port>/v1` (the provider's `endpoint`).
 *
 * Covers: ssh_keys (MD5 fingerprints as Hetzner's); firewalls with rules, `apply_to` (servers, label selectors),
 * set_rules, apply_to_resources, remove_from_resources; servers (create, read, rename, labels, delete), their
 * poweron/poweroff/shutdown/reboot/reset, change_type, change_protection, enable/disable_backup; actions; the
 * catalogue the provider looks up (server_types, images, locations, datacenters). Hetzner's errors (401, 404, 409
 * `uniqueness_error`, 422 `invalid_input`, ...), pagination `meta` on lists, one bearer token, and the whole state
 * in one JSON file rewritten atomically on every change: it survives a restart, ids keep counting up.
 *
 * Not covered: networks, volumes, floating and primary IPs as resources, load balancers, placement groups, ISOs,
 * rescue, rebuild, own images, certificates, metrics, reverse DNS: their lists are empty, their ids not found.
 * Actions finish before the response answers (never `running`, so the client never polls); power actions only
 * flip `status`; lists sort by id; label selectors know `k`, `!k`, `k=v`, `k==v`, `k!=v`.
 *
 * The machines behind servers are the caller's (`Machines`): the double boots, re-firewalls and removes them.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import type { AddressInfo } from "node:net";

export interface FirewallRule {
  direction: "in" | "out";
  protocol: "tcp" | "udp" | "icmp" | "esp" | "gre";
  port?: string;
  source_ips: string[];
  destination_ips: string[];
  description?: string;
}

export interface Machines {
  /** Boots a server with these keys and this cloud-init user data, its inbound rules already applied (rules = the union of the attached firewalls' `in` rules; undefined = no firewall attached: all open). Resolves with its IPv4 address once it answers. */
  create(m: {
    id: number;
    name: string;
    userData: string;
    sshKeys: readonly string[];
    rules?: readonly FirewallRule[];
  }): Promise<{ ipv4: string }>;
  /** Re-applies a server's inbound rules (after set_rules, apply/remove, a firewall deleted). */
  firewall(name: string, rules?: readonly FirewallRule[]): Promise<void>;
  /** Removes the server's machine. */
  remove(name: string): Promise<void>;
}

export interface HcloudApiArgs {
  /** The one bearer token accepted (the provider insists on 64 characters). */
  readonly token: string;
  /** The state, a JSON file; created on the first change. */
  readonly stateFile: string;
  readonly machines: Machines;
  /** Defaults to 0: any free port. */
  readonly port?: number;
  /** Defaults to "127.0.0.1". */
  readonly host?: string;
}

type Labels = Record<string, string>;
type Named = { id: number; name: string };
type Json = Record<string, unknown>;
type Target =
  | { type: "server"; server: { id: number } }
  | { type: "label_selector"; label_selector: { selector: string } };
interface SshKey {
  id: number;
  name: string;
  public_key: string;
  fingerprint: string;
  labels: Labels;
  created: string;
}
interface Firewall {
  id: number;
  name: string;
  labels: Labels;
  created: string;
  rules: FirewallRule[];
  applied_to: Target[];
}
interface Server {
  id: number;
  name: string;
  /** The name the machine was created with: a renamed server keeps its machine. */
  machine: string;
  status: "initializing" | "running" | "off";
  created: string;
  server_type: number;
  image: number;
  location: string;
  labels: Labels;
  ipv4?: string;
  ipv6: boolean;
  backup_window: string | null;
  protection: { delete: boolean; rebuild: boolean };
  /** The inbound rules the machine has now (undefined: all open). */
  rules?: FirewallRule[];
}
interface Action {
  id: number;
  command: string;
  status: "success" | "error";
  progress: 100;
  started: string;
  finished: string;
  error: { code: string; message: string } | null;
  resources: { id: number; type: string }[];
}
interface State {
  nextId: number;
  ssh_keys: SshKey[];
  firewalls: Firewall[];
  servers: Server[];
  actions: Action[];
}

// The catalogue: a few real entries (ids, sizes and coordinates as Hetzner lists them, but where said).
const LOCATIONS = [
  [1, "fsn1", "Falkenstein DC Park 1", "DE", "Falkenstein", 50.47612, 12.370071, "eu-central", 14],
  [2, "nbg1", "Nuremberg DC Park 1", "DE", "Nuremberg", 49.452102, 11.076665, "eu-central", 3],
  [3, "hel1", "Helsinki DC Park 1", "FI", "Helsinki", 60.169855, 24.938379, "eu-central", 2],
  [4, "ash", "Ashburn, VA", "US", "Ashburn, VA", 39.045821, -77.487073, "us-east", 1],
  [5, "hil", "Hillsboro, OR", "US", "Hillsboro, OR", 45.54222, -122.951924, "us-west", 1],
  [6, "sin", "Singapore", "SG", "Singapore", 1.283333, 103.833333, "ap-southeast", 1],
] as const;
const EU = ["fsn1", "nbg1", "hel1"];
const ALL = LOCATIONS.map((l) => l[1]);
const SERVER_TYPES = (
  [
    // cx23 and cx33 (October 2025): their ids are the stand-in's own, not read from Hetzner.
    [114, "cx23", 2, 4, 40, "shared", "x86", EU],
    [115, "cx33", 4, 8, 80, "shared", "x86", EU],
    [104, "cx22", 2, 4, 40, "shared", "x86", EU],
    [105, "cx32", 4, 8, 80, "shared", "x86", EU],
    [106, "cx42", 8, 16, 160, "shared", "x86", EU],
    [22, "cpx11", 2, 2, 40, "shared", "x86", ALL],
    [45, "cax11", 2, 4, 40, "shared", "arm", EU],
    [96, "ccx13", 2, 8, 80, "dedicated", "x86", ALL],
  ] as const
).map(([id, name, cores, memory, disk, cpu_type, architecture, where]) => ({
  ...{ id, name, description: name.toUpperCase(), cores, memory, disk, cpu_type, architecture },
  ...{
    storage_type: "local",
    deprecated: false,
    deprecation: null,
    included_traffic: 21990232555520,
    prices: [],
  },
  locations: LOCATIONS.filter((l) => where.includes(l[1])).map(([id, name]) => ({
    id,
    name,
    deprecation: null,
  })),
}));
const IMAGES = (
  [
    [114690387, "debian-12", "Debian 12", "debian", "12", "x86"],
    [114690389, "debian-12", "Debian 12", "debian", "12", "arm"],
    [161547269, "ubuntu-24.04", "Ubuntu 24.04", "ubuntu", "24.04", "x86"],
    [161547270, "ubuntu-24.04", "Ubuntu 24.04", "ubuntu", "24.04", "arm"],
  ] as const
).map(([id, name, description, os_flavor, os_version, architecture]) => ({
  ...{ id, name, description, os_flavor, os_version, architecture, type: "system", status: "available" },
  ...{ image_size: null, disk_size: 5, created: "2024-01-01T00:00:00Z", created_from: null, bound_to: null },
  ...{ rapid_deploy: true, protection: { delete: false }, deprecated: null, deleted: null, labels: {} },
}));
const DATACENTERS = LOCATIONS.map(([id, name, description, country, city, latitude, longitude, zone, dc]) => {
  const ids = SERVER_TYPES.filter((t) => t.locations.some((l) => l.id === id)).map((t) => t.id);
  const location = { id, name, description, country, city, latitude, longitude, network_zone: zone };
  return {
    ...{ id, name: `${name}-dc${dc}`, description: `${city} DC ${dc}`, location },
    server_types: { supported: ids, available: ids, available_for_migration: ids },
  };
});
/** The read-only kinds, with their singular. */
const CATALOGUE: [kind: string, one: string, items: readonly Named[]][] = [
  ["server_types", "server_type", SERVER_TYPES],
  ["images", "image", IMAGES],
  ["locations", "location", DATACENTERS.map((d) => d.location)],
  ["datacenters", "datacenter", DATACENTERS],
];
/** What the double does not model: always empty (see the header). */
const ABSENT = "networks|volumes|floating_ips|primary_ips|load_balancers|placement_groups|isos";

/** An API error in Hetzner's shape: `{"error": {"code", "message", "details"}}`. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
  ) {
    super(message);
  }
}
const notFound = (what: string) => new ApiError(404, "not_found", `${what} not found`);
const invalid = (field: string, message: string) =>
  new ApiError(422, "invalid_input", `invalid input in field '${field}'`, {
    fields: [{ name: field, messages: [message] }],
  });
const taken = (field: string) =>
  new ApiError(409, "uniqueness_error", `${field} is already used`, {
    fields: [{ name: field }],
  });

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
function text(body: Json, field: string): string {
  const v = body[field];
  if (typeof v !== "string" || v === "") throw invalid(field, "must be a non-empty string");
  return v;
}
function labelsOf(body: Json, fallback: Labels = {}): Labels {
  const v = body.labels ?? fallback;
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== "string"))
    throw invalid("labels", "must be an object of strings");
  return v as Labels;
}
function listOf(body: Json, field: string): unknown[] {
  const v = body[field] ?? [];
  if (!Array.isArray(v)) throw invalid(field, "must be a list");
  return v;
}
function cidrs(v: unknown, field: string): string[] {
  const ok = (c: unknown) => {
    const [ip, bits, ...rest] = typeof c === "string" ? c.split("/") : [];
    const max = net.isIP(ip ?? "") === 4 ? 32 : 128;
    return rest.length === 0 && net.isIP(ip ?? "") > 0 && /^\d+$/.test(bits ?? "") && Number(bits) <= max;
  };
  if (!Array.isArray(v) || !v.every(ok))
    throw invalid(field, "must be a list of CIDRs (`1.2.3.0/24`, `::/0`)");
  return v as string[];
}
function rulesOf(body: Json): FirewallRule[] {
  return listOf(body, "rules").map((r, i) => {
    const f = `rules[${i}]`;
    if (!isObject(r)) throw invalid(f, "must be an object");
    if (r.direction !== "in" && r.direction !== "out")
      throw invalid(`${f}.direction`, "must be `in` or `out`");
    if (!["tcp", "udp", "icmp", "esp", "gre"].includes(r.protocol as string))
      throw invalid(`${f}.protocol`, "must be one of `tcp`, `udp`, `icmp`, `esp`, `gre`");
    const ported = r.protocol === "tcp" || r.protocol === "udp";
    if (ported !== (r.port !== undefined && r.port !== null))
      throw invalid(`${f}.port`, ported ? "is required for tcp and udp" : "is only allowed for tcp and udp");
    if (ported && !/^(any|\d{1,5}(-\d{1,5})?)$/.test(String(r.port)))
      throw invalid(`${f}.port`, "must be a port, a range `1024-5000` or `any`");
    const rule = {
      direction: r.direction as FirewallRule["direction"],
      protocol: r.protocol as FirewallRule["protocol"],
      ...(ported && { port: String(r.port) }),
      source_ips: cidrs(r.source_ips ?? [], `${f}.source_ips`),
      destination_ips: cidrs(r.destination_ips ?? [], `${f}.destination_ips`),
      ...(typeof r.description === "string" && { description: r.description }),
    };
    if ((rule.direction === "in" ? rule.source_ips : rule.destination_ips).length === 0)
      throw invalid(`${f}.${rule.direction === "in" ? "source" : "destination"}_ips`, "must not be empty");
    return rule;
  });
}
function targetsOf(body: Json, field: string): Target[] {
  return listOf(body, field).map((t, i) => {
    if (isObject(t) && t.type === "server" && isObject(t.server) && typeof t.server.id === "number")
      return { type: "server", server: { id: t.server.id } };
    if (isObject(t) && t.type === "label_selector" && isObject(t.label_selector))
      return { type: "label_selector", label_selector: { selector: String(t.label_selector.selector) } };
    throw invalid(
      `${field}[${i}]`,
      "must be a server `{type, server: {id}}` or `{type, label_selector: {selector}}`",
    );
  });
}

/** An item by id (a number or its digits) or by name, as the API takes references in bodies. */
function idOrName<T extends Named>(items: readonly T[], v: unknown, field: string): T {
  const found = items.find((i) => i.id === v || i.name === v || String(i.id) === v);
  if (!found) throw invalid(field, `${String(v)} not found`);
  return found;
}

/** Hetzner's label selector, the simple terms only: `k`, `!k`, `k=v`, `k==v`, `k!=v`, joined by commas. */
export function matchesSelector(labels: Labels, selector: string): boolean {
  return selector.split(",").every((raw) => {
    const term = raw.trim();
    const m = /^(!?)([\w./-]+)(?:\s*(==|=|!=)\s*([\w./-]*))?$/.exec(term);
    if (!m) throw invalid("label_selector", `unsupported term \`${term}\``);
    const [, not, key, op, value] = m;
    if (op === undefined) return key in labels !== (not === "!");
    if (not) throw invalid("label_selector", `unsupported term \`${term}\``);
    return (labels[key] === value) === (op !== "!=");
  });
}

/** Hetzner's fingerprint: MD5 of the key blob, colon-separated hex. */
export function fingerprint(publicKey: string): string {
  const blob = publicKey.trim().split(/\s+/)[1] ?? "";
  const bytes = Buffer.from(blob, "base64");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || bytes.length < 16 || bytes.readUInt32BE(0) + 4 > bytes.length)
    throw invalid("public_key", "must be an OpenSSH public key `type base64 [comment]`");
  return crypto.createHash("md5").update(bytes).digest("hex").match(/../g)!.join(":");
}

function load(file: string): State {
  if (!fs.existsSync(file)) return { nextId: 1, ssh_keys: [], firewalls: [], servers: [], actions: [] };
  return JSON.parse(fs.readFileSync(file, "utf8")) as State;
}

/** The API on `host:port`; resolves once it listens, with its base URL (`http://host:port/v1`). */
export async function startHcloudApi(args: HcloudApiArgs): Promise<{ server: http.Server; url: string }> {
  const { token, stateFile, machines } = args;
  const host = args.host ?? "127.0.0.1";
  const state = load(stateFile);
  const now = () => new Date().toISOString();
  const save = () => {
    fs.writeFileSync(`${stateFile}.tmp`, JSON.stringify(state, null, 2));
    fs.renameSync(`${stateFile}.tmp`, stateFile);
  };
  const nextId = () => state.nextId++;
  const byId = <T extends { id: number }>(items: readonly T[], id: string, what: string): T => {
    const found = items.find((i) => i.id === Number(id));
    if (!found) throw notFound(what);
    return found;
  };
  const unique = (items: Named[], name: string, self?: number) => {
    if (items.some((i) => i.name === name && i.id !== self)) throw taken("name");
  };
  const failure = (e: unknown) => (e instanceof Error ? e.message : String(e));
  /** A finished action (Hetzner's shape), kept for GET /actions; failed when `error` is given. */
  const action = (command: string, resources: Action["resources"], error?: string): Action => {
    const [started, status] = [now(), error === undefined ? "success" : "error"] as const;
    const failed = error === undefined ? null : { code: "action_failed", message: error };
    const a: Action = {
      id: nextId(),
      command,
      status,
      progress: 100,
      started,
      finished: now(),
      error: failed,
      resources,
    };
    state.actions.push(a);
    return a;
  };

  const selects = (t: Target, s: Server) =>
    t.type === "server" ? t.server.id === s.id : matchesSelector(s.labels, t.label_selector.selector);
  /** The firewalls applying to a server, directly or by a label selector. */
  const firewallsOf = (s: Server) => state.firewalls.filter((f) => f.applied_to.some((t) => selects(t, s)));
  const serversOf = (f: Firewall) => state.servers.filter((s) => firewallsOf(s).includes(f));
  const rulesFor = (s: Server): FirewallRule[] | undefined => {
    const fws = firewallsOf(s);
    return fws.length === 0 ? undefined : fws.flatMap((f) => f.rules.filter((r) => r.direction === "in"));
  };

  // One at a time, so a slower earlier call never overwrites a machine's newer rules.
  let queue: Promise<unknown> = Promise.resolve();
  /** Gives every booted machine whose rules changed its new ones; the servers that failed, with why. */
  const reconcile = (): Promise<Map<number, string>> => {
    const run = queue.then(async () => {
      const failed = new Map<number, string>();
      for (const s of state.servers.filter((x) => x.ipv4 !== undefined)) {
        const rules = rulesFor(s);
        if (JSON.stringify(rules) === JSON.stringify(s.rules)) continue;
        await machines.firewall(s.machine, rules).then(
          () => (s.rules = rules),
          (e: unknown) => failed.set(s.id, failure(e)),
        );
      }
      save();
      return failed;
    });
    queue = run.catch(() => undefined);
    return run;
  };
  /** One action for a firewall change, on the firewall and its servers; failed if any of their machines did. */
  const firewallAction = async (command: string, f: Firewall, servers = serversOf(f)) => {
    const failed = await reconcile();
    const errors = servers.filter((s) => failed.has(s.id)).map((s) => `${s.name}: ${failed.get(s.id)}`);
    const resources = [{ id: f.id, type: "firewall" }, ...servers.map((s) => ({ id: s.id, type: "server" }))];
    const a = action(command, resources, errors.length > 0 ? errors.join("; ") : undefined);
    save();
    return a;
  };

  const firewallJson = (f: Firewall) => ({
    ...f,
    rules: f.rules.map((r) => ({ port: null, description: null, ...r })),
    applied_to: f.applied_to.map((t) => {
      if (t.type === "server") return t;
      const matched = state.servers.filter((s) => selects(t, s));
      return { ...t, applied_to_resources: matched.map((s) => ({ type: "server", server: { id: s.id } })) };
    }),
  });
  const serverJson = (s: Server) => {
    const type = SERVER_TYPES.find((t) => t.id === s.server_type)!;
    const ipv4 = s.ipv4 && {
      id: 0,
      ip: s.ipv4,
      blocked: false,
      dns_ptr: `static.${s.ipv4}.clients.your-server.de`,
    };
    const ipv6 = s.ipv6 && {
      id: 0,
      ip: `2a01:4f8:c0c:${s.id.toString(16)}::/64`,
      blocked: false,
      dns_ptr: [],
    };
    const firewalls = firewallsOf(s).map((f) => ({ id: f.id, status: "applied" }));
    return {
      ...{ id: s.id, name: s.name, status: s.status, created: s.created, labels: s.labels, locked: false },
      ...{ server_type: type, image: IMAGES.find((i) => i.id === s.image) ?? null, datacenter: null },
      location: DATACENTERS.find((d) => d.location.name === s.location)!.location,
      public_net: { ipv4: ipv4 || null, ipv6: ipv6 || null, floating_ips: [], firewalls },
      ...{ private_net: [], volumes: [], load_balancers: [], iso: null, placement_group: null },
      ...{ rescue_enabled: false, backup_window: s.backup_window, protection: s.protection },
      ...{ primary_disk_size: type.disk, included_traffic: type.included_traffic },
      ...{ outgoing_traffic: 0, ingoing_traffic: 0 },
    };
  };

  /** A page of a list, with Hetzner's `meta.pagination` (per_page defaults to 25, at most 50). */
  const page = (key: string, items: readonly unknown[], q: URLSearchParams) => {
    const perPage = Math.min(Math.max(Number(q.get("per_page") ?? 25) || 25, 1), 50);
    const last = Math.max(Math.ceil(items.length / perPage), 1);
    const p = Math.min(Math.max(Number(q.get("page") ?? 1) || 1, 1), last);
    const pagination = { page: p, per_page: perPage, last_page: last, total_entries: items.length };
    const around = { previous_page: p > 1 ? p - 1 : null, next_page: p < last ? p + 1 : null };
    return {
      [key]: items.slice((p - 1) * perPage, p * perPage),
      meta: { pagination: { ...pagination, ...around } },
    };
  };
  /** The filters the client sends: `name`, `label_selector`, and each other query parameter an item has a field of. */
  const filter = <T extends object>(items: readonly T[], q: URLSearchParams) =>
    items.filter((i) =>
      [...new Set(q.keys())].every((param) => {
        if (param === "label_selector")
          return matchesSelector((i as { labels?: Labels }).labels ?? {}, q.get(param)!);
        const field = (i as Json)[param];
        return (
          field === undefined ||
          ["page", "per_page", "sort"].includes(param) ||
          q.getAll(param).includes(String(field))
        );
      }),
    );

  /** `id` and `sub` are the route's captures; the body's status: 204 without one, 201 for a POST, else 200. */
  type Handler = (p: { id: string; sub: string; q: URLSearchParams; body: Json }) => unknown;
  const routes: [string, RegExp, Handler][] = [];
  const on = (method: string, re: RegExp, h: Handler) => routes.push([method, re, h]);
  for (const [kind, one, items] of CATALOGUE) {
    on("GET", new RegExp(`^/${kind}$`), ({ q }) => page(kind, filter(items, q), q));
    on("GET", new RegExp(`^/${kind}/(\\d+)$`), ({ id }) => ({
      [one]: byId(items, id, one.replace("_", " ")),
    }));
  }
  on("GET", new RegExp(`^/(${ABSENT})$`), ({ id, q }) => page(id, [], q));
  on("GET", /^\/actions$/, ({ q }) => page("actions", filter(state.actions, q), q));
  on("GET", /^\/actions\/(\d+)$/, ({ id }) => ({ action: byId(state.actions, id, "action") }));

  on("GET", /^\/ssh_keys$/, ({ q }) => page("ssh_keys", filter(state.ssh_keys, q), q));
  on("GET", /^\/ssh_keys\/(\d+)$/, ({ id }) => ({ ssh_key: byId(state.ssh_keys, id, "ssh key") }));
  on("POST", /^\/ssh_keys$/, ({ body }) => {
    const [name, public_key] = [text(body, "name"), text(body, "public_key")];
    const key = { id: 0, name, public_key, fingerprint: fingerprint(public_key), labels: labelsOf(body) };
    unique(state.ssh_keys, name);
    if (state.ssh_keys.some((k) => k.fingerprint === key.fingerprint)) throw taken("public_key");
    state.ssh_keys.push({ ...key, id: nextId(), created: now() });
    save();
    return { ssh_key: state.ssh_keys.at(-1) };
  });
  on("PUT", /^\/ssh_keys\/(\d+)$/, ({ id, body }) => ({
    ssh_key: update(state.ssh_keys, id, "ssh key", body),
  }));
  on("DELETE", /^\/ssh_keys\/(\d+)$/, ({ id }) =>
    remove(state.ssh_keys, byId(state.ssh_keys, id, "ssh key")),
  );

  on("GET", /^\/firewalls$/, ({ q }) => page("firewalls", filter(state.firewalls, q).map(firewallJson), q));
  on("GET", /^\/firewalls\/(\d+)$/, ({ id }) => ({
    firewall: firewallJson(byId(state.firewalls, id, "firewall")),
  }));
  on("POST", /^\/firewalls$/, async ({ body }) => {
    const name = text(body, "name");
    const f = {
      name,
      labels: labelsOf(body),
      rules: rulesOf(body),
      applied_to: targetsOf(body, "apply_to"),
    };
    unique(state.firewalls, name);
    f.applied_to.forEach((t) => t.type === "server" && byId(state.servers, String(t.server.id), "server"));
    const firewall: Firewall = { ...f, id: nextId(), created: now() };
    state.firewalls.push(firewall);
    const actions = f.applied_to.length > 0 ? [await firewallAction("apply_firewall", firewall)] : [];
    return { firewall: firewallJson(firewall), actions };
  });
  on("PUT", /^\/firewalls\/(\d+)$/, ({ id, body }) => ({
    firewall: firewallJson(update(state.firewalls, id, "firewall", body)),
  }));
  on("DELETE", /^\/firewalls\/(\d+)$/, ({ id }) => {
    const f = byId(state.firewalls, id, "firewall");
    // As Hetzner: an applied firewall is in use (the provider removes it from its resources first).
    if (f.applied_to.length > 0) throw new ApiError(422, "resource_in_use", "firewall is still in use");
    return remove(state.firewalls, f);
  });
  on("POST", /^\/firewalls\/(\d+)\/actions\/set_rules$/, async ({ id, body }) => {
    const f = byId(state.firewalls, id, "firewall");
    f.rules = rulesOf(body);
    return { actions: [await firewallAction("set_firewall_rules", f)] };
  });
  on(
    "POST",
    /^\/firewalls\/(\d+)\/actions\/(apply_to_resources|remove_from_resources)$/,
    async ({ id, sub, body }) => {
      const f = byId(state.firewalls, id, "firewall");
      const apply = sub === "apply_to_resources";
      const targets = targetsOf(body, apply ? "apply_to" : "remove_from");
      const key = (t: Target) => JSON.stringify(t);
      for (const t of targets) {
        if (t.type === "server") byId(state.servers, String(t.server.id), "server");
        if (f.applied_to.some((a) => key(a) === key(t)) === apply)
          throw new ApiError(
            422,
            `firewall_already_${apply ? "applied" : "removed"}`,
            `${key(t)}: already ${sub}`,
          );
      }
      const before = serversOf(f);
      f.applied_to = apply
        ? [...f.applied_to, ...targets]
        : f.applied_to.filter((a) => !targets.some((t) => key(t) === key(a)));
      const after = serversOf(f);
      const changed = apply
        ? after.filter((s) => !before.includes(s))
        : before.filter((s) => !after.includes(s));
      return { actions: [await firewallAction(apply ? "apply_firewall" : "remove_firewall", f, changed)] };
    },
  );

  on("GET", /^\/servers$/, ({ q }) => page("servers", filter(state.servers, q).map(serverJson), q));
  on("GET", /^\/servers\/(\d+)$/, ({ id }) => ({ server: serverJson(byId(state.servers, id, "server")) }));
  on("POST", /^\/servers$/, async ({ body }) => {
    const name = text(body, "name");
    if (!/^(?=.{1,63}$)[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/.test(name))
      throw invalid("name", "must be a valid hostname");
    const type = idOrName(SERVER_TYPES, body.server_type, "server_type");
    const location = idOrName(type.locations, body.location ?? "fsn1", "location").name;
    const image = idOrName(
      IMAGES.filter((i) => i.architecture === type.architecture),
      body.image,
      "image",
    );
    const keys = listOf(body, "ssh_keys").map((k) => idOrName(state.ssh_keys, k, "ssh_keys"));
    const firewalls = listOf(body, "firewalls").map((f) =>
      idOrName(state.firewalls, isObject(f) && f.firewall, "firewalls"),
    );
    const userData = body.user_data ?? "";
    if (typeof userData !== "string") throw invalid("user_data", "must be a string");
    const [labels, ipv6] = [
      labelsOf(body),
      !isObject(body.public_net) || body.public_net.enable_ipv6 !== false,
    ];
    unique(state.servers, name);
    const protection = { delete: false, rebuild: false };
    const s: Server = {
      id: nextId(),
      name,
      machine: name,
      status: "initializing",
      created: now(),
      labels,
      ipv6,
      protection,
      server_type: type.id,
      image: image.id,
      location,
      backup_window: null,
    };
    state.servers.push(s);
    for (const f of firewalls) f.applied_to.push({ type: "server", server: { id: s.id } });
    save();
    const rules = rulesFor(s);
    let error: string | undefined;
    try {
      const { ipv4 } = await machines.create({
        id: s.id,
        name,
        userData,
        sshKeys: keys.map((k) => k.public_key),
        rules,
      });
      Object.assign(s, { ipv4, rules, status: body.start_after_create === false ? "off" : "running" });
      error = (await reconcile()).get(s.id); // rules changed while it booted reach it now
    } catch (e) {
      [s.status, error] = ["off", failure(e)];
    }
    const a = action("create_server", [{ id: s.id, type: "server" }], error);
    save();
    return { server: serverJson(s), action: a, next_actions: [], root_password: null };
  });
  on("PUT", /^\/servers\/(\d+)$/, async ({ id, body }) => {
    const s = update(state.servers, id, "server", body);
    await reconcile(); // new labels may match other firewalls' selectors
    return { server: serverJson(s) };
  });
  on("DELETE", /^\/servers\/(\d+)$/, async ({ id }) => {
    const s = byId(state.servers, id, "server");
    if (s.protection.delete) throw new ApiError(403, "protected", "server is delete protected");
    const error = await machines.remove(s.machine).then(() => undefined, failure);
    // Another DELETE of it may have finished meanwhile: only what is still listed goes.
    const at = state.servers.indexOf(s);
    if (error === undefined && at >= 0) {
      state.servers.splice(at, 1);
      for (const f of state.firewalls)
        f.applied_to = f.applied_to.filter((t) => t.type !== "server" || t.server.id !== s.id);
    }
    const a = action("delete_server", [{ id: s.id, type: "server" }], error);
    save();
    return { action: a };
  });
  on("POST", /^\/servers\/(\d+)\/actions\/(\w+)$/, ({ id, sub, body }) => {
    const s = byId(state.servers, id, "server");
    // Power actions only flip the status: the machine keeps running (see the header).
    const effects: Record<string, () => void> = {
      poweron: () => (s.status = "running"),
      reboot: () => (s.status = "running"),
      reset: () => (s.status = "running"),
      poweroff: () => (s.status = "off"),
      shutdown: () => (s.status = "off"),
      change_type: () => (s.server_type = idOrName(SERVER_TYPES, body.server_type, "server_type").id),
      change_protection: () =>
        Object.assign(s.protection, {
          delete: body.delete ?? s.protection.delete,
          rebuild: body.rebuild ?? s.protection.rebuild,
        }),
      enable_backup: () => (s.backup_window = "22-02"),
      disable_backup: () => (s.backup_window = null),
    };
    if (!(sub in effects)) throw notFound(`action ${sub}`);
    effects[sub]();
    const a = action(`${sub}_server`, [{ id: s.id, type: "server" }]);
    save();
    return { action: a };
  });

  /** PUT on a named kind: `name` (unique) and `labels`, each only when given. */
  function update<T extends Named & { labels: Labels }>(items: T[], id: string, what: string, body: Json): T {
    const item = byId(items, id, what);
    const name = body.name === undefined ? item.name : text(body, "name");
    unique(items, name, item.id);
    Object.assign(item, { name, labels: labelsOf(body, item.labels) });
    save();
    return item;
  }
  function remove<T>(items: T[], item: T): undefined {
    items.splice(items.indexOf(item), 1);
    save();
    return undefined;
  }

  const handle = async (req: http.IncomingMessage): Promise<[number, unknown]> => {
    if (req.headers.authorization !== `Bearer ${token}`)
      throw new ApiError(401, "unauthorized", "unable to authenticate");
    const url = new URL(req.url ?? "/", "http://api");
    const route = url.pathname.replace(/^\/v1(?=\/)/, "");
    const match = routes
      .map(([m, re, h]) => [m, re.exec(route), h] as const)
      .find(([m, r]) => m === req.method && r);
    if (!match || route === url.pathname) throw notFound("route");
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8").trim() || "{}");
    } catch {
      throw new ApiError(400, "json_error", "invalid JSON in the request body");
    }
    if (!isObject(body)) throw new ApiError(400, "json_error", "the request body must be a JSON object");
    const [, [, id, sub], h] = match as unknown as [string, RegExpExecArray, Handler];
    const result = await h({ id, sub, q: url.searchParams, body });
    return [result === undefined ? 204 : req.method === "POST" ? 201 : 200, result];
  };

  const server = http.createServer((req, res) => {
    void handle(req)
      .catch((e: unknown): [number, unknown] => {
        const err = e instanceof ApiError ? e : new ApiError(500, "server_error", failure(e));
        return [err.status, { error: { code: err.code, message: err.message, details: err.details } }];
      })
      .then(([status, body]) => {
        res.writeHead(status, body === undefined ? {} : { "Content-Type": "application/json" });
        res.end(body === undefined ? undefined : JSON.stringify(body));
      });
  });
  await new Promise<void>((resolve) => server.listen(args.port ?? 0, host, resolve));
  return { server, url: `http://${host}:${(server.address() as AddressInfo).port}/v1` };
}
