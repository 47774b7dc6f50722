/** End-to-end: the real Pulumi engine against sandbox servers. Minutes, not milliseconds; one at a time. */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/test/e2e"],
  testTimeout: 30 * 60 * 1000,
  maxWorkers: 1,
  // Each step's time in the log, for the CI budget (jest prints them only when one file runs).
  verbose: true,
};
