/**
 * Registry manifests (pure): telling an image index (multi-arch) from a single-image manifest,
 * picking the linux/amd64 entry of an index, and digests of raw manifest bytes.
 */
import { createHash } from "node:crypto";
import { HyperfleetError } from "../core/errors.js";

/** A content descriptor as it appears in manifests and indexes. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/** A parsed manifest: an index to choose from, or one image. */
export type ParsedManifest =
  | { kind: "index"; manifests: Descriptor[] }
  | { kind: "image"; config: Descriptor; layers: Descriptor[] };

/** The only platform our guests run. */
export const GUEST_PLATFORM = { os: "linux", architecture: "amd64" } as const;

const INDEX_TYPES = new Set(["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]);

/** `sha256:<hex>` of raw bytes: a manifest's digest is the hash of exactly what the registry sent. */
export function digestOf(raw: Uint8Array): string {
  return `sha256:${createHash("sha256").update(raw).digest("hex")}`;
}

function bad(why: string): HyperfleetError {
  return new HyperfleetError("IMAGE_INVALID", `the registry sent a manifest we cannot use: ${why}`);
}

function descriptor(v: unknown, where: string): Descriptor {
  const d = v as Partial<Descriptor> | null;
  if (!d || typeof d.digest !== "string" || !/^sha256:[a-f0-9]{64}$/.test(d.digest) || typeof d.size !== "number") {
    throw bad(`${where} is not a sha256 descriptor with a size`);
  }
  return { mediaType: typeof d.mediaType === "string" ? d.mediaType : "", digest: d.digest, size: d.size, ...(d.platform ? { platform: d.platform } : {}) };
}

/** Parses a manifest or index; Docker schema 1 and unknown shapes are IMAGE_INVALID. */
export function parseManifest(raw: Uint8Array): ParsedManifest {
  let m: { schemaVersion?: number; mediaType?: string; manifests?: unknown; config?: unknown; layers?: unknown };
  try {
    m = JSON.parse(Buffer.from(raw).toString("utf8")) as typeof m;
  } catch {
    throw bad("not JSON");
  }
  if (m.schemaVersion !== 2) throw bad(`schema version ${String(m.schemaVersion)} (only Docker schema 2 and OCI are supported; re-push the image with a current tool)`);
  if (Array.isArray(m.manifests) || (m.mediaType !== undefined && INDEX_TYPES.has(m.mediaType))) {
    if (!Array.isArray(m.manifests)) throw bad("an index without a manifests list");
    return { kind: "index", manifests: m.manifests.map((d, i) => descriptor(d, `manifests[${i}]`)) };
  }
  if (!Array.isArray(m.layers)) throw bad("no layers list");
  return { kind: "image", config: descriptor(m.config, "config"), layers: m.layers.map((d, i) => descriptor(d, `layers[${i}]`)) };
}

/**
 * The linux/amd64 entry of an index, or null. An entry without a variant is preferred; attestation
 * entries (platform unknown/unknown) never match.
 */
export function pickPlatform(manifests: readonly Descriptor[]): Descriptor | null {
  const fits = manifests.filter((d) => d.platform?.os === GUEST_PLATFORM.os && d.platform.architecture === GUEST_PLATFORM.architecture);
  return fits.find((d) => !d.platform?.variant || d.platform.variant === "v1") ?? fits[0] ?? null;
}

/** "linux/arm64, linux/arm/v7" for error messages. */
export function describePlatforms(manifests: readonly Descriptor[]): string {
  const names = manifests
    .map((d) => d.platform)
    .filter((p): p is NonNullable<Descriptor["platform"]> => !!p && p.os !== "unknown")
    .map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join("/"));
  return names.length ? [...new Set(names)].join(", ") : "none declared";
}
