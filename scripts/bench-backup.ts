import * as path from "node:path";
import { BACKUP_DIR } from "../render/backup";
import { FILE_MB, dropBenchData, makeBenchData, nextcloudHtml, onLady, sql } from "./benchData";
import { SANDBOX, SITES, SandboxProject, onServer, startServers, toolchainEnv } from "./sandbox/sandbox";

/**
 * `npm run bench:backup`: on the sandbox estate (converged first, as `npm run sandbox` does), lady's Nextcloud
 * with the benchmarks' data set (scripts/benchData.ts): the first backup, a second after 1% of files and rows changed (what
 * deduplication adds), a full restore of the service; each next to `tar | zstd` (and `pg_dump | zstd`) of the same
 * data on the same server, as a ratio; and the repository's size against the data's. Random data: the worst case
 * for both compressors.
 */
const on = onLady;
const gauge = (name: string) =>
  Number(on(`sed -n 's/^${name}{backup="nextcloud"} //p' ${BACKUP_DIR}/state/backup/nextcloud.prom`));
function timed(f: () => void): number {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const env = toolchainEnv();
startServers(SITES, false);
const project = new SandboxProject(path.join(SANDBOX, "work"), env);
project.init(SITES);
for (const site of Object.keys(SITES)) project.pulumi(["up", "--yes", "--skip-preview", "--stack", site]);

const { files, rows, bytes: dataBytes } = makeBenchData();
const html = nextcloudHtml();
const mb = dataBytes / 2 ** 20;

const backup = () => on("qcloud-backup run nextcloud 2>&1 >/dev/null | tail -n1");
const first = timed(backup);
// 1% changed: that share of the files rewritten, of the rows updated.
on(
  `for i in $(seq 1 ${Math.max(1, Math.round(files / 100))}); do head -c ${FILE_MB}M /dev/urandom >${html}/bench/f$i; done`,
);
sql(`UPDATE bench SET payload = md5(payload) || payload WHERE id % 100 = 0`);
const second = timed(backup);
const added = gauge("qcloud_backup_added_bytes");
const snapshot = on(
  'qcloud-backup restic snapshots --json --tag service=nextcloud --latest 1 | grep -o \'"id":"[0-9a-f]*"\' | head -n1 | cut -d\'"\' -f4',
);
const restore = timed(() => on(`qcloud-backup restore nextcloud ${snapshot} >/dev/null`));
const repo = Number(
  onServer(
    "master",
    "du -sb \"$(docker volume inspect -f '{{.Mountpoint}}' backup-repository-data)/lady\" | cut -f1",
  ).stdout,
);

// The same data with tar and zstd, on the same server: out, then back in (files untarred, the dump loaded).
const zstdOut = timed(() =>
  on(
    `tar -C ${html} -cf - . | zstd -q -T0 -3 >/root/bench-files.tar.zst && docker exec nextcloud-db pg_dump -U nextcloud -d nextcloud --clean --if-exists | zstd -q -T0 -3 >/root/bench-db.sql.zst`,
  ),
);
const zstdBytes = Number(on("cat /root/bench-files.tar.zst /root/bench-db.sql.zst | wc -c"));
const zstdIn = timed(() =>
  on(
    `rm -rf /root/bench-restore && mkdir /root/bench-restore && zstd -q -d -c /root/bench-files.tar.zst | tar -C /root/bench-restore -xf - && zstd -q -d -c /root/bench-db.sql.zst | docker exec -i nextcloud-db psql -q -1 -U nextcloud -d nextcloud >/dev/null`,
  ),
);
on("rm -rf /root/bench-restore /root/bench-*.zst");
dropBenchData();

const row = (what: string, s: number, base?: number) =>
  console.log(
    `  ${what.padEnd(40)} ${s.toFixed(1).padStart(7)} s ${(mb / s).toFixed(0).padStart(6)} MB/s` +
      (base === undefined ? "" : `   ratio to zstd ${(s / base).toFixed(2)}`),
  );
console.log(`\nlady's nextcloud: ${mb.toFixed(0)} MB (${files} random files of ${FILE_MB} MB, ${rows} rows)`);
row("restic, first backup", first, zstdOut);
row("restic, second backup (1% changed)", second, zstdOut);
row("restic, restore (stop, fetch, load, healthy)", restore, zstdIn);
row("tar | zstd -3 and pg_dump | zstd -3", zstdOut);
row("zstd -d | tar -x and | psql", zstdIn);
console.log(
  `  second backup added ${(added / 2 ** 20).toFixed(1)} MB (${((100 * added) / dataBytes).toFixed(2)}% of the data)`,
);
console.log(
  `  repository ${(repo / 2 ** 20).toFixed(0)} MB for ${mb.toFixed(0)} MB of data (${(repo / dataBytes).toFixed(2)}x, two snapshots); zstd archive ${(zstdBytes / 2 ** 20).toFixed(0)} MB (one copy)`,
);
