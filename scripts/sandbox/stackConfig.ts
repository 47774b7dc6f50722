import * as fs from "node:fs";
import * as path from "node:path";
import YAML from "yaml";
import { SEAL_KEY_KEY, SITE_KEY } from "../../config/schema";
import { fileSource } from "../../config/source";

/** Where the sandbox's registry answers from inside the sandbox servers. */
export const SANDBOX_REGISTRY = "registry:5000";
/**
 * The sandbox's Traefik has no trusted certificate (no ACME server answers): Headscale's API is published on the
 * control plane's server at this port, and nodes log in over HTTP.
 */
export const SANDBOX_HEADSCALE_PORT = 18080;
/** The tailnet user in the sandbox's `group:admins` (SSH and admin UIs on every site). */
export const SANDBOX_ADMIN = "ops";
/** Scrapes and rule evaluations this often, so an alert fires within a test's patience. */
export const SANDBOX_MONITORING_INTERVAL = "5s";

/** A sandbox site: on a sandbox server (`server.sh up`), or on one its stack makes through the hcloud stand-in. */
export type SandboxHost = ServerHost | HcloudHost;

/**
 * A site whose committed host is `hcloud`: its twin keeps the server type and location and makes its server through
 * the hcloud stand-in (scripts/sandbox/hcloud.ts), with the sandbox's SSH key, reachable over SSH from this machine.
 */
export interface HcloudHost {
  readonly kind: "hcloud";
  /** The sandbox's SSH public key: the server's only key. */
  readonly sshKey: string;
  /** This machine's address on the sandbox network, as the firewall sees it: SSH is open from there only. */
  readonly sshSource: string;
  readonly template?: string;
  readonly sealPublicKey?: string;
}

export interface ServerHost {
  readonly kind?: "existing";
  /** The SSH port published on 127.0.0.1. */
  readonly port: number;
  /** The server's SSH host key (`ssh-ed25519 AAAA...`): pinned, like a real site should be. */
  readonly hostKey: string;
  /** The committed stack to copy. Defaults to the site's own. */
  readonly template?: string;
  /**
   * The server's address on the sandbox's Docker network, where the other servers' containers reach it (they
   * cannot resolve its name). A control plane's tailnet logs in there.
   */
  readonly address?: string;
  /**
   * The public half of the site's sealing key (every site but a control plane), in place of the committed one: the
   * sandbox makes its own pair and keeps the private half in the stack's secret config (`sandboxSealKey`).
   */
  readonly sealPublicKey?: string;
}

interface StackFile {
  config?: Record<string, unknown>;
  [key: string]: unknown;
}

/**
 * A committed stack file's config turned into its sandbox twin: the same role, domain and services; the host is the
 * local sandbox server, images come from the sandbox registry, and volumes are not protected (so destroy runs
 * through, while `retainOnDelete` still keeps the data).
 */
export function sandboxSite(committed: StackFile, host: SandboxHost): Record<string, unknown> {
  const site = committed.config?.[SITE_KEY] as Record<string, unknown>;
  const controlPlane = site.role === "control-plane";
  const sealPublicKey = host.sealPublicKey && !controlPlane ? { sealPublicKey: host.sealPublicKey } : {};
  if (host.kind === "hcloud") {
    return {
      ...site,
      protect: false,
      host: { ...(site.host as object), sshKeys: [host.sshKey], sshSources: [`${host.sshSource}/32`] },
      images: { registry: SANDBOX_REGISTRY },
      // Its tunnel's endpoint is its server's address, learnt by the peers from its handshakes.
      mesh: { ...(site.mesh as object | undefined), ...sealPublicKey },
    };
  }
  return {
    ...site,
    protect: false,
    // SSH on 127.0.0.1:<port>, published from the server's sshd on 22.
    host: {
      kind: "existing",
      address: "127.0.0.1",
      user: "root",
      port: host.port,
      sshdPort: 22,
      hostKey: host.hostKey,
    },
    images: { registry: SANDBOX_REGISTRY },
    ...(host.address
      ? {
          mesh: {
            ...(site.mesh as object | undefined),
            ...(controlPlane
              ? {
                  loginServer: `http://${host.address}:${SANDBOX_HEADSCALE_PORT}`,
                  headscalePort: SANDBOX_HEADSCALE_PORT,
                  // The e2e's admin device logs in as this user.
                  admins: [SANDBOX_ADMIN],
                }
              : {}),
            // Every sandbox site gets a tunnel, on its server's address: 10.90.0.<ssh port - 2200>.
            wireguard: { address: `10.90.0.${host.port - 2200}`, endpoint: host.address },
            ...sealPublicKey,
          },
        }
      : { mesh: { ...(site.mesh as object | undefined), ...sealPublicKey } }),
    ...(controlPlane
      ? { monitoring: { ...(site.monitoring as object | undefined), interval: SANDBOX_MONITORING_INTERVAL } }
      : {}),
  };
}

