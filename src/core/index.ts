export * from "./errors.js";
export * from "./result.js";
export * from "./ports/vmm-driver.js";
