import * as pulumi from "@pulumi/pulumi";

/**
 * Where resources were before the tree had a `Site`, a `Service` per service, `Tailnet`, `MeshNode` and
 * `Monitoring`: each moved resource carries one of these aliases, so an existing stack upgrades with no create,
 * delete or replace of anything real (test/tree.test.ts, e2e step a1.). Permanent: a stack deployed before the tree
 * may be upgraded at any later release.
 */

/** The type of the one component every site's networks, images, volumes, passwords and containers lived in. */
const SERVICE_SET = "qcloud:site:ServiceSet";

/** The `Site` was the stack's `ServiceSet`: its networks and images, still its children, follow it. */
export const WAS_SERVICE_SET: pulumi.Alias = { type: SERVICE_SET };

/** A service's volumes, passwords and containers were the site's `ServiceSet`'s children, under the same names. */
export const inServiceSet = (site: string): pulumi.Alias => ({ parent: pulumi.createUrn(site, SERVICE_SET) });

/** The stack's own children then (the host, the keys, the backup job, the tailnet address): now deeper in the tree. */
export const WAS_ROOT: pulumi.Alias = { parent: pulumi.rootStackResource };
