/**
 * The cache index: one JSON file in the cache dir listing every finished image, written atomically
 * (temp file, fsync, rename). It holds references, digests, sizes and image configs, and never
 * credentials: auth is an argument of a pull, not part of what a pull produces.
 */
import { readFile, rename } from "node:fs/promises";
import { writeFileAtomic } from "../assets/fs-util.js";
import type { ImageConfig, ImagePlatform } from "./config.js";
import type { CachedImage } from "./types.js";

/** Bump when the entry shape changes incompatibly; an index of another schema is set aside. */
export const INDEX_SCHEMA = 1;

/** One cached image as stored. */
export interface IndexEntry {
  key: string;
  digest: string;
  /** Digests of the multi-arch indexes that resolved to this image. */
  indexDigests: string[];
  /** `registry/repository`. */
  repository: string;
  /** Normalized tag references that point to this image. */
  refs: string[];
  /** sha256 prefix of the agent binary baked into the disk; a rebuilt agent means a new disk. */
  agentHash: string;
  /** Requested disk size; null: sized automatically. */
  sizeMib: number | null;
  diskSizeMib: number;
  /** Disk path relative to the cache dir. */
  diskFile: string;
  /** Allocated bytes of the disk on the host. */
  diskBytes: number;
  /** Blobs of this image in the shared blob dir (manifest, config, layers). */
  blobs: { digest: string; size: number }[];
  platform: ImagePlatform;
  config: ImageConfig;
  createdAt: number;
  lastUsedAt: number;
}

interface IndexFile {
  schema: number;
  entries: IndexEntry[];
}

function looksValid(e: unknown): e is IndexEntry {
  const x = e as Partial<IndexEntry> | null;
  return (
    !!x &&
    typeof x.key === "string" &&
    typeof x.agentHash === "string" &&
    typeof x.digest === "string" &&
    typeof x.diskFile === "string" &&
    Array.isArray(x.refs) &&
    Array.isArray(x.indexDigests) &&
    Array.isArray(x.blobs) &&
    typeof x.lastUsedAt === "number" &&
    typeof x.config === "object"
  );
}

/**
 * Reads the index. A missing file is an empty cache; an unreadable or foreign one is renamed to
 * `index.json.bad-<time>` (kept for a human to look at) and the cache starts empty, which only
 * costs re-pulls: the disks it listed become orphans that open() removes.
 */
export async function loadIndex(path: string, now: number): Promise<{ entries: IndexEntry[]; setAside: string | null }> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { entries: [], setAside: null };
    throw e;
  }
  try {
    const f = JSON.parse(text) as IndexFile;
    if (f.schema === INDEX_SCHEMA && Array.isArray(f.entries) && f.entries.every(looksValid)) return { entries: f.entries, setAside: null };
  } catch {
    /* fall through */
  }
  const aside = `${path}.bad-${now}`;
  await rename(path, aside);
  return { entries: [], setAside: aside };
}

/** Writes the index atomically (0600: it is nobody else's business which images the host runs). */
export async function saveIndex(path: string, entries: readonly IndexEntry[]): Promise<void> {
  const f: IndexFile = { schema: INDEX_SCHEMA, entries: [...entries] };
  await writeFileAtomic(path, `${JSON.stringify(f, null, 1)}\n`, 0o600);
}

/** The public view of an entry (copies: callers cannot change the index through it). */
export function toCachedImage(e: IndexEntry, diskPath: string, inUse: boolean): CachedImage {
  return {
    key: e.key,
    refs: [...e.refs],
    resolvedRef: `${e.repository}@${e.digest}`,
    digest: e.digest,
    indexDigests: [...e.indexDigests],
    platform: { ...e.platform },
    diskPath,
    diskSizeMib: e.diskSizeMib,
    sizeBytes: e.diskBytes + e.blobs.reduce((n, b) => n + b.size, 0),
    config: structuredClone(e.config),
    createdAt: new Date(e.createdAt),
    lastUsedAt: new Date(e.lastUsedAt),
    inUse,
  };
}
