import * as path from "node:path";
import * as fs from "node:fs";
import { startHcloudApi } from "./hcloud";
import { SandboxMachines } from "./hcloudMachines";
import { HCLOUD_DIR, HCLOUD_PORT } from "./sandbox";

/**
 * The hcloud stand-in as the sandbox runs it (scripts/sandbox/sandbox.ts startHcloudApi starts this in the
 * background): the API on 127.0.0.1, its state in a file, each server a sandbox server.
 */
void startHcloudApi({
  token: fs.readFileSync(path.join(HCLOUD_DIR, "token"), "utf8").trim(),
  stateFile: path.join(HCLOUD_DIR, "state.json"),
  machines: new SandboxMachines(path.join(HCLOUD_DIR, "servers")),
  host: "127.0.0.1",
  port: HCLOUD_PORT,
});
