export * from "./headscale";
export * from "./wireguardKeys";
