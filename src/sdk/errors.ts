/**
 * The SDK's errors: HyperfleetError (the one hierarchy, core/errors.ts) with the API's stable code,
 * plus what only a client sees: the HTTP status and the request id to quote in a bug report.
 */
import { HyperfleetError, isErrorCode, type ErrorCode, type ErrorDetails } from "../core/errors.js";

export class HyperfleetApiError extends HyperfleetError {
  override readonly name: string = "HyperfleetApiError";
  /** The HTTP status; null when no answer came (API_UNREACHABLE, API_TIMEOUT, OPERATION_CANCELLED). */
  readonly status: number | null;
  /** The daemon's `x-request-id`: its log lines about this call carry it. */
  readonly requestId: string | null;

  constructor(code: ErrorCode, message: string, opts: { status?: number | null; requestId?: string | null; details?: ErrorDetails; cause?: unknown } = {}) {
    super(code, message, { ...(opts.details !== undefined && { details: opts.details }), ...(opts.cause !== undefined && { cause: opts.cause }) });
    this.status = opts.status ?? null;
    this.requestId = opts.requestId ?? null;
  }
}

/**
 * The error of a non-2xx answer, from its `{"error": {...}}` body. A code this client does not know
 * (a newer daemon) is kept in `details.server_code` under INTERNAL, so `code` stays an ErrorCode.
 */
export function errorFromBody(status: number, requestId: string | null, text: string): HyperfleetApiError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const e = (parsed as { error?: Record<string, unknown> } | undefined)?.error;
  if (e === undefined || typeof e.code !== "string" || typeof e.message !== "string") {
    return new HyperfleetApiError("API_RESPONSE_INVALID", `the server answered ${status} without an error code: ${text.slice(0, 200)}`, { status, requestId });
  }
  const { code, message, ...rest } = e;
  const known = isErrorCode(code);
  const details: ErrorDetails = { ...rest, ...(!known && { server_code: code }) };
  return new HyperfleetApiError(known ? code : "INTERNAL", message, { status, requestId, details });
}
