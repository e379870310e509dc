/**
 * Which error codes each route can answer with, declared once per route. Its OpenAPI error
 * responses are computed from that list through httpStatus() (so a documented status cannot drift
 * from the one sent), and the error handler checks every error it answers against it (an
 * undeclared code is logged; the API tests fail on that log line).
 */
import type { ErrorCode } from "../core/errors.js";
import { httpStatus } from "./http-status.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** The codes this route can answer with (routeErrors()). */
    raises?: readonly ErrorCode[];
  }
}

/** Any authenticated route: the key, a malformed request or field, a bug. */
export const ANY_ROUTE = ["UNAUTHENTICATED", "MALFORMED_REQUEST", "INVALID_ARGUMENT", "INTERNAL"] as const satisfies readonly ErrorCode[];

/** A route that reads a request body (src/api/limits.ts, the JSON parser). */
export const WITH_BODY = ["BODY_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "TOO_MANY_REQUESTS"] as const satisfies readonly ErrorCode[];

/**
 * What the transport answers for any request before a route's own code runs (a body sent where
 * none is expected, the body budget, an unknown path): allowed on every route, documented in
 * docs/errors.md rather than on each route that takes no body.
 */
export const TRANSPORT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([...WITH_BODY, "ROUTE_NOT_FOUND", "REQUEST_TIMEOUT"]);

/** Talking to a running machine's guest agent, on behalf of a client that may go away. */
export const GUEST_CALL = [
  "MACHINE_NOT_FOUND",
  "MACHINE_NOT_RUNNING",
  "MACHINE_PAUSED",
  "AGENT_TIMEOUT",
  "AGENT_DISCONNECTED",
  "AGENT_PROTOCOL_ERROR",
  "AGENT_UNSUPPORTED_VERSION",
  "GUEST_RESOURCE_EXHAUSTED",
  "OPERATION_CANCELLED",
  "SHUTTING_DOWN",
] as const satisfies readonly ErrorCode[];

/** A file operation in the guest (src/agent/errno.ts). */
export const FILE_OP = [
  "FILE_NOT_FOUND",
  "FILE_IS_DIRECTORY",
  "FILE_PERMISSION_DENIED",
  "FILE_PATH_INVALID",
  "FILE_READ_ONLY",
  "FILE_BUSY",
  "FILE_NOT_EMPTY",
  "FILE_ALREADY_EXISTS",
  "FILE_NO_SPACE",
  "FILE_TOO_LARGE",
  "FILE_OPERATION_FAILED",
  "FILE_TRANSFER_TIMEOUT",
] as const satisfies readonly ErrorCode[];

/** Pulling an image from a registry (src/images/skopeo-errors.ts, pull-job.ts, convert.ts). */
export const IMAGE_PULL = [
  "IMAGE_NOT_FOUND",
  "IMAGE_UNAUTHORIZED",
  "IMAGE_REGISTRY_UNREACHABLE",
  "IMAGE_PLATFORM_UNSUPPORTED",
  "IMAGE_INVALID",
  "IMAGE_TOO_LARGE",
  "IMAGE_PULL_FAILED",
  "IMAGE_PULL_ABORTED",
  "HOST_DISK_FULL",
  "HOST_TOOL_MISSING",
  "SHUTTING_DOWN",
] as const satisfies readonly ErrorCode[];

export interface RouteErrors {
  /** Spread into the route's `config`. */
  config: { raises: readonly ErrorCode[] };
  /** Spread into the route schema's `response`: one entry per status, naming its codes. */
  responses: Record<number, unknown>;
}

/** A route's codes, and its error responses computed from them. */
export function routeErrors(...groups: ReadonlyArray<readonly ErrorCode[]>): RouteErrors {
  const raises = [...new Set(groups.flat())];
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of raises) {
    const s = httpStatus(code);
    byStatus.set(s, [...(byStatus.get(s) ?? []), code]);
  }
  const responses: Record<number, unknown> = {};
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    responses[status] = { description: codesDescription(codes), $ref: "Error#" };
  }
  return { config: { raises }, responses };
}

/** The description of an error response; parsed back by documentedCodes(). */
function codesDescription(codes: readonly ErrorCode[]): string {
  return `Error codes: ${codes.join(", ")}`;
}

/** The codes an OpenAPI response description names (the inverse of codesDescription). */
export function documentedCodes(description: string): string[] {
  const m = /^Error codes: ([A-Z_, ]+)$/.exec(description);
  return m ? (m[1] ?? "").split(", ") : [];
}

/** Whether answering `code` on a route that declared `raises` keeps its documentation true. */
export function isDeclared(code: ErrorCode, raises: readonly ErrorCode[] | undefined): boolean {
  return raises === undefined || raises.includes(code) || TRANSPORT.has(code);
}
