import { SITE_KEY } from "../config/schema";

/** A valid `services` site's stack config; `site` fields and `extra` keys override or add. */
export function servicesSite(
  site: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): Record<string, any> {
  return {
    [SITE_KEY]: {
      role: "services",
      controlPlane: "master",
      domain: "qui3tly.cloud",
      acmeEmail: "ops@qui3tly.cloud",
      host: { kind: "existing", address: "203.0.113.20" },
      ...site,
    },
    ...extra,
  };
}
