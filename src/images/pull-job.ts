/**
 * One image, from a digest-pinned reference to a finished disk inside a work dir, as a list of
 * named steps: manifest -> free-space check -> download (with progress) -> config and platform
 * check -> link blobs -> unpack and build. It publishes nothing: on any failure the caller deletes
 * the work dir and nothing of the pull is visible in the cache (downloaded blobs are collected by
 * the cache's blob GC).
 */
import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import { parseImageConfig, type ImageConfig, type ImagePlatform } from "./config.js";
import { buildDisk } from "./convert.js";
import type { DiskPlan } from "./disk-plan.js";
import { blobPath, linkBlobs, readPulledLayout } from "./layout.js";
import { GUEST_PLATFORM, parseManifest, type Descriptor } from "./manifest.js";
import { countDownload, watchDownload } from "./progress.js";
import { formatImageRef, type ImageRef } from "./reference.js";
import { abortedError } from "./shared-task.js";
import type { SkopeoClient } from "./skopeo.js";
import type { RegistryAuth } from "./skopeo-args.js";
import type { PullProgress, ToolRunner } from "./types.js";
import { exists } from "../assets/fs-util.js";

/** Inputs of runPullJob. */
export interface PullJobInput {
  skopeo: SkopeoClient;
  run: ToolRunner;
  /** Digest-pinned reference of the linux/amd64 manifest. */
  image: ImageRef;
  /** The manifest if the caller already has it (null: fetched here). */
  layers: readonly Descriptor[] | null;
  auth: RegistryAuth | undefined;
  workDir: string;
  blobDir: string;
  /** Filesystem whose free space is checked before downloading. */
  cacheDir: string;
  agent: Uint8Array;
  rootless: boolean;
  sizeMib: number | undefined;
  uuid: string;
  signal: AbortSignal;
  emit: (p: PullProgress) => void;
  /** Called with the layer and config digests before downloading, so eviction leaves them alone. */
  pinBlobs: (digests: string[]) => void;
}

/** What a finished job produced. */
export interface PullJobResult {
  diskPath: string;
  plan: DiskPlan;
  platform: ImagePlatform;
  config: ImageConfig;
  blobs: { digest: string; size: number }[];
}

const MiB = 1024 * 1024;

function checkAborted(signal: AbortSignal, image: string): void {
  if (signal.aborted) throw abortedError(`pulling ${image}`);
}

/**
 * Fails early when the cache's filesystem clearly cannot take the image: the missing layers, plus
 * the unpacked tree and the disk (each counted as twice the compressed size, a low estimate).
 */
async function checkFreeSpace(cacheDir: string, blobDir: string, layers: readonly Descriptor[], image: string): Promise<void> {
  let missing = 0;
  for (const l of layers) if (!(await exists(blobPath(blobDir, l.digest)))) missing += l.size;
  const compressed = layers.reduce((n, l) => n + l.size, 0);
  const need = missing + 4 * compressed + 16 * MiB;
  const fs = await statfs(cacheDir);
  const free = fs.bavail * fs.bsize;
  if (free < need) {
    throw new HyperfleetError("HOST_DISK_FULL", `not enough free space in ${cacheDir} to pull ${image}: about ${Math.ceil(need / MiB)} MiB needed, ${Math.floor(free / MiB)} MiB free; free space or lower the cache size limit`, {
      details: { neededBytes: need, freeBytes: free },
    });
  }
}

/** Runs the job; see the file comment. */
export async function runPullJob(i: PullJobInput): Promise<PullJobResult> {
  const name = formatImageRef(i.image);
  const ctx = { auth: i.auth, workDir: i.workDir, signal: i.signal };
  const zero = { layersDone: 0, layersTotal: 0, bytesDone: 0, bytesTotal: 0 };

  let layers = i.layers;
  if (!layers) {
    const m = parseManifest(await i.skopeo.inspectRaw(i.image, ctx));
    if (m.kind !== "image") throw new HyperfleetError("IMAGE_INVALID", `${name} is an index inside an index, which is not supported`);
    layers = m.layers;
  }
  checkAborted(i.signal, name);
  await checkFreeSpace(i.cacheDir, i.blobDir, layers, name);
  i.pinBlobs(layers.map((l) => l.digest));

  const layoutDir = join(i.workDir, "layout");
  const report = (phase: PullProgress["phase"], c = zero) => i.emit({ phase, ...c });
  let counts = await countDownload({ layoutDir, blobDir: i.blobDir, layers });
  report("downloading", counts);
  const watcher = watchDownload({ layoutDir, blobDir: i.blobDir, layers, emit: (c) => report("downloading", (counts = c)) });
  try {
    await i.skopeo.copy(i.image, layoutDir, ctx);
  } finally {
    await watcher.stop();
  }
  checkAborted(i.signal, name);

  const pulled = await readPulledLayout(layoutDir, i.blobDir);
  i.pinBlobs(pulled.blobs.map((b) => b.digest));
  const { platform, config } = parseImageConfig(pulled.configRaw);
  if (platform.os !== GUEST_PLATFORM.os || platform.architecture !== GUEST_PLATFORM.architecture) {
    throw new HyperfleetError("IMAGE_PLATFORM_UNSUPPORTED", `${name} is built for ${platform.os}/${platform.architecture}; Hyperfleet guests are linux/amd64`);
  }
  await linkBlobs(layoutDir, i.blobDir, pulled.blobs.map((b) => b.digest));
  checkAborted(i.signal, name);

  const { diskPath, plan } = await buildDisk({
    run: i.run,
    layoutDir,
    workDir: i.workDir,
    agent: i.agent,
    rootless: i.rootless,
    sizeMib: i.sizeMib,
    uuid: i.uuid,
    image: name,
    signal: i.signal,
    onPhase: (phase) => report(phase, counts),
  });
  checkAborted(i.signal, name);
  return { diskPath, plan, platform, config, blobs: pulled.blobs };
}
