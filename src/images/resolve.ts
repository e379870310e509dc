/**
 * Resolution: asking the registry what a reference points to now. For an index (multi-arch), the
 * linux/amd64 entry's digest; for a single manifest, its own digest and layers (saving the pull a
 * second request). The registry's digest of the platform manifest is the cache key.
 */
import { rm } from "node:fs/promises";
import { HyperfleetError } from "../core/errors.js";
import { makeWorkDir } from "../assets/fs-util.js";
import { describePlatforms, digestOf, parseManifest, pickPlatform, type Descriptor } from "./manifest.js";
import { formatImageRef, type ImageRef } from "./reference.js";
import type { SkopeoClient } from "./skopeo.js";
import type { RegistryAuth } from "./skopeo-args.js";

/** What a resolution found. */
export interface Resolved {
  /** Digest of the linux/amd64 image manifest. */
  digest: string;
  /** Digest of the index it was chosen from, or null for a single manifest. */
  indexDigest: string | null;
  /** The manifest's layers when already known (single manifest), else null. */
  layers: Descriptor[] | null;
}

/** Resolves `ref` with one `skopeo inspect --raw` (credentials in a work dir under cacheDir). */
export async function resolveRef(skopeo: SkopeoClient, cacheDir: string, ref: ImageRef, auth: RegistryAuth | undefined, signal: AbortSignal): Promise<Resolved> {
  const workDir = await makeWorkDir(cacheDir, "resolve");
  try {
    const raw = await skopeo.inspectRaw(ref, { auth, workDir, signal });
    const m = parseManifest(raw);
    if (m.kind === "image") return { digest: digestOf(raw), indexDigest: null, layers: m.layers };
    const chosen = pickPlatform(m.manifests);
    if (!chosen) {
      throw new HyperfleetError("IMAGE_PLATFORM_UNSUPPORTED", `${formatImageRef(ref)} has no linux/amd64 image (it has: ${describePlatforms(m.manifests)})`);
    }
    return { digest: chosen.digest, indexDigest: digestOf(raw), layers: null };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
