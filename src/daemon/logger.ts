/** The daemon's root logger: JSON lines (pino) to stdout; request and machine ids come from child loggers. */
import { pino, type DestinationStream, type Logger } from "pino";
import type { LogLevel } from "../config/config.js";
import { redactUrl } from "./redact-url.js";

/**
 * Keys that hold secrets, wherever they are at the top or one level down. The code never logs
 * request bodies or registry credentials; this is the net under that rule.
 */
export const REDACTED_PATHS = [
  "req.headers.authorization",
  "registry_auth",
  "*.registry_auth",
  "registryAuth",
  "*.registryAuth",
  "auth",
  "*.auth",
  "password",
  "*.password",
  "token",
  "*.token",
];

/** What Fastify logs of a request (its own serializer's fields), with credentials in the query string masked. */
interface LoggedRequest {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

function serializeRequest(req: LoggedRequest): Record<string, unknown> {
  return {
    method: req.method,
    url: typeof req.url === "string" ? redactUrl(req.url) : req.url,
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  };
}

/** @param dest where lines go (default stdout); tests pass a stream to read them back. */
export function createLogger(level: LogLevel, dest?: DestinationStream): Logger {
  const opts = {
    level,
    base: { service: "hyperfleet" },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    // Fastify keeps a logger instance's own `req` serializer over its default one.
    serializers: { req: serializeRequest },
  };
  return dest ? pino(opts, dest) : pino(opts);
}
