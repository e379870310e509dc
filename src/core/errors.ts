/**
 * The one error hierarchy. Every error we raise is a HyperfleetError with a stable `code` (listed in
 * ERROR_CODES and docs/errors.md), a `category` that the API layer alone maps to an HTTP status, and
 * an optional `cause`. Messages say what happened and what to do next.
 */
export type ErrorCategory =
  | "invalid_argument"
  | "unauthenticated"
  | "not_found"
  | "already_exists"
  | "conflict"
  | "too_large"
  | "timeout"
  | "unavailable"
  | "unsupported"
  | "internal";

/** Stable error codes and their categories. Add here first; docs/errors.md is checked against it. */
export const ERROR_CODES = {
  INVALID_ARGUMENT: "invalid_argument",
  CONFIG_INVALID: "invalid_argument",
  UNAUTHENTICATED: "unauthenticated",
  MACHINE_NOT_FOUND: "not_found",
  FILE_NOT_FOUND: "not_found",
  IMAGE_NOT_FOUND: "not_found",
  MACHINE_ALREADY_EXISTS: "already_exists",
  INVALID_STATE_TRANSITION: "conflict",
  MACHINE_NOT_RUNNING: "conflict",
  FILE_TOO_LARGE: "too_large",
  EXEC_TIMEOUT: "timeout",
  WAIT_TIMEOUT: "timeout",
  AGENT_TIMEOUT: "timeout",
  VM_START_TIMEOUT: "timeout",
  EXEC_NOT_FOUND: "invalid_argument",
  EXEC_PERMISSION_DENIED: "invalid_argument",
  FILE_IS_DIRECTORY: "invalid_argument",
  FILE_PERMISSION_DENIED: "invalid_argument",
  FILE_OPERATION_FAILED: "internal",
  AGENT_PROTOCOL_ERROR: "internal",
  AGENT_DISCONNECTED: "unavailable",
  AGENT_UNSUPPORTED_VERSION: "unsupported",
  VMM_SPAWN_FAILED: "internal",
  VMM_EXITED: "unavailable",
  VMM_CONTROL_FAILED: "internal",
  GUEST_ASSETS_MISSING: "unavailable",
  HOST_TOOL_MISSING: "unavailable",
  NOT_SUPPORTED_YET: "unsupported",
  INTERNAL: "internal",
  // HTTP surface: malformed requests are answered with a stable code, never a bare 500.
  MALFORMED_REQUEST: "invalid_argument",
  ROUTE_NOT_FOUND: "not_found",
  BODY_TOO_LARGE: "too_large",
  UNSUPPORTED_MEDIA_TYPE: "unsupported",
  // Machine lifecycle and I/O as seen through the service layer.
  MACHINE_FAILED: "conflict",
  FILE_TRANSFER_TIMEOUT: "timeout",
  SHUTTING_DOWN: "unavailable",
  // OCI images (src/images). A registry's 401 is the client's registry credentials, not our API key:
  // invalid_argument, so it never looks like our own 401.
  IMAGE_UNAUTHORIZED: "invalid_argument",
  IMAGE_REGISTRY_UNREACHABLE: "unavailable",
  IMAGE_PLATFORM_UNSUPPORTED: "invalid_argument",
  IMAGE_INVALID: "invalid_argument",
  IMAGE_TOO_LARGE: "invalid_argument",
  IMAGE_IN_USE: "conflict",
  IMAGE_PULL_FAILED: "unavailable",
  IMAGE_PULL_ABORTED: "unavailable",
  HOST_DISK_FULL: "unavailable",
  // Guest errnos a user can act on (src/agent/errno.ts): the user's VM or path, never our fault.
  FILE_PATH_INVALID: "invalid_argument",
  FILE_READ_ONLY: "invalid_argument",
  FILE_BUSY: "conflict",
  FILE_NOT_EMPTY: "conflict",
  FILE_ALREADY_EXISTS: "already_exists",
  FILE_NO_SPACE: "conflict",
  GUEST_RESOURCE_EXHAUSTED: "conflict",
  OPERATION_CANCELLED: "unavailable",
  // Request limits (src/api/limits.ts).
  REQUEST_TIMEOUT: "timeout",
  TOO_MANY_REQUESTS: "unavailable",
  // Admission control: the host's memory or vCPU budget is taken (src/core/capacity.ts).
  INSUFFICIENT_CAPACITY: "conflict",
  // The image is not in the local cache (IMAGE_NOT_FOUND is the registry's answer: a different fix).
  IMAGE_NOT_CACHED: "not_found",
  // An `ip`/`nft`/`sysctl` command of VM networking failed (src/network/run.ts): the host's, not the request's.
  NETWORK_SETUP_FAILED: "internal",
  // Exposed ports (docs/adr/0008): the host port is held by another machine or a host process, or
  // HYPERFLEET_PORT_RANGE has no free port left for one that names no host_port.
  PORT_UNAVAILABLE: "conflict",
  PORT_RANGE_EXHAUSTED: "conflict",
  // Exec, files and logs on a paused machine: its agent cannot answer until it is resumed.
  MACHINE_PAUSED: "conflict",
  // Snapshots (issue 11): unknown id; deleting one machines still depend on; a snapshot that does
  // not fit the request (another shape or network than its source's); the VMM could not save or restore.
  SNAPSHOT_NOT_FOUND: "not_found",
  SNAPSHOT_IN_USE: "conflict",
  SNAPSHOT_INCOMPATIBLE: "invalid_argument",
  SNAPSHOT_FAILED: "internal",
  // A machine recorded under one VMM (`vmm`: qemu, firecracker) and a daemon now running another:
  // its disk format, devices and saved state are that VMM's, so it is never booted by the other.
  VMM_MISMATCH: "conflict",
  // The HTTP client's own (src/sdk), never sent by the daemon: no answer from the server (refused,
  // DNS, reset), no answer within the call's timeout, an answer the contract does not allow
  // (not JSON, or larger than the client's bound).
  API_UNREACHABLE: "unavailable",
  API_TIMEOUT: "timeout",
  API_RESPONSE_INVALID: "internal",
  // Background processes (POST /machines/:id/processes): no such pid in this boot; signalling one that exited.
  PROCESS_NOT_FOUND: "not_found",
  PROCESS_NOT_RUNNING: "conflict",
  // Per-VM URLs (issue 14): a create's `services` on a machine without a network (the proxy
  // reaches guests by their network address).
  SERVICE_NEEDS_NETWORK: "invalid_argument",
  // The proxy's own pages (src/proxy): the guest refused or reset the connection, or took over 5 s
  // to accept it, or answered with something that is not HTTP/1.1 the proxy can pass on.
  PROXY_UPSTREAM_UNREACHABLE: "unavailable",
  PROXY_UPSTREAM_TIMEOUT: "timeout",
  PROXY_UPSTREAM_INVALID_RESPONSE: "unavailable",
  // Machine secrets (docs/agents.md, "Secrets"): a stored value that does not decrypt with this
  // daemon's key (the key changed); a create or rotation whose values exceed the total bound.
  SECRETS_UNREADABLE: "conflict",
  SECRETS_TOO_LARGE: "too_large",
  // An HTTP health check on a machine without a network: the daemon reaches it at network.ip.
  HEALTH_CHECK_NEEDS_NETWORK: "invalid_argument",
  // Volumes (docs/agents.md "Volumes"): unknown name or id; a name taken; held by a machine (one
  // writer at a time); a machine with volumes cannot be snapshotted, forked or templated.
  VOLUME_NOT_FOUND: "not_found",
  VOLUME_ALREADY_EXISTS: "already_exists",
  VOLUME_IN_USE: "conflict",
  MACHINE_HAS_VOLUMES: "conflict",
} as const satisfies Record<string, ErrorCategory>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(s: string): s is ErrorCode {
  return Object.hasOwn(ERROR_CODES, s);
}

/**
 * A code read back from storage. One written by a newer daemon (or by hand) is not a code this one
 * knows: INTERNAL, so every code we answer with is in docs/errors.md.
 */
export function storedErrorCode(s: string): ErrorCode {
  return isErrorCode(s) ? s : "INTERNAL";
}

export interface ErrorDetails {
  /** Request field the error is about (for invalid_argument). */
  field?: string;
  [key: string]: unknown;
}

export class HyperfleetError extends Error {
  override readonly name: string = "HyperfleetError";
  readonly code: ErrorCode;
  readonly category: ErrorCategory;
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: ErrorDetails }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.category = ERROR_CODES[code];
    this.details = options?.details;
  }
}

export function isHyperfleetError(e: unknown, code?: ErrorCode): e is HyperfleetError {
  return e instanceof HyperfleetError && (code === undefined || e.code === code);
}

/** Wraps anything thrown into a HyperfleetError, keeping the original as cause. */
export function toHyperfleetError(e: unknown, fallback: ErrorCode = "INTERNAL"): HyperfleetError {
  if (e instanceof HyperfleetError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new HyperfleetError(fallback, msg, { cause: e });
}
