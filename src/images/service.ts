/**
 * The image service: OCI reference in, cached read-only ext4 root disk out.
 *
 * @example
 * const images = await ImageService.open({ cacheDir, maxCacheSize: 10 * 2 ** 30, agentBinary: "guest/build/hf-agent" });
 * const img = await images.pull("alpine:3.20", { acquire: true, onProgress: (p) => console.log(p) });
 * // ... boot VMs with rootfsPath: img.diskPath (each gets its own qcow2 overlay) ...
 * await images.release(img.digest);
 *
 * Concurrency: callers asking for the same reference share one resolution, and resolutions that
 * land on the same manifest digest share one download and one conversion (SharedTasks, keyed by
 * digest and disk size). Each caller's signal cancels only its own wait; the shared work stops
 * when nobody waits any more.
 */
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { HyperfleetError, isHyperfleetError } from "../core/errors.js";
import { runTool } from "../assets/exec.js";
import { makeWorkDir, sweepStaleWorkDirs, writeFileAtomic } from "../assets/fs-util.js";
import { uuidFromHex } from "../assets/rootfs-layout.js";
import { readStaticBinary } from "../assets/static-binary.js";
import { toCachedImage, type IndexEntry } from "./cache-index.js";
import { CacheStore } from "./cache-store.js";
import { runPullJob } from "./pull-job.js";
import { formatImageRef, parseImageRef, pinned, repositoryName, type ImageRef } from "./reference.js";
import { resolveRef, type Resolved } from "./resolve.js";
import { SharedTasks } from "./shared-task.js";
import { SkopeoClient } from "./skopeo.js";
import { POLICY_JSON, registriesConf, type RegistryAuth } from "./skopeo-args.js";
import type { CachedImage, ImageLogger, ImageServiceOptions, PullOptions, PullProgress } from "./types.js";

const SILENT: ImageLogger = { info() {}, warn() {}, debug() {} };
const MAX_SIZE_MIB = 1024 * 1024;

/** OCI images as cached, read-only ext4 root disks; see the file comment and README.md. */
export class ImageService {
  private readonly resolving = new SharedTasks<IndexEntry, PullProgress>();
  private readonly pulling = new SharedTasks<IndexEntry, PullProgress>();
  private readonly now: () => number;
  private readonly rootless = process.getuid?.() !== 0;
  /** Running pull jobs, so close() can wait for their cleanup. */
  private readonly jobs = new Set<Promise<unknown>>();

  private constructor(
    private readonly o: ImageServiceOptions,
    private readonly store: CacheStore,
    private readonly skopeo: SkopeoClient,
    private readonly log: ImageLogger,
    private readonly agent: { data: Buffer; hash: string },
  ) {
    this.now = o.now ?? Date.now;
  }

  /** Opens the cache: sweeps stale work dirs, writes skopeo's config, reconciles the index, evicts. */
  static async open(o: ImageServiceOptions): Promise<ImageService> {
    if (!o.cacheDir.startsWith("/") || o.cacheDir.includes(":")) {
      throw new HyperfleetError("CONFIG_INVALID", `image cache dir must be an absolute path without ':' (skopeo's oci: syntax), got ${o.cacheDir}`);
    }
    if (!Number.isSafeInteger(o.maxCacheSize) || o.maxCacheSize < 0) {
      throw new HyperfleetError("CONFIG_INVALID", `image cache size limit must be a whole number of bytes >= 0, got ${o.maxCacheSize}`);
    }
    const log = o.log ?? SILENT;
    const agentData = await readStaticBinary(o.agentBinary, "hf-agent", "build it with `make -C guest`");
    const agent = { data: agentData, hash: createHash("sha256").update(agentData).digest("hex").slice(0, 12) };
    const store = new CacheStore(o.cacheDir, o.maxCacheSize, log, o.isInUse);
    await mkdir(join(store.blobDir, "sha256"), { recursive: true, mode: 0o700 });
    await mkdir(store.diskDir, { recursive: true });
    const swept = await sweepStaleWorkDirs(o.cacheDir);
    if (swept.length) log.info({ swept }, "removed work dirs of interrupted image pulls");
    const policyPath = join(o.cacheDir, "policy.json");
    const registriesConfPath = join(o.cacheDir, "registries.conf");
    await writeFileAtomic(policyPath, POLICY_JSON);
    await writeFileAtomic(registriesConfPath, registriesConf(o.mirrors ?? {}, o.insecureRegistries ?? []));
    const run = o.run ?? runTool;
    const skopeo = new SkopeoClient({
      run,
      policyPath,
      registriesConfPath,
      sharedBlobDir: store.blobDir,
      insecure: new Set(o.insecureRegistries ?? []),
      pullTimeoutMs: o.pullTimeoutMs ?? 60 * 60_000,
    });
    const service = new ImageService(o, store, skopeo, log, agent);
    if (service.rootless) log.warn({ uid: process.getuid?.() }, "not running as root: images are unpacked rootless, so every file on their disks belongs to this uid");
    await store.load(service.now());
    await store.evict();
    return service;
  }

