import * as path from "node:path";
import {
  REPO,
  SANDBOX,
  SITES,
  SandboxProject,
  ensureHcloudApi,
  onServer,
  sshCommand,
  startServers,
  toolchainEnv,
} from "./sandbox";
import { hcloudSites } from "./stackConfig";

/**
 * `npm run sandbox`: the whole estate on this machine. Builds the offline toolchain and images if needed, starts a
 * sandbox server per site (a site whose stack makes its server, madam, gets it from the hcloud stand-in), runs
 * `pulumi up` for master, lady, then madam, and prints what runs where.
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
// The sites whose stack makes their server (madam): through the hcloud stand-in, after the others.
const made = hcloudSites(REPO);
step("stacks", () => {
  project.init(SITES);
  if (made.length > 0) {
    const api = ensureHcloudApi();
    for (const site of made) project.initHcloud(site, api);
  }
});
const sites = [...Object.keys(SITES), ...made];
for (const site of sites) {
  step(`pulumi up --stack ${site}`, () =>
    project.pulumi(["up", "--yes", "--skip-preview", "--stack", site], { echo: true }),
  );
}
for (const site of sites) {
  console.log(`\n--- ${site} (${sshCommand(site)})`);
  console.log(
    onServer(
      site,
      "docker ps --format '{{.Names}}\\t{{.Status}}\\t{{.Label \"cloud.qui3tly.service\"}}' | sort",
    ).stdout,
  );
}
console.log(`Pulumi project: ${project.dir}/project (state: file://${project.dir}/state)`);
console.log("Remove everything: npm run sandbox:down");
