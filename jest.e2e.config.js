/** End-to-end: the real Pulumi engine against sandbox servers. Minutes, not milliseconds; one at a time. */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  roots: ["<rootDir>/test/e2e"],
  testTimeout: 30 * 60 * 1000,
  maxWorkers: 1,
};
