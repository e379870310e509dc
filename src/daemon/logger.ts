/** The daemon's root logger: JSON lines (pino) to stdout; request and machine ids come from child loggers. */
import { pino, type Logger } from "pino";
import type { LogLevel } from "../config/config.js";

export function createLogger(level: LogLevel): Logger {
  return pino({
    level,
    base: { service: "hyperfleet" },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Never print secrets that may ride along in logged objects.
    redact: { paths: ["req.headers.authorization", "*.registry_auth", "*.password"], censor: "[redacted]" },
  });
}
