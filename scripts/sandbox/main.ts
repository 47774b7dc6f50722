import * as path from "node:path";
import { SANDBOX, SITES, SandboxProject, onServer, startServers, toolchainEnv } from "./sandbox";

/**
 * `npm run sandbox`: the whole estate on this machine. Builds the offline toolchain and images if needed, starts a
 * sandbox server per site, runs `pulumi up` for master then lady, and prints what runs where.
 */
function step<T>(what: string, f: () => T): T {
  const t0 = Date.now();
  console.log(`==> ${what}`);
  const r = f();
  console.log(`    ${what}: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  return r;
}

const env = step("toolchain (scripts/toolchain.sh)", () => toolchainEnv(true));
step("sandbox servers and images", () => startServers(SITES));
const project = new SandboxProject(path.join(SANDBOX, "work"), env);
step("stacks", () => project.init(SITES));
for (const site of Object.keys(SITES)) {
  step(`pulumi up --stack ${site}`, () =>
    project.pulumi(["up", "--yes", "--skip-preview", "--stack", site], { echo: true }),
  );
}
for (const site of Object.keys(SITES)) {
  console.log(
    `\n--- ${site} (ssh -i ${path.join(SANDBOX, "ssh", "id_ed25519")} -p ${SITES[site]} root@127.0.0.1)`,
  );
  console.log(
    onServer(
      site,
      "docker ps --format '{{.Names}}\\t{{.Status}}\\t{{.Label \"cloud.qui3tly.service\"}}' | sort",
    ).stdout,
  );
}
console.log(`Pulumi project: ${project.dir}/project (state: file://${project.dir}/state)`);
console.log("Remove everything: npm run sandbox:down");
