import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError } from "../config/errors";
import { PROJECT } from "../config/schema";
import { stackFilesIn } from "../model/estate";
import { BACKUP_DIR, BACKUP_SCRIPT, databaseEngines, renderBackupScript } from "../render/backup";
import { imageKey, type SiteModel } from "../render/siteModel";
import { ROOT, flag, pulumiIn } from "./cli";
import { planMove, type MovePlan } from "./movePlan";
import { SiteSsh, pipe, stackSsh, tail, waitHealthy } from "./siteSsh";
import { chooseSnapshot, type Snapshot } from "./snapshots";

/**
 * `npm run move -- --service <svc> --from <site> --to <site> [--ssh-key <file>]`: moves a service, with its data,
 * to another site, as the backups carry it (docs: README "Moving a service"):
 *
 *  plan      both stack files edited in memory and the estate checked (scripts/movePlan.ts): every refusal before
 *            anything is touched
 *  prepare   the stack files written; on the target, the service's volumes, images and networks, and its
 *            containers that need no data yet, healthy (its database engines, empty; queues): `pulumi up --target`;
 *            and the backup job that knows it
 *  stop      the service's containers stopped on the source, its database engines last (after the final backup's
 *            dumps): its downtime starts
 *  backup    the final backup on the source (`qcloud-backup run <svc>`), into its repository on its backup site
 *  carry     that snapshot streamed from the repository's site to the target (`kept ... dump`), placed into the
 *            volumes before their containers exist; its databases loaded into their engines (as `npm run dr` does)
 *  converge  the target's `up`: the service starts on its data, healthy; its route answers there
 *  remove    the source's `up`: its containers go; its volumes stay (retained) until pruned by hand
 *  follow    the control plane's `up`: its scrapes and probes follow the service
 *
 * A failure before `remove` puts everything back: the stack files as they were, the source's containers started
 * again, the target's `up` with the old files. A prober on both servers (the route's host name, from the server
 * itself) gives the downtime: the last good answer on the source to the first on the target.
 */
const argv = process.argv.slice(2);
const usage = "usage: npm run move -- --service <service> --from <site> --to <site> [--ssh-key <file>]";
const service = flag(argv, "service");
const from = flag(argv, "from");
const to = flag(argv, "to");
const keyFlag = flag(argv, "ssh-key");
const dir = process.env.QCLOUD_PROJECT_DIR ?? ROOT;

function fail(message: string, code = 1): never {
  console.error(`move: ${message}`);
  process.exit(code);
}
const say = (m: string) => console.log(`move: ${m}`);
if (!service || !from || !to) fail(usage, 2);

const files = Object.fromEntries(
  stackFilesIn(dir).map((file) => [
    /^Pulumi\.([^.]+)\.ya?ml$/.exec(path.basename(file))![1]!,
    { file, text: fs.readFileSync(file, "utf8") },
  ]),
);
let plan: MovePlan;
try {
  plan = planMove(files, service, from, to);
} catch (e) {
  if (e instanceof ConfigError) fail(`refused, nothing was touched:\n${e.message}`);
  throw e;
}

const pulumi = pulumiIn(dir);
function pulumiOk(what: string, args: readonly string[], input?: string): string {
  const r = pulumi(args, input);
  if (r.status !== 0)
    throw new Error(`${what} failed (pulumi ${args[0]}, exit ${r.status}):\n${tail(r.stdout + r.stderr)}`);
  return r.stdout;
}
const up = (site: string, ...extra: string[]) =>
  void pulumiOk(`pulumi up --stack ${site}`, ["up", "--yes", "--skip-preview", "--stack", site, ...extra]);

// SSH as each stack reaches its host: the address and host key it exports (an hcloud server's are made there), the
// key of --ssh-key, else its stack's own.
const keys = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-move-"));
const opened: SiteSsh[] = [];
process.on("exit", () => {
  for (const s of opened) s.close();
  fs.rmSync(keys, { recursive: true, force: true });
});
function sshTo(site: string, model: SiteModel): SiteSsh {
  try {
    const ssh = stackSsh(pulumi, site, model, { ...(keyFlag ? { key: keyFlag } : {}), keys });
    opened.push(ssh);
    return ssh;
  } catch (e) {
    fail(`refused, nothing was touched: ${(e as Error).message}`);
  }
}
function ssh(on: SiteSsh, command: string, what: string, input?: string): string {
  const r = on.run(command, input === undefined ? {} : { input });
  if (r.status !== 0)
    throw new Error(
      `${what} failed on ${on.address}:${on.port} (exit ${r.status}):\n${tail(r.stdout + r.stderr)}`,
    );
  return r.stdout;
}

