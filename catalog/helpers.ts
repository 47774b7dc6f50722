import type { BackupDef, HealthcheckDef, ImageRef, VolumeDef } from "./types";

export function image(repository: string, tag: string, digest?: string): ImageRef {
  return digest === undefined ? { repository, tag } : { repository, tag, digest };
}

/** For images that are one static binary: nothing inside can run a probe; Prometheus scrapes them instead. */
export const STATIC_BINARY = {
  none: "a single static binary: nothing inside can probe; Prometheus scrapes it",
} as const;

/** An HTTP health probe with the `wget` most images ship (busybox or Debian). */
export function httpHealth(url: string, startPeriod?: string): HealthcheckDef {
  return {
    test: ["CMD", "wget", "-q", "-O", "/dev/null", url],
    ...(startPeriod === undefined ? {} : { startPeriod }),
  };
}

/** A volume kept as files (a restic snapshot while the service runs). */
export const files = (path: string): VolumeDef => ({ path, backup: { method: "files" } });
/** A volume that is not kept, and why. */
export const notKept = (path: string, why: string): VolumeDef => ({ path, backup: { method: "none", why } });
/** A volume kept some other way (a database dump, an online SQLite copy, the application's export). */
export const kept = (path: string, backup: BackupDef): VolumeDef => ({ path, backup });
