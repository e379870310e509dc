/**
 * The async helpers every layer shares: one sleep and one deadline. A deadline on a promise that
 * cannot be cancelled itself: the operation goes on, we stop waiting.
 */
import { HyperfleetError, type ErrorCode } from "../core/errors.js";

/** Resolves or rejects with `p`, or rejects with `code` once `ms` have passed. */
export function within<T>(p: Promise<T>, ms: number, code: ErrorCode, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HyperfleetError(code, `${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms`, or as soon as `signal` fires (never rejects: the caller checks the signal). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