/** A probe of the route on a server, from the server itself: the times of its good answers (2xx, 3xx). */
interface Prober {
  /** Good answers so far, in unix seconds of this machine (as they arrive: the servers' clocks may differ). */
  good(): number[];
  stop(): void;
}
/** A stack's state export, as far as the move reads and edits it. */
interface Deployment {
  deployment: {
    resources?: { urn: string; parent?: string; protect?: boolean; outputs?: Record<string, unknown> }[];
  };
}

/** A RandomPassword's value in an export with `--show-secrets`: a secret holding a non-empty string, or nothing. */
function passwordIn(outputs: Record<string, unknown> | undefined): string | undefined {
  const plaintext = (outputs?.result as { plaintext?: unknown } | undefined)?.plaintext;
  if (typeof plaintext !== "string") return undefined;
  try {
    const value: unknown = JSON.parse(plaintext);
    return typeof value === "string" && value.length > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

/** One word for the remote shell, whatever it holds. */
const quoted = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
function prober(on: SiteSsh, host: string, probePath: string): Prober {
  // A line per try, so the loop ends when this side stops reading (its write fails); an hour at the most anyway.
  const p: ChildProcess = on.spawn(
    `timeout 3600 sh -c 'while :; do c=$(curl -sk -o /dev/null -m 2 -w "%{http_code}" --resolve "$1" "$2"); ` +
      `echo "$c" || exit 0; sleep 0.2; done' _ ${quoted(`${host}:443:127.0.0.1`)} ${quoted(`https://${host}${probePath}`)}`,
  );
  const good: number[] = [];
  let partial = "";
  p.stdout!.on("data", (d: Buffer) => {
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop()!;
    for (const code of lines) if (/^[23]/.test(code)) good.push(Date.now() / 1000);
  });
  return { good: () => [...good], stop: () => void p.kill() };
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

void (async () => {
  const t0 = Date.now();
  let phaseStart = t0;
  const phases: [string, number][] = [];
  const done = (name: string) => {
    phases.push([name, (Date.now() - phaseStart) / 1000]);
    say(`${name}: ${phases.at(-1)![1].toFixed(1)} s`);
    phaseStart = Date.now();
  };
  const src = plan.models.from;
  const dst = plan.models.to;
  const source = sshTo(from, src);
  const target = sshTo(to, dst);
  const keeper = plan.keeper ? sshTo(plan.keeper.name, plan.keeper) : undefined;
  const svc = dst.services.find((s) => s.name === service)!;
  const engines = databaseEngines(svc.containers);
  const apps = plan.containers.filter((c) => !engines.includes(c));
  // Volumes of these names already on the target (a service moved away from it once, kept until pruned) would be
  // taken as they are: stale data, another password. Refused before anything stops.
  const leftover = target.run(
    `for v in ${plan.volumes.join(" ")}; do docker volume inspect -f '{{.Name}}' "$v" 2>/dev/null; done; true`,
  );
  if (leftover.status !== 0)
    fail(
      `refused, nothing was touched: ${to} does not answer over SSH:\n${tail(leftover.stdout + leftover.stderr)}`,
    );
  const kept = leftover.stdout.split("\n").filter(Boolean);
  if (kept.length > 0)
    fail(
      `refused, nothing was touched: ${to} still holds volumes of ${service} (${kept.join(", ")}), kept from an earlier move: prune them there first (docker volume rm ${kept.join(" ")})`,
    );

  const route = dst.routes.find((r) => r.service === service && !r.private);
  const probes = route
    ? {
        source: prober(source, route.host, route.probePath),
        target: prober(target, route.host, route.probePath),
      }
    : undefined;
  const old = { [from]: files[from]!.text, [to]: files[to]!.text };
  const write = (texts: Readonly<Record<string, string>>) => {
    for (const site of [from, to]) fs.writeFileSync(files[site]!.file, texts[site]!);
  };
  /** The resources of the service's component in a stack: its passwords, volumes, containers. */
  const ofService = (site: string, state: Deployment) =>
    (state.deployment.resources ?? []).filter((r) =>
      r.parent?.endsWith(`qcloud:service:Service::${site}-${service}`),
    );
  const exported = (site: string, showSecrets = false): Deployment => {
    if (!showSecrets)
      return JSON.parse(pulumiOk(`exporting ${site}'s state`, ["stack", "export", "--stack", site]));
    // Its stdout holds every secret in plain text: a failure reports only stderr, whatever stdout got.
    const r = pulumi(["stack", "export", "--show-secrets", "--stack", site]);
    if (r.status !== 0)
      throw new Error(
        `exporting ${site}'s state failed (exit ${r.status ?? r.signal}):\n${tail(r.stderr)}${r.error ? `\n${r.error.message}` : ""}`,
      );
    return JSON.parse(r.stdout) as Deployment;
  };
  /** On a production site the service's volumes and passwords are protected: a stack's `up` may drop them now. */
  const unprotect = (site: string) => {
    for (const r of ofService(site, exported(site)))
      if (r.protect)
        pulumiOk(`unprotecting ${r.urn}`, ["state", "unprotect", "--yes", "--stack", site, r.urn]);
  };
  // The target's backup job for this move only (its own is installed by its `up`): it knows the service.
  const scratch = `${BACKUP_DIR}/scratch/move`;
  const job = `${scratch}/qcloud-backup`;
  let stopped = false;
  let rolledBack: Promise<never> | undefined;
  /** Everything back as it was: the stack files, the source's containers, the target without the service. Once. */
  const rollback = (why: string): Promise<never> =>
    (rolledBack ??= (async () => {
      say(`FAILED: ${why}`);
      say(
        "putting everything back: the stack files, the source's containers, the target without the service",
      );
      write(old);
      let started = "";
      if (stopped) {
        const r = source.run(`docker start ${plan.containers.join(" ")}`);
        started =
          r.status === 0
            ? await waitHealthy(source, plan.containers).then(
                () => `${service} runs on ${from} again`,
                (e: Error) => `${service}'s containers on ${from} started, but: ${e.message}`,
              )
            : `${service}'s containers on ${from} did not start (docker start: ${r.stderr.trim()}): start them by hand`;
      }
      target.run(`rm -rf ${scratch}`);
      let unprotected = "";
      try {
        unprotect(to);
      } catch (e) {
        unprotected = `unprotecting ${service}'s resources in ${to}'s state failed: ${(e as Error).message}`;
      }
      const r = pulumi(["up", "--yes", "--skip-preview", "--stack", to]);
      const back =
        r.status === 0
          ? `${to} runs no ${service}; the volumes made for it there stay (retained): docker volume rm ${plan.volumes.join(" ")} on ${to}`
          : `the target's up with the old stack file failed too:\n${tail(r.stdout + r.stderr)}`;
      probes?.source.stop();
      probes?.target.stop();
      return fail([started, unprotected, back].filter(Boolean).join("\n"));
    })());
  // Ctrl-C during the move: the step under way ends (its child got the signal too), the next check throws, and the
  // catch below rolls back: one way back, whatever the timing.
  let moving = false;
  let aborted: string | undefined;
  const check = () => {
    if (aborted) throw new Error(`interrupted (${aborted})`);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (!moving) process.exit(130);
      aborted = signal;
    });
  }
  const urn = (t: string) => `urn:pulumi:${to}::${PROJECT}::**${t}`;
  const targets = (...types: string[]) => types.flatMap((t) => ["--target", urn(t)]);
  const component = `qcloud:service:Service::${to}-${service}`;
  const passwords = `random:index/randomPassword:RandomPassword::${to}-${service}-*`;
  try {
    moving = true;
    write(plan.texts);
    // The service's generated passwords go with it: its data may hold them (Nextcloud's config.php holds its
    // database's), and its database engine is made with them. The target's new ones are replaced in its state by
    // the source's values, in memory only (export and import through pipes), before anything uses them.
    up(to, ...targets(component, passwords));
    if (svc.generatedSecrets.length > 0) {
      const values = ofService(from, exported(from, true));
      const state = exported(to, true);
      for (const secret of svc.generatedSecrets) {
        const carried = values.find((r) => r.urn.endsWith(`::${from}-${service}-${secret}`));
        const made = ofService(to, state).find((r) => r.urn.endsWith(`::${to}-${service}-${secret}`));
        // Both read back as values (a wrong passphrase could export them as null): the source's copy goes later.
        if (!passwordIn(carried?.outputs) || !passwordIn(made?.outputs))
          throw new Error(`${service}'s generated secret \`${secret}\` is not readable in both states`);
        made!.outputs = carried!.outputs;
      }
      pulumiOk(
        `carrying ${service}'s generated secrets to ${to}'s state`,
        ["stack", "import", "--stack", to],
        JSON.stringify(state),
      );
    }
    check();
    // Then its volumes (empty), images and networks, and the containers that need no data yet, healthy.
    const own = svc.containers;
    up(
      to,
      ...targets(
        component,
        passwords,
        ...plan.volumes.map((v) => `docker:index/volume:Volume::${to}-${v}`),
        ...[...new Set(own.map((c) => c.image))].map(
          (i) => `docker:index/remoteImage:RemoteImage::${to}-${imageKey(i)}`,
        ),
        ...[...new Set(own.flatMap((c) => c.networks))].map(
          (n) => `docker:index/network:Network::${to}-${n}`,
        ),
        ...plan.early.map((c) => `docker:index/container:Container::${to}-${c}`),
      ),
    );
    ssh(
      target,
      `set -e; umask 077; mkdir -p ${scratch}; cat >${job}; chmod 700 ${job}`,
      "uploading the backup job for the move",
      renderBackupScript(dst),
    );
    done("prepare");
    check();

    stopped = true;
    ssh(source, `docker stop -t 30 ${[...apps].reverse().join(" ")} >/dev/null`, `stopping ${service}`);
    // Its databases stay up for the final backup's dumps, with nothing left writing to them.
    if (plan.backedUp) ssh(source, `${BACKUP_SCRIPT} run ${service}`, `the final backup of ${service}`);
    if (engines.length > 0)
      ssh(source, `docker stop -t 30 ${engines.join(" ")} >/dev/null`, "stopping its databases");
    done("stop and final backup");
    check();

    if (plan.backedUp) {
      const listed = JSON.parse(
        ssh(source, `${BACKUP_SCRIPT} snapshots`, "listing the snapshots"),
      ) as Snapshot[];
      const snapshot = chooseSnapshot(listed, from, service, {});
      const fetched = `${scratch}/${service}`;
      await pipe(
        keeper!,
        `${BACKUP_SCRIPT} kept ${from} dump ${snapshot.id} / --archive tar`,
        target,
        `rm -rf ${fetched} && mkdir -p ${fetched} && tar --numeric-owner -x -C ${fetched}`,
        `carrying ${service}'s snapshot ${snapshot.short_id} from ${plan.keeper!.name} to ${to}`,
      );
      check();
      const placed = target.run(`${job} place ${service} ${fetched}`);
      if (placed.status !== 0)
        throw new Error(
          `placing ${service}'s volumes failed (exit ${placed.status}):\n${tail(placed.stdout + placed.stderr)}`,
        );
      // What the job says about the data (an application's own backups to restore in its UI) is the operator's.
      for (const line of placed.stderr.trim().split("\n").filter(Boolean)) say(`${to}: ${line}`);
      // An engine that could not start ahead (it depends on another part) starts now, alone, healthy.
      const late = engines.filter((e) => !plan.early.includes(e));
      if (late.length > 0)
        up(
          to,
          ...targets(
            component,
            passwords,
            ...late.map((c) => `docker:index/container:Container::${to}-${c}`),
          ),
        );
      if (engines.length > 0)
        ssh(target, `${job} load-dumps ${service} ${fetched}`, `loading ${service}'s databases`);
    }
    ssh(target, `rm -rf ${scratch}`, "removing the fetched snapshot");
    done("carry");
    check();

    up(to);
    await waitHealthy(target, plan.containers);
    // The route answers on the target once its Traefik has taken the new configuration: wait for that answer (a
    // minute at most; without it the source is not touched further).
    if (probes) {
      const last = Math.max(0, ...probes.source.good());
      for (let i = 0; !probes.target.good().some((t) => t > last); i++) {
        check();
        if (i >= 300) throw new Error(`${route!.host} does not answer on ${to} a minute after its up`);
        await sleep(200);
      }
    }
    done("converge (healthy, answering)");
    check();
  } catch (e) {
    await rollback((e as Error).message);
  }
  moving = false;
  const onSource = probes?.source.good() ?? [];
  const onTarget = probes?.target.good() ?? [];
  probes?.source.stop();
  probes?.target.stop();

  // The source's protected resources of the service (its volumes, its passwords) may go from its state now: the
  // volumes stay on the host (retained on delete) until pruned by hand.
  unprotect(from);
  up(from);
  done(`remove from ${from} (its volumes kept)`);
  const controlPlane = src.controlPlane;
  if (controlPlane !== from && controlPlane !== to) {
    up(controlPlane);
    done(`follow (${controlPlane}: scrapes, probes)`);
  }

  console.log(`${service}: ${from} -> ${to}, phase by phase (s):`);
  for (const [name, secs] of phases) console.log(`  ${secs.toFixed(1).padStart(7)}  ${name}`);
  console.log(`  ${((Date.now() - t0) / 1000).toFixed(1).padStart(7)}  total`);
  if (route) {
    const last = onSource.length > 0 ? Math.max(...onSource) : undefined;
    const first = last === undefined ? undefined : onTarget.find((t) => t > last);
    console.log(
      first === undefined || last === undefined
        ? `downtime (${route.host}): not measured (good answers: ${onSource.length} on ${from}, ${onTarget.length} on ${to})`
        : `downtime (${route.host}): ${(first - last).toFixed(1)} s, from the last good answer on ${from} to the first on ${to}`,
    );
  }
  if (plan.volumes.length > 0)
    console.log(
      `${from} keeps ${service}'s old volumes until you prune them: docker volume rm ${plan.volumes.join(" ")} (on ${from})`,
    );
  if (route) console.log(`point ${route.host} at ${to} in DNS if it is not managed there yet`);
})().catch((e: unknown) => fail((e as Error).message));
