import { REPOSITORY_PORT } from "../render/policy";
import { httpHealth, image, notKept } from "./helpers";
import type { ServiceDef } from "./types";

/**
 * Backups: restic on every site (run by the host's job, render/backup.ts), into a repository on another site of
 * the estate: restic's REST server there, append-only, so a compromised site cannot delete its own history.
 */

/** restic, run by the host's backup job (`docker run --rm`), never as a service. */
export const RESTIC_IMAGE = image("docker.io/restic/restic", "0.19.1");
/** `sqlite3` for online copies (`.backup`) of the SQLite databases the catalog declares. */
export const SQLITE_IMAGE = image("docker.io/keinos/sqlite3", "3.47.2");
/** The REST server's users: one per site whose repository it keeps, `site:bcrypt hash` (a secret file). */
const HTPASSWD = "/etc/rest-server/htpasswd";

export const backupRepository: ServiceDef = {
  description:
    "Restic's REST server, append-only: the backup repositories of the sites whose backups this site keeps",
  containers: () => ({
    main: {
      image: image("docker.io/restic/rest-server", "0.14.0"),
      entrypoint: ["rest-server"],
      command: [
        "--path",
        "/data",
        "--listen",
        `:${REPOSITORY_PORT}`,
        // Clients add snapshots, never delete or rewrite: retention runs on this site (`qcloud-backup maintain`).
        "--append-only",
        // Each site's user reaches its own repository (`/<site>/`) only.
        "--private-repos",
        "--htpasswd-file",
        HTPASSWD,
        "--prometheus",
        "--prometheus-no-auth",
      ],
      volumes: {
        data: notKept(
          "/data",
          "other sites' backups (encrypted): their second copy belongs offsite, not in this site's own repository",
        ),
      },
      secretFiles: { [HTPASSWD]: { input: "backupHtpasswd" } },
      healthcheck: httpHealth(`http://127.0.0.1:${REPOSITORY_PORT}/metrics`),
      metrics: { port: REPOSITORY_PORT },
      memoryMb: 256,
      cpus: 0.5,
      networks: ["metrics"],
    },
  }),
};
