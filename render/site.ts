import { BACKUP_CRON, BACKUP_SCRIPT, renderBackupCron, renderBackupScript } from "./backup";
import { SYNC_CRON, SYNC_SCRIPT, renderSyncCron, renderSyncScript } from "./sync";
import { renderCompose } from "./compose";
import { HOST_KEY_PLACEHOLDER, renderCloudInit } from "./host";
import { LOG_OPTS, describeSecret, pulls, type SiteModel } from "./siteModel";
import { WG_INTERFACE, renderWireguardConfig, tunnelSites } from "./wireguard";

/** How a secret shows in reviewable output: its source, never its value. */
function envForReview(v: SiteModel["services"][number]["containers"][number]["env"][string]): string {
  return typeof v === "string" ? v : describeSecret(v);
}

/**
 * Every file the program generates for a site, by relative path, for review in pull requests: the config files
 * uploaded into containers, and `site.yaml`, the resolved containers (image, ports, volumes, env, labels, limits).
 * Holds no secret value: secrets are generated or read from config at deploy time only.
 */
export function renderSiteFiles(model: SiteModel): Record<string, string> {
  const files: Record<string, string> = {};
  for (const s of model.services) {
    for (const c of s.containers) {
      for (const [p, content] of Object.entries(c.files)) files[`files/${c.name}${p}`] = content;
    }
  }
  if (model.mesh.wireguard) {
    // The tunnel's config is a secret (its private key) made at deploy time: reviewed here with the keys named.
    const peers = tunnelSites(model.estate, model.controlPlane).map((p) => p.name);
    files[`mesh/${WG_INTERFACE}.conf`] = renderWireguardConfig(model.estate, model.name, {
      privateKey: `<secret: ${model.name}'s private key, from ${model.controlPlane}'s stack>`,
      publicKeys: Object.fromEntries(
        peers.map((p) => [p, `<${p}'s public key, from ${model.controlPlane}'s stack>`]),
      ),
    });
  }
  if (model.host.kind === "hcloud") {
    // The server's first boot; its host key is made at deploy time and kept secret in state.
    files["host/cloud-init.yaml"] = renderCloudInit({
      privateKey: HOST_KEY_PLACEHOLDER,
      publicKey: "<the server's public host key, from the stack's state>",
    });
  }
  const containers = model.services.flatMap((s) =>
    s.containers.map((c) => ({
      name: c.name,
      service: s.name,
      image: c.image,
      ...(c.command ? { command: c.command } : {}),
      ...(c.entrypoint ? { entrypoint: c.entrypoint } : {}),
      ...(c.user ? { user: c.user } : {}),
      env: Object.fromEntries(Object.entries(c.env).map(([k, v]) => [k, envForReview(v)])),
      ...(Object.keys(c.secretFiles).length > 0
        ? {
            secretFiles: Object.fromEntries(
              Object.entries(c.secretFiles).map(([p, v]) => [p, describeSecret(v)]),
            ),
          }
        : {}),
      ports: c.ports.map((p) => `${p.ip}:${p.external}:${p.internal}/${p.protocol}`),
      volumes: c.mounts.map((m) => `${m.volume}:${m.path}${m.readOnly ? ":ro" : ""}`),
      binds: c.binds.map((b) => `${b.hostPath}:${b.path}${b.readOnly ? ":ro" : ""}`),
      networks: c.networks,
      healthcheck: c.healthcheck ?? "none",
      restart: c.restart,
      limits: { memory: `${c.memoryMb}m`, cpus: c.cpus },
      logging: { driver: "json-file", options: LOG_OPTS },
      labels: c.labels,
      dependsOn: c.dependsOn,
    })),
  );
  if (model.follows.some(pulls)) {
    // The secondaries' sync job as the host gets it.
    files[`sync${SYNC_SCRIPT}`] = renderSyncScript(model);
    files[`sync${SYNC_CRON}`] = renderSyncCron(model);
  }
  if (model.backup.target !== undefined || model.backup.hosted.length > 0) {
    // The backup job as the host gets it (its secrets are files the install writes from stdin).
    files[`backup${BACKUP_SCRIPT}`] = renderBackupScript(model);
    files[`backup${BACKUP_CRON}`] = renderBackupCron(model);
  }
  files["site.json"] = `${JSON.stringify(
    {
      site: model.name,
      role: model.role,
      routes: model.routes,
      containers,
      // Run by the host's backup job, not as containers.
      jobImages: Object.values(model.backup.images),
    },
    null,
    2,
  )}\n`;
  files["docker-compose.yml"] = renderCompose(model);
  return files;
}
