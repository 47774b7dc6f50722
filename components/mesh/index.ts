export * from "./headscale";
export * from "./meshNode";
export * from "./tailnet";
export * from "./wireguardKeys";
