import { onServer } from "./sandbox/sandbox";

/**
 * The benchmarks' data set on the sandbox's lady (bench:backup, bench:dr): Nextcloud with QCLOUD_BENCH_FILES_MB of
 * random files (default 2048, in files of 8 MB) and a table of about QCLOUD_BENCH_DB_MB (default 500, rows of about
 * 1 KiB). Random data: the worst case for every compressor and for deduplication.
 */
export const FILES_MB = Number(process.env.QCLOUD_BENCH_FILES_MB ?? 2048);
export const DB_MB = Number(process.env.QCLOUD_BENCH_DB_MB ?? 500);
export const FILE_MB = 8;

export const onLady = (cmd: string) => onServer("lady", cmd).stdout.trim();
export const sql = (q: string) =>
  onLady(`docker exec nextcloud-db psql -Atq -U nextcloud -d nextcloud -c "${q}"`);
/** Where Nextcloud's files volume is on lady's server. */
export const nextcloudHtml = () => onLady("docker volume inspect -f '{{.Mountpoint}}' nextcloud-html");

export interface BenchData {
  readonly files: number;
  readonly rows: number;
  /** The files' and the database's size. */
  readonly bytes: number;
}

/** Writes the data set (replacing an earlier one). */
export function makeBenchData(): BenchData {
  const files = Math.max(1, Math.round(FILES_MB / FILE_MB));
  const rows = Math.round((DB_MB * 1024) / 1.1);
  const html = nextcloudHtml();
  onLady(`rm -rf ${html}/bench && mkdir -p ${html}/bench`);
  onLady(`for i in $(seq 1 ${files}); do head -c ${FILE_MB}M /dev/urandom >${html}/bench/f$i; done`);
  sql("DROP TABLE IF EXISTS bench");
  sql(
    `CREATE TABLE bench AS SELECT s AS id, (SELECT string_agg(md5(random()::text || s || k), '') FROM generate_series(1, 32) AS k) AS payload FROM generate_series(1, ${rows}) AS s`,
  );
  const bytes =
    Number(onLady(`du -sb ${html} | cut -f1`)) + Number(sql("SELECT pg_database_size('nextcloud')"));
  return { files, rows, bytes };
}

/** Removes the data set. */
export function dropBenchData(): void {
  onLady(`rm -rf ${nextcloudHtml()}/bench`);
  sql("DROP TABLE IF EXISTS bench");
}
