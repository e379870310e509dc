/**
 * Which machine uses which cached image. Two mechanisms, on purpose:
 * - `inUse(digest)`, the cache's eviction check: true while any machine record (not deleted)
 *   names the digest. It is synchronous (the cache asks it mid-eviction), so it is answered from
 *   this in-memory map, seeded from the store before the cache opens (opening evicts).
 * - one cache reference (acquire) per machine, dropped when the machine is deleted: the last
 *   release trims the cache to its size limit right away instead of at the next pull.
 */
import type { MachineRecord } from "../core/machine.js";

/** The part of the image service this needs. */
export interface ImageRefCounts {
  acquire(digest: string): void;
  release(digest: string): Promise<void>;
}

export class ImageUsers {
  private readonly byMachine = new Map<string, { digest: string; held: boolean }>();
  private images: ImageRefCounts | null = null;

  /** Seeds the map from the store (before the cache opens): machines, and snapshots (by snapshot id). */
  load(records: ReadonlyArray<Pick<MachineRecord, "id" | "imageDigest">>): void {
    for (const r of records) if (r.imageDigest !== null) this.byMachine.set(r.id, { digest: r.imageDigest, held: false });
  }

  /** Takes one reference per machine; an image the cache no longer has just is not held. */
  attach(images: ImageRefCounts): void {
    this.images = images;
    for (const u of this.byMachine.values()) {
      try {
        images.acquire(u.digest);
        u.held = true;
      } catch {
        // Not cached any more: the machine's next start pulls it again.
      }
    }
  }

  readonly inUse = (digest: string): boolean => {
    for (const u of this.byMachine.values()) if (u.digest === digest) return true;
    return false;
  };

  /** Records that machine `id` uses `digest`, holding the reference its pull acquired. */
  async set(id: string, digest: string): Promise<void> {
    const prev = this.byMachine.get(id);
    this.byMachine.set(id, { digest, held: true });
    if (prev?.held) await this.images?.release(prev.digest);
  }

  /**
   * Takes a new reference for `id` (a snapshot, or a machine created from one, which no pull
   * acquired for): IMAGE_NOT_CACHED when the image is gone.
   */
  async hold(id: string, digest: string): Promise<void> {
    if (this.byMachine.get(id)?.digest === digest) return;
    this.images?.acquire(digest);
    await this.set(id, digest);
  }

  /** The machine is gone: drop its reference (which may evict the image if over the limit). */
  async forget(id: string): Promise<void> {
    const u = this.byMachine.get(id);
    if (!u) return;
    this.byMachine.delete(id);
    if (u.held) await this.images?.release(u.digest);
  }

  /** Forgets machines whose record no longer exists (after reconciliation deleted some). */
  async sync(records: ReadonlyArray<Pick<MachineRecord, "id">>): Promise<void> {
    const live = new Set(records.map((r) => r.id));
    for (const id of [...this.byMachine.keys()]) if (!live.has(id)) await this.forget(id);
  }
}
