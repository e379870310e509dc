/**
 * The async helpers every layer shares: one sleep and the deadlines. `within`: for a promise that
 * cannot be cancelled (the operation goes on; we stop waiting). `cancellable`: for an operation
 * that takes an AbortSignal, which the deadline fires.
 */
import { HyperfleetError, isHyperfleetError, type ErrorCode } from "../core/errors.js";

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

/**
 * Runs `op` with a signal that fires after `ms` (reason: a `code` error) or when `outer` fires (the
 * client went away, the daemon is closing), so the operation is cancelled in the guest and its
 * buffers let go. Rejects at once when the signal fires, also if `op` is slow to notice.
 */
export async function cancellable<T>(op: (signal: AbortSignal) => Promise<T>, ms: number, code: ErrorCode, what: string, outer?: AbortSignal): Promise<T> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new HyperfleetError(code, `${what} did not finish within ${ms} ms; it was cancelled`)), ms);
  const onOuter = () => ac.abort(abortError(outer?.reason, `${what} (the client went away or the daemon is shutting down)`));
  if (outer?.aborted) onOuter();
  else outer?.addEventListener("abort", onOuter, { once: true });
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(ac.signal.reason);
    if (ac.signal.aborted) onAbort();
    else ac.signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([ac.signal.aborted ? aborted : op(ac.signal), aborted]);
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onOuter);
    if (onAbort) ac.signal.removeEventListener("abort", onAbort);
  }
}

/**
 * The error an aborted operation rejects with: the abort's reason when it is one of ours (a
 * deadline, a shutdown), else OPERATION_CANCELLED naming `what` (a bare AbortError would be
 * answered as INTERNAL).
 */
export function abortError(reason: unknown, what: string): HyperfleetError {
  if (isHyperfleetError(reason)) return reason;
  const why = reason instanceof Error ? `: ${reason.message}` : "";
  return new HyperfleetError("OPERATION_CANCELLED", `${what} was cancelled${why}`, reason === undefined ? undefined : { cause: reason });
}
