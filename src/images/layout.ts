/**
 * The per-pull OCI layout. skopeo writes only index.json there (blobs go to the shared blob dir,
 * `--dest-shared-blob-dir`); umoci wants a self-contained layout, so the image's blobs are hard-linked
 * in (same filesystem: no copy, and deleting the layout leaves the shared blobs alone).
 */
import { link, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { HyperfleetError } from "../core/errors.js";
import { parseManifest, type Descriptor } from "./manifest.js";
import { LAYOUT_TAG } from "./skopeo-args.js";

/** A blob's path in a blob dir laid out as `<dir>/sha256/<hex>`. */
export function blobPath(blobDir: string, digest: string): string {
  const [alg, hex] = digest.split(":");
  if (alg !== "sha256" || !hex || !/^[a-f0-9]{64}$/.test(hex)) throw new HyperfleetError("IMAGE_INVALID", `unsupported blob digest ${digest}`);
  return join(blobDir, "sha256", hex);
}

/** What a finished skopeo copy left: the stored (OCI) manifest, the config and every blob. */
export interface PulledImage {
  /** Digest of the manifest as stored (skopeo converts Docker manifests to OCI, so it may differ from the registry's). */
  storedManifestDigest: string;
  config: Descriptor;
  configRaw: Buffer;
  layers: Descriptor[];
  blobs: { digest: string; size: number }[];
}

/** Reads the layout skopeo wrote. */
export async function readPulledLayout(layoutDir: string, blobDir: string): Promise<PulledImage> {
  const index = JSON.parse(await readFile(join(layoutDir, "index.json"), "utf8")) as { manifests?: (Descriptor & { annotations?: Record<string, string> })[] };
  const desc = index.manifests?.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === LAYOUT_TAG) ?? index.manifests?.[0];
  if (!desc) throw new HyperfleetError("IMAGE_INVALID", "skopeo left an empty OCI layout");
  const m = parseManifest(await readFile(blobPath(blobDir, desc.digest)));
  if (m.kind !== "image") throw new HyperfleetError("IMAGE_INVALID", "expected a single-platform image after choosing linux/amd64, got an index");
  const configRaw = await readFile(blobPath(blobDir, m.config.digest));
  const blobs = [desc, m.config, ...m.layers].map((d) => ({ digest: d.digest, size: d.size }));
  return { storedManifestDigest: desc.digest, config: m.config, configRaw, layers: m.layers, blobs };
}

/** Hard-links the blobs into `<layoutDir>/blobs/sha256/` so umoci can read the layout. */
export async function linkBlobs(layoutDir: string, blobDir: string, digests: readonly string[]): Promise<void> {
  await mkdir(join(layoutDir, "blobs", "sha256"), { recursive: true });
  for (const d of new Set(digests)) {
    await link(blobPath(blobDir, d), blobPath(join(layoutDir, "blobs"), d)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
  }
}
