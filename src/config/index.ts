export * from "./config.js";
export type { Env } from "./env-reader.js";
export type { NetworkConfig } from "./network.js";
export type { JailerConfig } from "./jailer.js";
