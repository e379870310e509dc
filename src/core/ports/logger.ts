/**
 * The logger every layer below the daemon takes: the part of pino (and of Fastify's request
 * loggers, which are pino children) that the code uses, so nothing under the composition root
 * imports a logging or HTTP library for its types.
 */
export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  /** A logger whose lines all carry `bindings` (e.g. `{ machine_id }`). */
  child(bindings: Record<string, unknown>): Logger;
}