/** The committed sites whose server their stack makes (`host.kind: hcloud`): the sandbox makes them through the stand-in. */
export function hcloudSites(repo: string): string[] {
  return fs
    .readdirSync(repo)
    .map((f) => /^Pulumi\.([^.]+)\.yaml$/.exec(f)?.[1])
    .filter((site): site is string => {
      if (site === undefined) return false;
      const config = fileSource(path.join(repo, `Pulumi.${site}.yaml`)).get(SITE_KEY);
      return (config as { host?: { kind?: string } } | undefined)?.host?.kind === "hcloud";
    })
    .sort();
}

/**
 * A Pulumi project directory for the sandbox: its own Pulumi.yaml whose `main` is this repository, and the sandbox
 * stack files. The committed stack files stay untouched (Pulumi writes salts and secrets into stack files); in an
 * existing sandbox file only the site object is replaced.
 */
export function writeSandboxProject(
  dir: string,
  repo: string,
  sites: Readonly<Record<string, SandboxHost>>,
): void {
  const read = (file: string): StackFile =>
    (YAML.parse(fs.readFileSync(file, "utf8")) as StackFile | null) ?? {};
  fs.mkdirSync(dir, { recursive: true });
  const project = read(path.join(repo, "Pulumi.yaml"));
  fs.writeFileSync(
    path.join(dir, "Pulumi.yaml"),
    YAML.stringify({ ...project, main: path.relative(dir, repo) }),
  );
  for (const [site, host] of Object.entries(sites)) {
    const file = path.join(dir, `Pulumi.${site}.yaml`);
    const previous = fs.existsSync(file) ? read(file) : {};
    const config = {
      ...previous.config,
      [SITE_KEY]: sandboxSite(read(path.join(repo, `Pulumi.${host.template ?? site}.yaml`)), host),
    };
    fs.writeFileSync(
      file,
      `# Sandbox twin of the committed Pulumi.${host.template ?? site}.yaml.\n${YAML.stringify({ ...previous, config })}`,
    );
  }
}

/**
 * Whether a sandbox site needs a sealing key of its own (every site but a control plane), and the public half it
 * already has: one its twin file holds together with the secret private half (a sandbox started again keeps its
 * pair, so the control plane's sealed outputs do not change), else none and a fresh pair is made.
 */
export function sandboxSealKey(
  dir: string,
  repo: string,
  site: string,
  template = site,
): { readonly needed: boolean; readonly existing?: string } {
  const read = (file: string): StackFile =>
    fs.existsSync(file) ? ((YAML.parse(fs.readFileSync(file, "utf8")) as StackFile | null) ?? {}) : {};
  const committed = read(path.join(repo, `Pulumi.${template}.yaml`)).config?.[SITE_KEY] as
    { role?: string } | undefined;
  if (committed?.role === "control-plane") return { needed: false };
  const twin = read(path.join(dir, `Pulumi.${site}.yaml`)).config;
  const existing = (twin?.[SITE_KEY] as { mesh?: { sealPublicKey?: string } } | undefined)?.mesh
    ?.sealPublicKey;
  const secret = twin?.[SEAL_KEY_KEY];
  return typeof secret === "object" && secret !== null && "secure" in secret && existing
    ? { needed: true, existing }
    : { needed: true };
}
