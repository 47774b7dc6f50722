import { PolicyPack } from "@pulumi/policy";
import { POLICIES } from "./rules";

/**
 * The program the analyzer runs (policy/analyzer -> policy/main.js -> here): serves the rules to the engine. Its
 * version is the project's (package.json, read from the working directory the launcher sets).
 */
new PolicyPack("qcloud", {
  description:
    "qui3tly-cloud: pinned images, no privileged containers, allowed capabilities, limits, state, exposure",
  enforcementLevel: "mandatory",
  policies: [...POLICIES],
});
