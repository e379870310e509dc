/**
 * The wire contract: TypeBox schemas of every request and response body, and their static types
 * (snake_case, as sent). One definition gives the API its validation, its /openapi.json and its
 * response types; the SDK builds on the same module and nothing else of the server.
 */
export * from "./common.js";
export * from "./exec.js";
export * from "./files.js";
export * from "./file-tree.js";
export * from "./images.js";
export * from "./machine.js";
export * from "./snapshot.js";
export * from "./spawn.js";
export * from "./volume.js";
