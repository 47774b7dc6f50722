export * from "./logKeys";
