import type { HealthcheckDef, ImageRef } from "./types";

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
