/**
 * Error code -> HTTP status: the one place where our errors meet HTTP. Categories give the default;
 * a few codes need a more precise status than their category.
 */
import { ERROR_CODES, type ErrorCategory, type ErrorCode } from "../core/errors.js";

const CATEGORY_STATUS: Readonly<Record<ErrorCategory, number>> = {
  invalid_argument: 400,
  unauthenticated: 401,
  not_found: 404,
  already_exists: 409,
  conflict: 409,
  too_large: 413,
  timeout: 504,
  unavailable: 503,
  unsupported: 501,
  internal: 500,
};

const CODE_STATUS: Partial<Record<ErrorCode, number>> = {
  // The client chose how long to wait; the server is fine. 408 tells the client to ask again.
  WAIT_TIMEOUT: 408,
  UNSUPPORTED_MEDIA_TYPE: 415,
  // A field the API validates but cannot act on yet. It is the request, not the server, that is
  // refused, so this must not be a 5xx (clients and monitors treat 5xx as "server broken").
  NOT_SUPPORTED_YET: 422,
  // The guest agent (our upstream) speaks a protocol this daemon does not: a bad gateway, not a
  // missing feature of the API.
  AGENT_UNSUPPORTED_VERSION: 502,
  // The registry (an upstream, like the guest agent above) could not be reached or failed: a bad
  // gateway, not this daemon being unavailable, and not the client's input either.
  IMAGE_REGISTRY_UNREACHABLE: 502,
  IMAGE_PULL_FAILED: 502,
  // The per-VM URL proxy's upstream, the guest's service (src/proxy answers it with this status).
  PROXY_UPSTREAM_UNREACHABLE: 502,
  PROXY_UPSTREAM_INVALID_RESPONSE: 502,
  // The client went away or cancelled (nginx's 499): nobody reads the answer, but logs and
  // metrics must not count it as a server fault.
  OPERATION_CANCELLED: 499,
  // The client did not finish sending its body in time (HYPERFLEET_BODY_TIMEOUT).
  REQUEST_TIMEOUT: 408,
  // Too many large bodies in flight (HYPERFLEET_BODY_BUDGET): retry after Retry-After.
  TOO_MANY_REQUESTS: 429,
};

/** The status a category's codes get unless CODE_STATUS says otherwise (ADR 0003 lists the exceptions). */
export function categoryStatus(category: ErrorCategory): number {
  return CATEGORY_STATUS[category];
}

/** HTTP status for an error code. */
export function httpStatus(code: ErrorCode): number {
  return CODE_STATUS[code] ?? CATEGORY_STATUS[ERROR_CODES[code]];
}
