/**
 * Download progress by watching the filesystem instead of parsing skopeo's output (which has no
 * byte counts when it is not a terminal). From the manifest we know every layer's digest and
 * size; skopeo streams each blob into an `oci-put-blob*` temp file in the pull's layout dir and
 * renames it into the shared blob dir when it is complete (containers/image oci destination). So:
 * done bytes = complete layers in the blob dir + the temp files' current sizes. Layers already
 * cached count as done from the first poll.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Descriptor } from "./manifest.js";

/** Download counters, a subset of PullProgress. */
export interface DownloadCounts {
  layersDone: number;
  layersTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

/** Options of watchDownload. */
export interface WatchOptions {
  layoutDir: string;
  /** The shared blob dir (`<dir>/sha256/<hex>`). */
  blobDir: string;
  layers: readonly Descriptor[];
  emit: (c: DownloadCounts) => void;
  intervalMs?: number;
}

const blobPath = (blobDir: string, digest: string) => join(blobDir, "sha256", digest.slice("sha256:".length));

async function sizeOrNull(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch {
    return null;
  }
}

/** Counts once; exported for tests. */
export async function countDownload(o: Omit<WatchOptions, "emit" | "intervalMs">): Promise<DownloadCounts> {
  let layersDone = 0;
  let bytesDone = 0;
  const bytesTotal = o.layers.reduce((n, l) => n + l.size, 0);
  for (const l of o.layers) {
    if ((await sizeOrNull(blobPath(o.blobDir, l.digest))) !== null) {
      layersDone++;
      bytesDone += l.size;
    }
  }
  const temps = (await readdir(o.layoutDir).catch(() => [] as string[])).filter((n) => n.startsWith("oci-put-blob"));
  for (const t of temps) bytesDone += (await sizeOrNull(join(o.layoutDir, t))) ?? 0;
  return { layersDone, layersTotal: o.layers.length, bytesDone: Math.min(bytesDone, bytesTotal), bytesTotal };
}

/** Polls until stopped, emitting whenever the counts change; stop() emits a last count. */
export function watchDownload(o: WatchOptions): { stop(): Promise<void> } {
  let last = "";
  let running: Promise<void> = Promise.resolve();
  const poll = () => {
    running = running.then(async () => {
      const c = await countDownload(o);
      const sig = JSON.stringify(c);
      if (sig !== last) {
        last = sig;
        o.emit(c);
      }
    });
    return running;
  };
  void poll();
  const timer = setInterval(() => void poll(), o.intervalMs ?? 250);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await poll();
    },
  };
}
