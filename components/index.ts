export * from "./host";
export * from "./serviceSet";
