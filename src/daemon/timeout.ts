/** A deadline on a promise that cannot be cancelled itself (the operation goes on; we stop waiting). */
import { HyperfleetError, type ErrorCode } from "../core/errors.js";

/** Resolves or rejects with `p`, or rejects with `code` once `ms` have passed. */
export function within<T>(p: Promise<T>, ms: number, code: ErrorCode, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HyperfleetError(code, `${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
