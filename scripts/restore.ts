import { ConfigError } from "../config/errors";
import { loadProjectSite } from "../model/estate";
import { BACKUP_SCRIPT, backupPlan } from "../render/backup";
import { ROOT, flag } from "./cli";
import { SiteSsh } from "./siteSsh";
import { chooseSnapshot, type Snapshot } from "./snapshots";

/**
 * `npm run restore -- --stack <site> --service <svc> [--snapshot <id> | --before <time>] [--ssh-key <file>]
 * [--address <host> --host-key <key>]`: puts a service's volumes and databases back from its site's repository, through the site's
 * own backup job (`qcloud-backup restore`) over the stack's SSH settings. Everything it refuses, it refuses before
 * touching the site. The project is this checkout, or QCLOUD_PROJECT_DIR (the sandbox's).
 */
const argv = process.argv.slice(2);
const usage =
  "usage: npm run restore -- --stack <site> --service <service> [--snapshot <id> | --before <time>] [--ssh-key <file>] [--address <host> --host-key <key>]";
const stack = flag(argv, "stack");
const service = flag(argv, "service");
const snapshot = flag(argv, "snapshot");
const before = flag(argv, "before");

function fail(message: string, code = 1): never {
  console.error(`restore: ${message}`);
  process.exit(code);
}

if (!stack || !service) fail(usage, 2);
if (snapshot !== undefined && before !== undefined) fail("give --snapshot or --before, not both", 2);

let model;
try {
  model = loadProjectSite(process.env.QCLOUD_PROJECT_DIR ?? ROOT, stack);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  fail(e.message);
}
const { services } = backupPlan(model);
const svc = model.services.find((s) => s.name === service);
if (!svc)
  fail(
    `site \`${stack}\` runs no service \`${service}\` (it runs: ${model.services.map((s) => s.name).join(", ")})`,
  );
if (!services.includes(service)) {
  const why = svc.containers.flatMap((c) =>
    c.volumes.map((v) => `${v.volume}: ${v.backup.method === "none" ? v.backup.why : v.backup.method}`),
  );
  fail(
    `\`${service}\` keeps nothing in the backups${why.length ? ` (${why.join("; ")})` : " (it has no volume)"}`,
  );
}
if (model.backup.target === undefined)
  fail(`site \`${stack}\` has no backup repository (no other site keeps it)`);
const host = model.host;
const key = flag(argv, "ssh-key");
const address = flag(argv, "address") ?? (host.kind === "existing" ? host.address : undefined);
// An hcloud server's key is made by its stack: never trusted on first use here either.
const hostKey = flag(argv, "host-key") ?? (host.kind === "existing" ? host.hostKey : undefined);
if (address === undefined || (host.kind === "hcloud" && hostKey === undefined)) {
  fail(
    `an hcloud host's address and host key are in its stack: --address "$(pulumi stack output hostAddress --stack ${stack})" ` +
      `--host-key "$(pulumi stack output hostKey --stack ${stack})"`,
    2,
  );
}

// The stack's own SSH settings: its user and port, its pinned host key.
const site = new SiteSsh({ host, address, ...(hostKey ? { hostKey } : {}), ...(key ? { key } : {}) });
const ssh = (command: string, inherit: boolean) => site.run(command, { inherit });

try {
  const list = ssh(`${BACKUP_SCRIPT} snapshots`, false);
  if (list.status !== 0) {
    fail(
      `cannot list site \`${stack}\`'s snapshots in its repository on \`${model.backup.target}\`:\n${(list.stderr || list.stdout).trim()}`,
    );
  }
  let chosen: Snapshot;
  try {
    chosen = chooseSnapshot(JSON.parse(list.stdout) as Snapshot[], stack, service, {
      ...(snapshot !== undefined ? { snapshot } : {}),
      ...(before !== undefined ? { before } : {}),
    });
  } catch (e) {
    fail((e as Error).message);
  }
  console.log(`restore: ${service} on ${stack} from snapshot ${chosen.short_id} (${chosen.time})`);
  const t0 = Date.now();
  const r = ssh(`${BACKUP_SCRIPT} restore ${service} ${chosen.id}`, true);
  if (r.status !== 0) fail(`restoring ${service} on ${stack} failed (exit ${r.status}): see the lines above`);
  console.log(
    `restore: ${service} on ${stack} is back from ${chosen.short_id}, healthy, in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
} finally {
  site.close();
}
