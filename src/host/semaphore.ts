import { abortError } from "./async.js";

/**
 * A counting semaphore with abortable waits. Bounds how many VMs boot at once: under TCG a boot is
 * CPU-bound (~0.55 CPU-s), so ten boots at once on two cores would each take five times longer
 * and could all miss their start timeout, where queued boots finish one after another.
 */
export class Semaphore {
  private free: number;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly size: number) {
    this.free = size;
  }

  /** Resolves with a release function once a slot is free; rejects if `signal` fires first. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener("abort", onAbort);
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          const next = this.waiters.shift();
          if (next) next();
          else this.free++;
        });
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(grant);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(abortError(signal?.reason, "waiting for a free slot"));
      };
      if (signal?.aborted) return onAbort();
      if (this.free > 0) {
        this.free--;
        return grant();
      }
      this.waiters.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}
