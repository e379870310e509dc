/**
 * Which cached images to evict (pure). The cache's size is its disks plus its blobs, each blob
 * counted once however many images share it; evicting an image frees its disk and the blobs no
 * remaining image needs. Least recently used first; images in use are never chosen.
 */

/** What eviction needs to know about one cache entry. */
export interface EvictionCandidate {
  key: string;
  lastUsedAt: number;
  /** Bytes the entry's disk takes on the host (allocated blocks, not its apparent size). */
  diskBytes: number;
  /** Blob digests and sizes the entry references (manifest, config, layers). */
  blobs: readonly { digest: string; size: number }[];
  inUse: boolean;
}

/** Total bytes of the entries: their disks plus each distinct blob once. */
export function cacheBytes(entries: readonly EvictionCandidate[]): number {
  const blobs = new Map<string, number>();
  let total = 0;
  for (const e of entries) {
    total += e.diskBytes;
    for (const b of e.blobs) blobs.set(b.digest, b.size);
  }
  for (const size of blobs.values()) total += size;
  return total;
}

/** The outcome of planEviction. */
export interface EvictionPlan {
  /** Keys to evict, in eviction order. */
  evict: string[];
  /** Cache size after evicting them. */
  bytesAfter: number;
  /** True if the cache still exceeds the limit (everything left is in use). */
  overLimit: boolean;
}

/**
 * Chooses entries to evict until the cache fits in maxBytes, oldest use first, skipping in-use
 * entries. Ties on lastUsedAt break by key so the choice is deterministic.
 *
 * @example planEviction([{ key: "a", lastUsedAt: 1, diskBytes: 10, blobs: [], inUse: false }], 5)
 *   // -> { evict: ["a"], bytesAfter: 0, overLimit: false }
 */
export function planEviction(entries: readonly EvictionCandidate[], maxBytes: number): EvictionPlan {
  let kept = [...entries];
  let bytes = cacheBytes(kept);
  const evict: string[] = [];
  const order = entries.filter((e) => !e.inUse).sort((a, b) => a.lastUsedAt - b.lastUsedAt || a.key.localeCompare(b.key));
  for (const victim of order) {
    if (bytes <= maxBytes) break;
    kept = kept.filter((e) => e.key !== victim.key);
    bytes = cacheBytes(kept);
    evict.push(victim.key);
  }
  return { evict, bytesAfter: bytes, overLimit: bytes > maxBytes };
}
