/**
 * The cache on disk: entries (index.json), disks, shared blobs; reference counts, LRU eviction
 * and blob garbage collection. Layout of the cache dir:
 *
 *   index.json                 the entries (atomic writes)
 *   blobs/sha256/<hex>         blobs shared by all images (skopeo --dest-shared-blob-dir)
 *   disks/<key>.ext4           one read-only root disk per manifest digest (and explicit size)
 *   tmp/<kind>-<pid>-<rand>/   work dirs of pulls in progress; stale ones swept at startup
 *   policy.json, registries.conf   generated at startup
 *
 * An entry exists only once its disk is complete; removing one takes it out of the map first, so
 * no caller can be handed a disk that is being deleted.
 */
import { chmod, link, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { loadIndex, saveIndex, type IndexEntry } from "./cache-index.js";
import { blobPath } from "./layout.js";
import { planEviction } from "./lru.js";
import type { ImageLogger } from "./types.js";

/** The cache dir's contents and bookkeeping; used by ImageService only. */
export class CacheStore {
  readonly blobDir: string;
  readonly diskDir: string;
  private readonly indexPath: string;
  private readonly entries = new Map<string, IndexEntry>();
  private readonly refCounts = new Map<string, number>();
  private readonly pinnedBlobs = new Map<string, number>();
  private writes: Promise<void> = Promise.resolve();
  private flushTimer: NodeJS.Timeout | null = null;
  private activePulls = 0;
  private gcPending = false;

  constructor(
    private readonly cacheDir: string,
    private readonly maxBytes: number,
    private readonly log: ImageLogger,
    private readonly externalInUse: ((digest: string) => boolean) | undefined,
  ) {
    this.blobDir = join(cacheDir, "blobs");
    this.diskDir = join(cacheDir, "disks");
    this.indexPath = join(cacheDir, "index.json");
  }

  /** Loads the index and reconciles it with the files: missing disks drop entries, orphans go. */
  async load(now: number): Promise<void> {
    const { entries, setAside } = await loadIndex(this.indexPath, now);
    if (setAside) this.log.warn({ file: setAside }, "image cache index was unreadable; set it aside and starting empty");
    let dropped = false;
    for (const e of entries) {
      if (await stat(join(this.cacheDir, e.diskFile)).catch(() => null)) this.entries.set(e.key, e);
      else {
        dropped = true;
        this.log.warn({ key: e.key }, "cached image disk is missing; forgetting the image");
      }
    }
    const known = new Set([...this.entries.values()].map((e) => join(this.cacheDir, e.diskFile)));
    for (const name of await readdir(this.diskDir).catch(() => [] as string[])) {
      const p = join(this.diskDir, name);
      if (known.has(p)) continue;
      // A disk without an entry: published by a pull that died before saving the index (no VM has
      // it), or listed in an index that was lost. In the second case machines may still use it.
      const hex = /^([a-f0-9]{64})-/.exec(name)?.[1];
      if (hex && this.externalInUse?.(`sha256:${hex}`)) {
        this.log.warn({ disk: p }, "keeping an image disk that is not in the index because a machine uses it");
        continue;
      }
      await rm(p, { force: true });
    }
    if (dropped || setAside) await this.persist();
    await this.gcBlobs();
  }

  all(): IndexEntry[] {
    return [...this.entries.values()];
  }

  get(key: string): IndexEntry | undefined {
    return this.entries.get(key);
  }

  diskPath(e: IndexEntry): string {
    return join(this.cacheDir, e.diskFile);
  }

  /** Writes the index now (serialized: each write takes the state current at its turn). */
  persist(): Promise<void> {
    const next = this.writes.then(() => saveIndex(this.indexPath, this.all()));
    this.writes = next.catch(() => undefined);
    return next;
  }

  /** Marks the index dirty after a lastUsedAt change; written within a second (or on close). */
  touch(e: IndexEntry, now: number): void {
    e.lastUsedAt = now;
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.persist().catch((err: unknown) => this.log.warn({ err }, "writing the image cache index failed"));
    }, 1000);
    this.flushTimer.unref();
  }

  /** Flushes pending writes (for shutdown). */
  async close(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    await this.persist();
  }

  /**
   * Moves a finished disk into place (read-only) and records its entry; if recording fails the
   * disk goes again. link(), not rename(): an existing disk with this key (a VM may use it) stays.
   */
  async publish(tmpDisk: string, e: Omit<IndexEntry, "diskFile" | "diskBytes">): Promise<IndexEntry> {
    const diskFile = join("disks", `${e.key}.ext4`);
    const final = join(this.cacheDir, diskFile);
    await chmod(tmpDisk, 0o444);
    await link(tmpDisk, final).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
    const entry: IndexEntry = { ...e, diskFile, diskBytes: (await stat(final)).blocks * 512 };
    this.entries.set(entry.key, entry);
    try {
      await this.persist();
    } catch (err) {
      await this.drop(entry);
      throw err;
    }
    return entry;
  }

  inUse(digest: string): boolean {
    return (this.refCounts.get(digest) ?? 0) > 0 || (this.externalInUse?.(digest) ?? false);
  }

  acquire(digest: string): void {
    this.refCounts.set(digest, (this.refCounts.get(digest) ?? 0) + 1);
  }

  /** Drops a reference; returns the count left. */
  release(digest: string): number {
    const n = Math.max(0, (this.refCounts.get(digest) ?? 0) - 1);
    if (n === 0) this.refCounts.delete(digest);
    else this.refCounts.set(digest, n);
    return n;
  }

  /** Total bytes: disks plus distinct blobs. */
  bytes(): number {
    return planEviction(this.candidates([]), Number.MAX_SAFE_INTEGER).bytesAfter;
  }

  /** Marks a pull as running; its blobs are pinned until the returned function is called. */
  beginPull(): { pin(digests: string[]): void; end(failed: boolean): Promise<void> } {
    this.activePulls++;
    const mine: string[] = [];
    return {
      pin: (digests) => {
        for (const d of digests) {
          mine.push(d);
          this.pinnedBlobs.set(d, (this.pinnedBlobs.get(d) ?? 0) + 1);
        }
      },
      end: async (failed) => {
        for (const d of mine) {
          const n = (this.pinnedBlobs.get(d) ?? 1) - 1;
          if (n === 0) this.pinnedBlobs.delete(d);
          else this.pinnedBlobs.set(d, n);
        }
        this.activePulls--;
        if (failed) this.gcPending = true;
        if (this.gcPending) await this.gcBlobs();
      },
    };
  }

  private candidates(protect: readonly string[]) {
    return this.all().map((e) => ({ key: e.key, lastUsedAt: e.lastUsedAt, diskBytes: e.diskBytes, blobs: e.blobs, inUse: protect.includes(e.key) || this.inUse(e.digest) }));
  }

  /** Evicts least recently used, unused entries until the cache fits; `protect` keys are kept. */
  async evict(protect: readonly string[] = []): Promise<string[]> {
    const plan = planEviction(this.candidates(protect), this.maxBytes);
    const evicted: string[] = [];
    for (const key of plan.evict) {
      const e = this.entries.get(key);
      // Re-checked: a VM may have taken it while earlier victims were being deleted.
      if (!e || this.inUse(e.digest) || protect.includes(key)) continue;
      await this.drop(e);
      evicted.push(key);
    }
    if (evicted.length > 0) {
      this.log.info({ evicted, bytes: this.bytes(), maxBytes: this.maxBytes }, "evicted least recently used images");
      await this.persist();
    }
    if (this.bytes() > this.maxBytes) this.log.warn({ bytes: this.bytes(), maxBytes: this.maxBytes }, "image cache exceeds its size limit, but every image left is in use");
    return evicted;
  }

  /** Removes an entry, its disk and the blobs nothing else needs (the caller persists). */
  async drop(e: IndexEntry): Promise<void> {
    this.entries.delete(e.key);
    await rm(this.diskPath(e), { force: true });
    const needed = new Set(this.all().flatMap((x) => x.blobs.map((b) => b.digest)));
    for (const b of e.blobs) {
      if (!needed.has(b.digest) && !this.pinnedBlobs.has(b.digest)) await rm(blobPath(this.blobDir, b.digest), { force: true });
    }
  }

  /**
   * Deletes blobs no entry references. Only while no pull runs: a running pull's manifest blob is
   * not known (so not pinned) until skopeo has finished.
   */
  async gcBlobs(): Promise<void> {
    if (this.activePulls > 0) {
      this.gcPending = true;
      return;
    }
    this.gcPending = false;
    const needed = new Set(this.all().flatMap((e) => e.blobs.map((b) => b.digest.slice("sha256:".length))));
    const dir = join(this.blobDir, "sha256");
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (this.activePulls > 0) {
        this.gcPending = true; // a pull started meanwhile: finish when it ends
        return;
      }
      if (!needed.has(name)) await rm(join(dir, name), { force: true, recursive: true });
    }
  }
}
