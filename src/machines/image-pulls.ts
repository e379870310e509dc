/**
 * Machines' image pulls. A pull starts when the machine is created and runs in the background;
 * a boot waits for it. Machines asking for the same image share one download (the image service
 * deduplicates). Progress is kept in memory (every byte count) and in the store (each phase, and
 * the outcome), so GET /machines/:id shows it live and after a restart.
 *
 * On success the machine records the digest, the image config and the image's disk as its root
 * disk, and keeps the cache reference the pull took. On failure nothing is held, nothing was
 * created on disk, and a machine still in `created` becomes `failed` with the image error's code.
 * Registry credentials stay in memory until a pull succeeds or the machine is deleted, so a
 * start after a transient failure can retry; they are never stored or logged.
 */
import { existsSync } from "node:fs";
import type { Logger } from "../core/ports/logger.js";
import { HyperfleetError, toHyperfleetError } from "../core/errors.js";
import { runConfig, type ImageService, type PullProgress, type RegistryAuth } from "../images/index.js";
import type { MachineRepository } from "../store/machine-repository.js";
import type { ImagePullState, MachineRecord } from "../core/machine.js";
import type { ImageUsers } from "./image-users.js";
import type { MachineStatuses } from "./statuses.js";

export interface ImagePullsOptions {
  images: ImageService;
  repo: MachineRepository;
  users: ImageUsers;
  /** Fails a machine still waiting for its pull. */
  statuses: MachineStatuses;
}

interface Job {
  promise: Promise<MachineRecord>;
  ac: AbortController;
}

/** Rejects when `signal` fires; the pull itself goes on for whoever else waits. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new HyperfleetError("IMAGE_PULL_ABORTED", "stopped waiting for the image pull"));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener("abort", onAbort), resolve(v)),
      (e: unknown) => (signal.removeEventListener("abort", onAbort), reject(e)),
    );
  });
}

export class ImagePulls {
  private readonly jobs = new Map<string, Job>();
  private readonly progress = new Map<string, ImagePullState>();
  private readonly auth = new Map<string, RegistryAuth>();

  constructor(private readonly o: ImagePullsOptions) {}

  /** Starts pulling a new machine's image in the background. */
  begin(rec: MachineRecord, auth: RegistryAuth | undefined, log: Logger): void {
    if (auth) this.auth.set(rec.id, auth);
    this.ensure(rec, log);
  }

  /** The record to boot: with its image pulled (waiting for the pull in progress, or starting one). */
  async ready(rec: MachineRecord, signal: AbortSignal, log: Logger): Promise<MachineRecord> {
    if (rec.imageRef === null) return rec;
    if (rec.imageDigest !== null && rec.rootfsPath !== null && existsSync(rec.rootfsPath)) return rec;
    return abortable(this.ensure(rec, log).promise, signal);
  }

  /** Live progress of a pull in progress (fresher than the stored one). */
  view(id: string): ImagePullState | undefined {
    return this.progress.get(id);
  }

  /** The machine is being deleted: stop its pull (unless others wait for the same image) and forget its credentials. */
  async cancel(id: string): Promise<void> {
    this.auth.delete(id);
    const job = this.jobs.get(id);
    if (!job) return;
    job.ac.abort(new HyperfleetError("IMAGE_PULL_ABORTED", "the machine was deleted during its image pull"));
    await job.promise.catch(() => undefined);
  }

  /** Daemon shutdown: stops every pull and waits until each has recorded its outcome. */
  async close(): Promise<void> {
    const jobs = [...this.jobs.values()];
    for (const j of jobs) j.ac.abort(new HyperfleetError("IMAGE_PULL_ABORTED", "the daemon stopped during the image pull; start the machine to pull again"));
    await Promise.allSettled(jobs.map((j) => j.promise));
    this.auth.clear();
  }

  private ensure(rec: MachineRecord, log: Logger): Job {
    const running = this.jobs.get(rec.id);
    if (running) return running;
    const ac = new AbortController();
    const job: Job = { promise: this.run(rec, ac.signal, log), ac };
    this.jobs.set(rec.id, job);
    const done = () => {
      if (this.jobs.get(rec.id) === job) this.jobs.delete(rec.id);
    };
    // The outcome is recorded by run(); a pull nobody waits for must not be an unhandled rejection.
    job.promise.then(done, done);
    return job;
  }

  private async run(rec: MachineRecord, signal: AbortSignal, log: Logger): Promise<MachineRecord> {
    const id = rec.id;
    const image = rec.imageRef ?? "";
    const t0 = Date.now();
    const state: ImagePullState = { status: "pulling", phase: "resolving", layersDone: 0, layersTotal: 0, bytesDone: 0, bytesTotal: 0, error: null, startedAt: new Date(t0).toISOString(), finishedAt: null };
    this.progress.set(id, state);
    // Writes of one pull, in order: a late progress write must not land after the outcome.
    let writes = this.store(id, { ...state });
    const save = (s: ImagePullState) => (writes = writes.then(() => this.store(id, s)));
    log.info({ image }, "image pull started");
    const onProgress = (p: PullProgress) => {
      const phaseChanged = p.phase !== state.phase;
      Object.assign(state, p);
      if (!phaseChanged) return log.debug({ image, phase: p.phase, bytes_done: p.bytesDone, bytes_total: p.bytesTotal }, "image pull progress");
      log.info({ image, phase: p.phase, layers_done: p.layersDone, layers_total: p.layersTotal, bytes_done: p.bytesDone, bytes_total: p.bytesTotal }, "image pull progress");
      void save({ ...state });
    };
    try {
      const img = await this.o.images.pull(image, { auth: this.auth.get(id), imageSizeMib: rec.imageSizeMib ?? undefined, acquire: true, signal, onProgress });
      await this.o.users.set(id, img.digest);
      const final: ImagePullState = { ...state, status: "done", phase: "done", finishedAt: new Date().toISOString() };
      await writes;
      const updated = await this.o.repo.update(id, { imageDigest: img.digest, imageConfig: runConfig(img.config), rootfsPath: img.diskPath, imagePull: final });
      if (!updated) {
        await this.o.users.forget(id);
        throw new HyperfleetError("MACHINE_NOT_FOUND", `machine ${id} was deleted during its image pull`);
      }
      this.auth.delete(id);
      log.info({ image, digest: img.digest, disk_size_mib: img.diskSizeMib, ms: Date.now() - t0 }, "image ready");
      return updated;
    } catch (e) {
      const he = toHyperfleetError(e, "IMAGE_PULL_FAILED");
      const error = { code: he.code, message: he.message };
      await save({ ...state, status: "failed", error, finishedAt: new Date().toISOString() });
      // Logged once: here when the pull was the machine's only step, else by the boot that waits
      // for it (lifecycle.ts logs the failed boot, with this error).
      if (await this.o.statuses.settle(id, ["created"], "failed", { lastError: error }, "image pull failed")) log.warn({ image, code: he.code, reason: he.message }, "image pull failed; machine failed");
      else log.debug({ image, code: he.code }, "image pull failed; its waiter reports it");
      throw he;
    } finally {
      this.progress.delete(id);
    }
  }

  /** Persists the pull state; a deleted machine (no row) is not an error. */
  private async store(id: string, s: ImagePullState): Promise<void> {
    await this.o.repo.update(id, { imagePull: s }).catch(() => undefined);
  }
}
