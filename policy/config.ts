import type { SiteModel } from "../render/siteModel";
import type { PortsConfig, SecretEnvConfig, SshConfig, VolumesConfig } from "./rules";

/** Source ranges that mean anyone (as policy/rules.ts reads a firewall). */
const ANYWHERE = ["0.0.0.0/0", "::/0"];

/**
 * The policy pack's config for one site (`pulumi preview --policy-pack-config <file>`, or the Automation API's
 * `policyPackConfigs`): the facts only its stack file and the catalog know, by rule name, as the CLI reads the file
 * (each key a rule of policy/rules.ts; its properties those of the rule's `configSchema`; `enforcementLevel` left to
 * the pack). Pure: the estate writes it as JSON next to the run. Rules without site facts need no entry.
 */
export interface PolicyConfig {
  readonly "state-volumes-protected": VolumesConfig;
  readonly "host-ports-not-public": PortsConfig;
  readonly "secret-env-not-plain": SecretEnvConfig;
  readonly "hcloud-no-ssh-from-anywhere": SshConfig;
}

export function policyConfig(model: SiteModel): PolicyConfig {
  const containers = model.services.flatMap((s) => s.containers);
  /** By container name, the non-empty ones only. */
  const byContainer = (values: (c: (typeof containers)[number]) => readonly string[]) =>
    Object.fromEntries(containers.map((c) => [c.name, values(c)] as const).filter(([, v]) => v.length > 0));
  return {
    "state-volumes-protected": { protect: model.protect },
    // The catalog's ports on all addresses are its public ones (PortDef.ip defaults to all addresses).
    "host-ports-not-public": {
      publicPorts: byContainer((c) =>
        c.ports.filter((p) => p.ip === "0.0.0.0").map((p) => `${p.external}/${p.protocol}`),
      ),
    },
    "secret-env-not-plain": { secretEnv: byContainer((c) => c.secretEnv) },
    "hcloud-no-ssh-from-anywhere": {
      sshFromAnywhere:
        model.host.kind === "hcloud" && model.host.sshSources.some((s) => ANYWHERE.includes(s)),
    },
  };
}
