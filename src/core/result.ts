/**
 * Result values for the library entry point (the SDK example calls `.unwrap()`): a call that can
 * fail for expected reasons returns Ok or Err instead of throwing.
 */
import { HyperfleetError, toHyperfleetError } from "./errors.js";

export type Result<T, E = HyperfleetError> = Ok<T> | Err<E>;

export class Ok<T> {
  readonly ok = true as const;
  constructor(readonly value: T) {}
  unwrap(): T {
    return this.value;
  }
}

export class Err<E> {
  readonly ok = false as const;
  constructor(readonly error: E) {}
  unwrap(): never {
    throw this.error;
  }
}

export const ok = <T>(value: T): Ok<T> => new Ok(value);
export const err = <E>(error: E): Err<E> => new Err(error);

/** Runs `fn`, turning a throw into Err(HyperfleetError). */
export async function attempt<T>(fn: () => Promise<T>): Promise<Result<T>> {
  try {
    return ok(await fn());
  } catch (e) {
    return err(toHyperfleetError(e));
  }
}