  /**
   * Returns the cached image for `reference`, pulling and converting it if needed. Errors:
   * INVALID_ARGUMENT, IMAGE_NOT_FOUND, IMAGE_UNAUTHORIZED, IMAGE_REGISTRY_UNREACHABLE,
   * IMAGE_PLATFORM_UNSUPPORTED, IMAGE_INVALID, IMAGE_TOO_LARGE, IMAGE_PULL_FAILED,
   * IMAGE_PULL_ABORTED, HOST_DISK_FULL.
   */
  async pull(reference: string, opts: PullOptions = {}): Promise<CachedImage> {
    const ref = parseImageRef(reference);
    const sizeMib = checkSize(opts.imageSizeMib);
    if ((opts.policy ?? "if-missing") === "if-missing") {
      const hit = this.lookup(ref, sizeMib);
      if (hit) {
        opts.onProgress?.({ phase: "done", ...lastCounts(hit) });
        return this.use(hit, opts.acquire);
      }
    }
    const key = `${formatImageRef(ref)}|${sizeMib ?? "auto"}|${fingerprint(opts.auth)}`;
    // A tiny cache under concurrent pulls may evict a fresh image before its caller gets it: once
    // more, then give up. What this returns is always still cached.
    for (let attempt = 0; attempt < 2; attempt++) {
      const entry = await this.resolving.run(key, (signal, emit) => this.resolveAndPull(ref, sizeMib, opts.auth, signal, emit), {
        signal: opts.signal,
        onProgress: opts.onProgress,
        what: `pulling ${formatImageRef(ref)}`,
      });
      if (this.store.get(entry.key) === entry) return this.use(entry, opts.acquire);
    }
    throw new HyperfleetError("IMAGE_PULL_FAILED", `${formatImageRef(ref)} was evicted as soon as it was pulled: the image cache limit is too small for the images in use; raise it`);
  }

  /** The cached image for `reference` without any network access, or null. Counts as a use. */
  get(reference: string, opts: { imageSizeMib?: number } = {}): CachedImage | null {
    const e = this.lookup(parseImageRef(reference), checkSize(opts.imageSizeMib));
    return e ? this.use(e, false) : null;
  }

  /** Every cached image, most recently used first. */
  list(): CachedImage[] {
    return this.store
      .all()
      .sort((a, b) => b.lastUsedAt - a.lastUsedAt)
      .map((e) => this.view(e));
  }

  /** Bytes the cache holds (disks plus each blob once). */
  cacheBytes(): number {
    return this.store.bytes();
  }

