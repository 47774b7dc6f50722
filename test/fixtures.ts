import * as fs from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import YAML from "yaml";
import { SITE_KEY } from "../config/schema";
import { sealKeyPair } from "../render/seal";
import type { SiteModel } from "../render/siteModel";
import type { Snapshot } from "../scripts/snapshots";

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

/** A valid `hcloud` host of a stack file, of this server type. */
export const hcloudHostConfig = (serverType: string) => ({
  kind: "hcloud",
  serverType,
  location: "fsn1",
  sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO9 ops@laptop"],
  sshSources: ["0.0.0.0/0", "::/0"],
});

/**
 * Test sealing key pairs of the services sites the tests deploy (real X25519 keys, made per run): the committed
 * lady's public key has no known private half, so a test swaps its own in (`withTestSealKey`).
 */
export const TEST_SEAL_KEYS: Readonly<Record<string, { privateKey: string; publicKey: string }>> = {
  lady: sealKeyPair(),
  madam: sealKeyPair(),
};

/** A site's model with its test sealing public key (in its own model and in its estate's entry). */
export function withTestSealKey(model: SiteModel): SiteModel {
  const key = TEST_SEAL_KEYS[model.name]?.publicKey;
  if (key === undefined || model.controlPlane === model.name) return model;
  return {
    ...model,
    mesh: { ...model.mesh, sealPublicKey: key },
    estate: {
      sites: model.estate.sites.map((s) =>
        s.name === model.name ? { ...s, mesh: { ...s.mesh, sealPublicKey: key } } : s,
      ),
    },
  };
}

/** The config a deployed site reads in tests: secret config as `cfg-<key>`, and its test sealing key. */
export function testSecrets(site: string): {
  configSecret: (k: string) => pulumi.Output<string>;
  sealKey?: string;
} {
  const sealKey = TEST_SEAL_KEYS[site]?.privateKey;
  return { configSecret: (k) => pulumi.secret(`cfg-${k}`), ...(sealKey ? { sealKey } : {}) };
}

/** A valid control plane's stack config (named `master` by the tests); `site` fields and `extra` keys override or add. */
export function controlPlaneSite(
  site: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): Record<string, any> {
  const base = { ...servicesSite()[SITE_KEY], controlPlane: undefined };
  return {
    [SITE_KEY]: {
      ...base,
      role: "control-plane",
      host: { kind: "existing", address: "203.0.113.10" },
      ...site,
    },
    ...extra,
  };
}

/** A committed stack file's config map (Pulumi.<stack>.yaml at the project's root), with `site` fields merged in. */
export function committed(stack: string, site: Record<string, unknown>): Record<string, unknown> {
  const doc = YAML.parse(fs.readFileSync(path.resolve(__dirname, "..", `Pulumi.${stack}.yaml`), "utf8"));
  return { ...doc.config, [SITE_KEY]: { ...doc.config[SITE_KEY], ...site } };
}

/** A restic snapshot as `restic snapshots --json` lists one: of `service`, taken on `hostname` at `time`. */
export const snapshot = (id: string, service: string, time: string, hostname = "lady"): Snapshot => ({
  id: id.padEnd(64, "0"),
  short_id: id,
  time,
  hostname,
  tags: [`service=${service}`],
});
