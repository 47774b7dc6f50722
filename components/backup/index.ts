export * from "./backupKeys";
export * from "./backups";
