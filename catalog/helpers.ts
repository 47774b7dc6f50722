import type { HealthcheckDef, ImageRef } from "./types";

export function image(repository: string, tag: string, digest?: string): ImageRef {
  return digest === undefined ? { repository, tag } : { repository, tag, digest };
}

/** An HTTP health probe with the `wget` most images ship (busybox or Debian). */
export function httpHealth(url: string, startPeriod?: string): HealthcheckDef {
  return {
    test: ["CMD", "wget", "-q", "-O", "/dev/null", url],
    ...(startPeriod === undefined ? {} : { startPeriod }),
  };
}
