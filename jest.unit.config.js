/**
 * The unit tier alone (`npm run test:unit`): no Go, no root, no tools to build or fetch. It leaves out the test files
 * that run scripts/mesh-tools.sh or scripts/monitoring-tools.sh (the render tier: real headscale, wg, wireguard-go,
 * Traefik, promtool, amtool; `npm test` runs them), found by their content, so a new such file is left out too.
 */
const fs = require("node:fs");
const path = require("node:path");
const base = require("./jest.config.js");

const TOOLS = /scripts\/(mesh|monitoring)-tools\.sh/;
const dir = path.join(__dirname, "test");
const renderTier = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith(".test.ts") && TOOLS.test(fs.readFileSync(path.join(dir, f), "utf8")));

module.exports = {
  ...base,
  testPathIgnorePatterns: [
    ...base.testPathIgnorePatterns,
    ...renderTier.map((f) => `<rootDir>/test/${f.replace(/\./g, "\\.")}$`),
  ],
};