  /**
   * Removes every cached disk of the image `reference` resolves to locally (all disk sizes).
   * IMAGE_NOT_CACHED if it is not cached, IMAGE_IN_USE if a VM uses it.
   */
  async remove(reference: string): Promise<void> {
    const ref = parseImageRef(reference);
    const digest = this.lookup(ref, undefined, true)?.digest;
    const victims = this.store.all().filter((e) => e.digest === digest);
    if (!digest || victims.length === 0) throw new HyperfleetError("IMAGE_NOT_CACHED", `image ${formatImageRef(ref)} is not in the cache; GET /images lists them`);
    if (this.store.inUse(digest)) throw new HyperfleetError("IMAGE_IN_USE", `image ${formatImageRef(ref)} is used by a machine; delete the machine first`, { details: { digest } });
    for (const e of victims) await this.store.drop(e);
    await this.store.persist();
    await this.store.gcBlobs();
  }

  /** Marks the image with this manifest digest as used by one more VM: it will not be evicted. */
  acquire(digest: string): void {
    const e = this.store.all().find((x) => x.digest === digest);
    if (!e) throw new HyperfleetError("IMAGE_NOT_CACHED", `no cached image has digest ${digest}; pull it first`);
    this.store.acquire(digest);
    this.store.touch(e, this.now());
  }

  /** Drops one use taken by acquire; when the last goes, the cache is trimmed to its limit. */
  async release(digest: string): Promise<void> {
    if (this.store.release(digest) === 0) await this.store.evict();
  }

  /** Cancels running pulls, waits for their cleanup and writes the index. */
  async close(): Promise<void> {
    this.resolving.abortAll();
    this.pulling.abortAll();
    await Promise.allSettled([...this.jobs]);
    await this.store.close();
  }

  // --- internals ---

  /** True if the entry is the disk we would build now for this size (same agent, same size). */
  private current(e: IndexEntry, sizeMib: number | undefined): boolean {
    return e.agentHash === this.agent.hash && e.sizeMib === (sizeMib ?? null);
  }

  private lookup(ref: ImageRef, sizeMib: number | undefined, anySize = false): IndexEntry | undefined {
    const name = formatImageRef(ref);
    const fits = (e: IndexEntry) => anySize || this.current(e, sizeMib);
    // A digest names the content wherever it came from; a tag only what we last saw it point to.
    return this.store.all().find((e) => fits(e) && (ref.digest ? e.digest === ref.digest || e.indexDigests.includes(ref.digest) : e.refs.includes(name)));
  }

  private use(e: IndexEntry, acquire: boolean | undefined): CachedImage {
    this.store.touch(e, this.now());
    if (acquire) this.store.acquire(e.digest);
    return this.view(e);
  }

  private view(e: IndexEntry): CachedImage {
    return toCachedImage(e, this.store.diskPath(e), this.store.inUse(e.digest));
  }

  private async resolveAndPull(ref: ImageRef, sizeMib: number | undefined, auth: RegistryAuth | undefined, signal: AbortSignal, emit: (p: PullProgress) => void): Promise<IndexEntry> {
    emit({ phase: "resolving", layersDone: 0, layersTotal: 0, bytesDone: 0, bytesTotal: 0 });
    const r = await resolveRef(this.skopeo, this.o.cacheDir, ref, auth, signal);
    const entry =
      this.store.all().find((e) => e.digest === r.digest && this.current(e, sizeMib)) ??
      (await this.pulling.run(`${r.digest}|${sizeMib ?? "auto"}`, (s, em) => this.pullDigest(ref, r, sizeMib, auth, s, em), { signal, onProgress: emit, what: `pulling ${formatImageRef(ref)}` }));
    await this.addRef(entry, ref, r.indexDigest);
    emit({ phase: "done", ...lastCounts(entry) });
    return entry;
  }

  private pullDigest(ref: ImageRef, r: Resolved, sizeMib: number | undefined, auth: RegistryAuth | undefined, signal: AbortSignal, emit: (p: PullProgress) => void): Promise<IndexEntry> {
    const job = this.runPull(ref, r, sizeMib, auth, signal, emit);
    this.jobs.add(job);
    void job.finally(() => this.jobs.delete(job)).catch(() => undefined);
    return job;
  }

