/** Public types of the image subsystem. */
import type { RunOptions, RunResult } from "../assets/exec.js";
import type { PullPhase } from "../core/machine.js";
import type { ImageConfig, ImagePlatform } from "./config.js";
import type { RegistryAuth, RegistryMirrors } from "./skopeo-args.js";

export type { ImageConfig, ImagePlatform, ExposedPort } from "./config.js";
export type { RegistryAuth, RegistryMirrors } from "./skopeo-args.js";

/**
 * Runs a host tool (skopeo, umoci, mkfs.ext4). The default is runTool from src/assets/exec.ts;
 * tests wrap it to record every argv.
 */
export type ToolRunner = (cmd: string, args: readonly string[], opts?: RunOptions) => Promise<RunResult>;

/** The subset of a pino logger the service uses. */
export interface ImageLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** Where a pull is. Byte and layer counts are those of the download (compressed layers). */
export interface PullProgress {
  phase: PullPhase;
  layersDone: number;
  layersTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

/** Options of ImageService.pull. */
export interface PullOptions {
  /** Credentials for the image's registry; used for this pull only, never logged or stored. */
  auth?: RegistryAuth;
  /** Size of the root disk; default: content plus max(50 %, 64 MiB). Each size is its own disk. */
  imageSizeMib?: number;
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
  /**
   * `if-missing` (default): a tag already cached is used without asking the registry.
   * `always`: ask the registry what the tag points to now (one manifest request) and pull if new.
   */
  policy?: "if-missing" | "always";
  /** Take a reference (see acquire) before returning, so eviction cannot race the caller. */
  acquire?: boolean;
}

/** A cached image: a read-only root disk for VMs (each VM gets its own qcow2 overlay on it). */
export interface CachedImage {
  /** Cache key: the manifest digest's hex, with `-<N>m` for an explicit disk size. */
  key: string;
  /** Normalized references that resolved to this image (`docker.io/library/alpine:latest`). */
  refs: string[];
  /** `registry/repository@digest`: what was pulled. */
  resolvedRef: string;
  /** Digest of the linux/amd64 image manifest. */
  digest: string;
  /** Digests of the multi-arch indexes it was chosen from (pulls by those digests find it too). */
  indexDigests: string[];
  platform: ImagePlatform;
  /** The ext4 root disk (read-only; never write to it). */
  diskPath: string;
  /** Filesystem size of the disk. */
  diskSizeMib: number;
  /** Host bytes this image holds: its disk's allocated blocks plus its blobs. */
  sizeBytes: number;
  config: ImageConfig;
  createdAt: Date;
  lastUsedAt: Date;
  /** True while a VM uses it (acquire or the isInUse callback): it will not be evicted. */
  inUse: boolean;
}

/** Options of ImageService.open. */
export interface ImageServiceOptions {
  /** Cache directory (config `oci.cacheDir`, default /var/lib/hyperfleet/images). */
  cacheDir: string;
  /** Bytes the cache may hold before unused images are evicted (config `oci.maxCacheSize`). */
  maxCacheSize: number;
  /** `host:port` of registries reached over plain HTTP. */
  insecureRegistries?: readonly string[];
  mirrors?: RegistryMirrors;
  /** The static guest agent, installed as /sbin/hf-agent (guest/build/hf-agent). */
  agentBinary: string;
  log?: ImageLogger;
  /** Extra in-use check (e.g. "a machine record points at this digest"), on top of acquire(). */
  isInUse?: (digest: string) => boolean;
  run?: ToolRunner;
  /** Kill a pull that takes longer (default 60 min). */
  pullTimeoutMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}
