export * from "./config.js";
export type { Env } from "./env-reader.js";