  private async runPull(ref: ImageRef, r: Resolved, sizeMib: number | undefined, auth: RegistryAuth | undefined, signal: AbortSignal, emit: (p: PullProgress) => void): Promise<IndexEntry> {
    const hex = r.digest.slice("sha256:".length);
    const key = `${hex}-${this.agent.hash}${sizeMib === undefined ? "" : `-${sizeMib}m`}`;
    const pull = this.store.beginPull();
    let failed = true;
    const workDir = await makeWorkDir(this.o.cacheDir, "pull");
    try {
      const started = this.now();
      const job = await runPullJob({
        skopeo: this.skopeo,
        run: this.o.run ?? runTool,
        image: pinned(ref, r.digest),
        layers: r.layers,
        auth,
        workDir,
        blobDir: this.store.blobDir,
        cacheDir: this.o.cacheDir,
        agent: this.agent.data,
        rootless: this.rootless,
        sizeMib,
        uuid: uuidFromHex(hex),
        signal,
        emit,
        pinBlobs: pull.pin,
      });
      const now = this.now();
      const entry = await this.store.publish(job.diskPath, {
        key,
        digest: r.digest,
        indexDigests: r.indexDigest ? [r.indexDigest] : [],
        repository: repositoryName(ref),
        refs: [],
        agentHash: this.agent.hash,
        sizeMib: sizeMib ?? null,
        diskSizeMib: job.plan.sizeMib,
        blobs: job.blobs,
        platform: job.platform,
        config: job.config,
        createdAt: now,
        lastUsedAt: now,
      });
      failed = false;
      this.log.info({ image: formatImageRef(ref), digest: r.digest, key, ms: this.now() - started, diskSizeMib: job.plan.sizeMib }, "image pulled and converted");
      await this.store.evict([key]).catch((err: unknown) => this.log.warn({ err }, "evicting images failed"));
      return entry;
    } catch (e) {
      throw hostError(e);
    } finally {
      await rm(workDir, { recursive: true, force: true });
      await pull.end(failed);
    }
  }

  /** Records that tag `ref` (and the index, if any) now lead to `entry`; a tag to no other image. */
  private async addRef(entry: IndexEntry, ref: ImageRef, indexDigest: string | null): Promise<void> {
    let changed = false;
    if (indexDigest && !entry.indexDigests.includes(indexDigest)) {
      entry.indexDigests.push(indexDigest);
      changed = true;
    }
    const name = formatImageRef(ref);
    if (ref.tag !== null && ref.digest === null && !entry.refs.includes(name)) {
      for (const e of this.store.all()) e.refs = e.refs.filter((x) => x !== name);
      entry.refs.push(name);
      changed = true;
    }
    if (changed) await this.store.persist();
  }
}

function checkSize(mib: number | undefined): number | undefined {
  if (mib === undefined) return undefined;
  if (!Number.isInteger(mib) || mib < 8 || mib > MAX_SIZE_MIB) {
    throw new HyperfleetError("INVALID_ARGUMENT", `imageSizeMib must be an integer from 8 to ${MAX_SIZE_MIB}, got ${mib}`, { details: { field: "imageSizeMib" } });
  }
  return mib;
}

/** Distinguishes callers with different credentials (in memory only; never stored or logged). */
function fingerprint(auth: RegistryAuth | undefined): string {
  return auth ? createHash("sha256").update(JSON.stringify(auth)).digest("hex").slice(0, 16) : "anonymous";
}

function lastCounts(e: IndexEntry): Omit<PullProgress, "phase"> {
  const layers = e.blobs.slice(2);
  const bytes = layers.reduce((n, b) => n + b.size, 0);
  return { layersDone: layers.length, layersTotal: layers.length, bytesDone: bytes, bytesTotal: bytes };
}

/** Host filesystem errors with our codes (ENOSPC -> HOST_DISK_FULL); ours pass through. */
function hostError(e: unknown): unknown {
  if (isHyperfleetError(e)) return e;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (code === "ENOSPC" || code === "EDQUOT") return new HyperfleetError("HOST_DISK_FULL", "the image cache's filesystem is full; free space or lower the cache size limit", { cause: e });
  return e;
}
