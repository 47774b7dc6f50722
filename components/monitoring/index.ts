export * from "./logKeys";
export * from "./monitoring";
