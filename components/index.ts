export * from "./host";
export * from "./serviceSet";
export * from "./mesh";
export * from "./backup";
export * from "./monitoring";
export * from "./sealedBundles";
