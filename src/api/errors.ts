/**
 * Error responses. Everything a request can fail with (our HyperfleetErrors, Fastify's parser and
 * routing errors, bugs) becomes one body shape with a stable code:
 *
 *   { "error": { "code": "MACHINE_NOT_FOUND", "message": "...", "field"?: "...", "current_status"?: "..." } }
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { HyperfleetError, isHyperfleetError, type ErrorCode } from "../core/errors.js";
import { httpStatus } from "./http-status.js";
import { isDeclared } from "./route-errors.js";

/** Logged when a route answers with a code it does not declare: its OpenAPI document is wrong. */
export const UNDECLARED_CODE = "error code not declared by the route (routeErrors in src/api/routes): its documentation is wrong";

export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    field?: string;
    current_status?: string;
    stdout?: string;
    stderr?: string;
    stdout_truncated?: boolean;
    stderr_truncated?: boolean;
    machines?: string[];
    machine_vmm?: string;
    daemon_vmm?: string;
    machine_id?: string;
  };
}

/** Detail keys that are safe and useful to show a client; the rest stay in the logs. */
const PUBLIC_DETAILS = ["field", "current_status", "stdout", "stderr", "machine_vmm", "daemon_vmm", "machine_id"] as const;
const PUBLIC_FLAGS = ["stdout_truncated", "stderr_truncated"] as const;

export function errorBody(e: HyperfleetError): ErrorBody {
  const body: ErrorBody = { error: { code: e.code, message: e.message } };
  for (const k of PUBLIC_DETAILS) {
    const v = e.details?.[k];
    if (typeof v === "string") body.error[k] = v;
  }
  for (const k of PUBLIC_FLAGS) {
    const v = e.details?.[k];
    if (typeof v === "boolean") body.error[k] = v;
  }
  // SNAPSHOT_IN_USE: which machines hold the snapshot (ids the caller may see anyway).
  const machines = e.details?.machines;
  if (Array.isArray(machines) && machines.every((m) => typeof m === "string")) body.error.machines = machines;
  return body;
}

/**
 * Route config keys: which code a too-large body gets on this route (uploads say FILE_TOO_LARGE),
 * or which message (exec says where larger stdin belongs).
 */
export interface ErrorRouteConfig {
  bodyTooLargeCode?: "FILE_TOO_LARGE";
  bodyTooLargeMessage?: string;
}

declare module "fastify" {
  interface FastifyContextConfig {
    bodyTooLargeCode?: "FILE_TOO_LARGE";
    bodyTooLargeMessage?: string;
  }
}

/**
 * Maps what Fastify throws before our handler runs (parse, size, media type, URL) to our codes.
 * Anything unknown is INTERNAL; those are the only errors worth logging at error level.
 */
export function toApiError(e: unknown, route?: ErrorRouteConfig): HyperfleetError {
  if (isHyperfleetError(e)) return e;
  const fe = e as Partial<FastifyError>;
  const status = typeof fe.statusCode === "number" ? fe.statusCode : 500;
  const message = typeof fe.message === "string" ? fe.message : String(e);
  if (status === 413) {
    return route?.bodyTooLargeCode === "FILE_TOO_LARGE"
      ? new HyperfleetError("FILE_TOO_LARGE", "the upload is larger than HYPERFLEET_FILE_MAX_SIZE allows")
      : new HyperfleetError("BODY_TOO_LARGE", route?.bodyTooLargeMessage ?? "the request body is larger than this route accepts");
  }
  if (status === 415) {
    return new HyperfleetError(
      "UNSUPPORTED_MEDIA_TYPE",
      "unsupported Content-Type: send JSON with 'Content-Type: application/json'",
    );
  }
  if (status === 404) return new HyperfleetError("ROUTE_NOT_FOUND", message);
  if (status >= 400 && status < 500) {
    return new HyperfleetError("MALFORMED_REQUEST", `malformed request: ${message}`, { cause: e });
  }
  return new HyperfleetError("INTERNAL", "internal error; the daemon log has the details (search for the request id)", {
    cause: e,
  });
}

/** Fastify error handler: log server faults, answer everything with the stable body. */
export function handleError(e: unknown, req: FastifyRequest, reply: FastifyReply): void {
  const he = toApiError(e, req.routeOptions?.config);
  const status = httpStatus(he.code);
  if (status >= 500) req.log.error({ err: e, code: he.code }, "request failed");
  else req.log.info({ code: he.code, status }, he.message);
  const route = req.routeOptions?.url;
  if (!isDeclared(he.code, req.routeOptions?.config?.raises)) req.log.warn({ code: he.code, route: `${req.method} ${route}` }, UNDECLARED_CODE);
  void reply.code(status).send(errorBody(he));
}

/** Not-found handler: unknown paths and methods get ROUTE_NOT_FOUND. */
export function handleNotFound(req: FastifyRequest, reply: FastifyReply): void {
  const he = new HyperfleetError("ROUTE_NOT_FOUND", `no route ${req.method} ${(req.url.split("?")[0] ?? "").slice(0, 200)}; see /docs for the API`);
  void reply.code(httpStatus(he.code)).send(errorBody(he));
}
