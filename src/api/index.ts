export { buildApp, type AppOptions } from "./app.js";
export { ApiKeyVerifier, generateApiKey, hashApiKey } from "./auth.js";
export { httpStatus } from "./http-status.js";
export type * from "../core/ports/services.js";
