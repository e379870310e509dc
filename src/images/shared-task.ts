/**
 * In-process deduplication of concurrent work with per-caller cancellation: callers asking for the
 * same key share one run; each caller's own signal only detaches that caller, and the run itself
 * is aborted when the last caller has gone. Progress reaches every caller still attached.
 */
import { HyperfleetError } from "../core/errors.js";

interface Task<T, P> {
  promise: Promise<T>;
  controller: AbortController;
  callers: number;
  listeners: Set<(p: P) => void>;
}

/** The work a SharedTasks run does: gets the run's signal and a progress broadcaster. */
export type TaskStart<T, P> = (signal: AbortSignal, emit: (p: P) => void) => Promise<T>;

/** Error for a caller that stopped waiting. */
export function abortedError(what: string): HyperfleetError {
  return new HyperfleetError("IMAGE_PULL_ABORTED", `${what} was cancelled; nothing was cached`);
}

export class SharedTasks<T, P> {
  private readonly tasks = new Map<string, Task<T, P>>();

  /** Keys with a run in progress. */
  get size(): number {
    return this.tasks.size;
  }

  /** Joins the run for `key`, starting it if there is none. */
  run(key: string, start: TaskStart<T, P>, opts: { signal?: AbortSignal; onProgress?: (p: P) => void; what: string }): Promise<T> {
    if (opts.signal?.aborted) return Promise.reject(abortedError(opts.what));
    let task = this.tasks.get(key);
    if (!task) {
      const controller = new AbortController();
      const listeners = new Set<(p: P) => void>();
      const emit = (p: P) => {
        for (const l of listeners) l(p);
      };
      const created: Task<T, P> = { promise: Promise.resolve().then(() => start(controller.signal, emit)), controller, callers: 0, listeners };
      created.promise
        .finally(() => {
          if (this.tasks.get(key) === created) this.tasks.delete(key);
        })
        .catch(() => undefined);
      this.tasks.set(key, created);
      task = created;
    }
    const t = task;
    t.callers++;
    const listener = opts.onProgress;
    if (listener) t.listeners.add(listener);
    return new Promise<T>((resolve, reject) => {
      let attached = true;
      const detach = () => {
        if (!attached) return false;
        attached = false;
        t.callers--;
        if (listener) t.listeners.delete(listener);
        opts.signal?.removeEventListener("abort", onAbort);
        return true;
      };
      const onAbort = () => {
        if (!detach()) return;
        reject(abortedError(opts.what));
        if (t.callers === 0) {
          // Nobody waits any more: stop the work, and let the next caller start afresh.
          if (this.tasks.get(key) === t) this.tasks.delete(key);
          t.controller.abort();
        }
      };
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      t.promise.then(
        (v) => detach() && resolve(v),
        (e: unknown) => detach() && reject(e),
      );
    });
  }

  /** Aborts every run (for shutdown). */
  abortAll(): void {
    for (const t of this.tasks.values()) t.controller.abort();
    this.tasks.clear();
  }
}
