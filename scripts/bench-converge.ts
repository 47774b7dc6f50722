import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileSource } from "../config/source";
import { loadSite } from "../model/site";
import { composeSecretVar } from "../render/compose";
import { renderSiteFiles } from "../render/site";
import { SandboxProject, copyTo, onPort, run, toolchainEnv } from "./sandbox/sandbox";

/**
 * `npm run bench:converge`: on one fresh sandbox server, `docker-compose up -d` of master's containers (rendered
 * from the same model) until every healthcheck passes, then the same containers by `pulumi up` (which waits for
 * health itself), the no-op preview, and the warm toolchain check. Images are pulled first, untimed, for both.
 */

const SITE = "bench";
const PORT = 2203;
const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
function timed(f: () => void): number {
  const t0 = process.hrtime.bigint();
  f();
  return seconds(t0);
}
const on = (cmd: string) => onPort(PORT, cmd).stdout;

/** Polls until every container of the compose project is running and healthy (or has no healthcheck). */
function waitHealthy(expected: number): void {
  const deadline = Date.now() + 15 * 60 * 1000;
  for (;;) {
    const states = on(
      "docker ps -a --filter label=cloud.qui3tly.managed-by=compose -q | xargs -r docker inspect --format '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}'",
    )
      .trim()
      .split("\n")
      .filter(Boolean);
    if (states.length === expected && states.every((s) => s === "running/healthy" || s === "running/none"))
      return;
    if (Date.now() > deadline)
      throw new Error(`compose containers not healthy after 15 minutes: ${states.join(" ")}`);
    run("sleep", ["1"]);
  }
}

const warmToolchain = timed(() => run("bash", ["scripts/toolchain.sh", "--quiet"]));
const env = toolchainEnv();
run("bash", ["scripts/sandbox/images.sh"], { echo: true });
run("bash", ["scripts/sandbox/server.sh", "down", SITE], { allowFail: true });
run("bash", ["scripts/sandbox/server.sh", "up", SITE, String(PORT)], { echo: true });

const project = new SandboxProject(fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-bench-")), env);
project.init({ [SITE]: PORT }, { [SITE]: "master" });
const model = loadSite(fileSource(project.stackFile(SITE)));
const containers = model.services.reduce((n, s) => n + s.containers.length, 0);

// The compose twin, its config files, and a .env with throwaway secrets, copied onto the server.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "qcloud-compose-"));
for (const [rel, content] of Object.entries(renderSiteFiles(model))) {
  fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
  fs.writeFileSync(path.join(dir, rel), content);
}
const vars = new Set(
  model.services.flatMap((s) =>
    s.containers.flatMap((c) =>
      Object.values(c.env).flatMap((v) => (typeof v === "string" ? [] : [composeSecretVar(s.name, v)])),
    ),
  ),
);
fs.writeFileSync(
  path.join(dir, ".env"),
  [...vars].map((v) => `${v}=${randomBytes(16).toString("hex")}\n`).join(""),
);
copyTo(PORT, dir, "/root/compose");

for (const image of new Set(model.services.flatMap((s) => s.containers.map((c) => c.image))))
  on(`docker pull -q ${image}`);
on("cd /root/compose && docker-compose config -q"); // the real validator accepts the rendered file

const compose = timed(() => {
  on("cd /root/compose && docker-compose up -d --quiet-pull 2>&1");
  waitHealthy(containers);
});
on("cd /root/compose && docker-compose down -v 2>&1");

const up = timed(() => project.pulumi(["up", "--yes", "--skip-preview", "--stack", SITE]));
const noop = timed(() => project.pulumi(["preview", "--expect-no-changes", "--stack", SITE]));

run("bash", ["scripts/sandbox/server.sh", "down", SITE]);
fs.rmSync(project.dir, { recursive: true, force: true });
fs.rmSync(dir, { recursive: true, force: true });

console.log(`\nconverge of master's ${containers} containers on a fresh sandbox server (images pre-pulled):`);
console.log(`  docker-compose up -d, until healthy   ${compose.toFixed(1)} s`);
console.log(
  `  pulumi up (waits for health)          ${up.toFixed(1)} s   ratio pulumi/compose ${(up / compose).toFixed(2)}`,
);
console.log(`  pulumi preview, no changes            ${noop.toFixed(1)} s`);
console.log(`  toolchain check, warm                 ${warmToolchain.toFixed(1)} s`);
