export * from "./host";
export * from "./service";
export * from "./mesh";
export * from "./backup";
export * from "./monitoring";
export * from "./sealedBundles";
export * from "./site";
export * from "./sync";
