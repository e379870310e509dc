/** The OCI image subsystem: pull, convert to an ext4 root disk, cache. See README.md here. */
export { ImageService } from "./service.js";
export { parseImageRef, formatImageRef, type ImageRef } from "./reference.js";
export type { CachedImage, ImageConfig, ImageLogger, ImageServiceOptions, PullOptions, PullProgress, RegistryAuth, RegistryMirrors, ToolRunner } from "./types.js";
export { runConfig } from "./config.js";
